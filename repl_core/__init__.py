"""The RepL mechanism in plain PyTorch (no OpenMMLab import).

A replaced block keeps its structure and buffers but owns no weights: each of its parameter tensors
is synthesised on every forward as ``P = a * P_prev + b * P_next`` from its neighbours' tensors.
"""
from .activation_checkpointing import checkpoint_without_reentry, recompute_in_backward
from .adapters import build_adapter
from .backward_pass import in_backward
from .coefficients import (ADAPTER_MODULES, COEFFICIENTS, CoefficientSpec, ReplCoefficients,
                           is_coefficient, is_replaced, replaced_blocks)
from .errors import AdapterError, CheckpointMismatchError, PlanError, ReplError
from .fold import fold_replaced_blocks
from .light import (LightConvSurrogate, LightLinearSurrogate, LightSpec,
                    NormFreeLightConvSurrogate)
from .plan import (ReplacementPlan, auto_candidates, choose_within_budget, default_blocks,
                   format_blocks, resolve_plan, suggest_blocks)
from .replace import RemovedBlock, replace_blocks
from .settings import (ADAPTERS, GRANULARITIES, KINDS, LIGHT_NORMS, WARM_STARTS,
                       ReplacementConfig, default_warm_start, parse_dict_literal)
from .state_dict_guard import StateDictGuard
from .synthesis import NeighbourSynthesis, synthesised_numel
from .synthesis_batching import (BackboneSynthesis, BlockSynthesis, backbone_syntheses,
                                 block_syntheses)
from .warm_start import convert_from_plain, fit_to_weights

__all__ = [
    'ADAPTER_MODULES', 'AdapterError', 'ADAPTERS', 'BackboneSynthesis', 'BlockSynthesis',
    'CheckpointMismatchError', 'COEFFICIENTS', 'CoefficientSpec', 'GRANULARITIES', 'KINDS',
    'LIGHT_NORMS', 'LightConvSurrogate', 'LightLinearSurrogate', 'LightSpec', 'NeighbourSynthesis',
    'NormFreeLightConvSurrogate', 'PlanError', 'RemovedBlock', 'ReplacementConfig',
    'ReplacementPlan', 'ReplCoefficients', 'ReplError', 'StateDictGuard', 'WARM_STARTS',
    'auto_candidates', 'backbone_syntheses', 'block_syntheses', 'build_adapter',
    'checkpoint_without_reentry', 'choose_within_budget', 'convert_from_plain', 'default_blocks',
    'default_warm_start', 'fit_to_weights', 'fold_replaced_blocks', 'format_blocks', 'in_backward',
    'is_coefficient', 'is_replaced', 'parse_dict_literal', 'recompute_in_backward',
    'replace_blocks', 'replaced_blocks', 'resolve_plan', 'suggest_blocks', 'synthesised_numel'
]
