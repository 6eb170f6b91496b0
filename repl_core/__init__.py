"""The RepL mechanism in plain PyTorch (no OpenMMLab import).

A replaced block keeps its structure and buffers but owns no weights: each of its parameter tensors
is synthesised on every forward as ``P = a * P_prev + b * P_next`` from its neighbours' tensors.
"""
from .activation_checkpointing import checkpoint_without_reentry, recompute_in_backward
from .adapters import ADAPTERS, build_adapter
from .coefficients import (ADAPTER_MODULES, COEFFICIENTS, CoefficientSpec, ReplCoefficients,
                           is_coefficient, is_replaced, replaced_blocks)
from .config import KINDS, ReplacementConfig
from .errors import AdapterError, CheckpointMismatchError, PlanError, ReplError
from .fold import fold_replaced_blocks
from .light import (LightConvSurrogate, LightLinearSurrogate, LightSpec,
                    NormFreeLightConvSurrogate)
from .plan import ReplacementPlan, default_blocks, format_blocks, resolve_plan, suggest_blocks
from .replace import RemovedBlock, replace_blocks
from .state_dict_guard import StateDictGuard, warm_start_coefficients
from .synthesis import (GRANULARITIES, BackboneSynthesis, BlockSynthesis, NeighbourSynthesis,
                        backbone_syntheses, block_syntheses, in_backward, synthesised_numel)

__all__ = [
    'ADAPTERS', 'ADAPTER_MODULES', 'COEFFICIENTS', 'GRANULARITIES', 'KINDS', 'AdapterError',
    'BackboneSynthesis', 'BlockSynthesis', 'CheckpointMismatchError', 'CoefficientSpec',
    'LightConvSurrogate', 'LightLinearSurrogate', 'LightSpec', 'NeighbourSynthesis',
    'NormFreeLightConvSurrogate', 'PlanError', 'RemovedBlock', 'ReplCoefficients', 'ReplError',
    'ReplacementConfig', 'ReplacementPlan', 'StateDictGuard', 'backbone_syntheses',
    'block_syntheses', 'build_adapter', 'checkpoint_without_reentry', 'default_blocks',
    'fold_replaced_blocks', 'format_blocks', 'in_backward', 'is_coefficient', 'is_replaced',
    'recompute_in_backward', 'replace_blocks',
    'replaced_blocks', 'resolve_plan', 'suggest_blocks', 'synthesised_numel',
    'warm_start_coefficients'
]
