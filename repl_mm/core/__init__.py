"""The RepL mechanism in plain PyTorch (no OpenMMLab import).

A replaced block keeps its structure and buffers but owns no weights: each of its parameter tensors
is synthesised on every forward as ``P = a * P_prev + b * P_next`` from its neighbours' tensors.
"""
from .adapters import ADAPTERS, build_adapter
from .errors import AdapterError, CheckpointMismatchError, PlanError, ReplError
from .fold import fold_replaced_blocks
from .light import LightConvSurrogate, LightLinearSurrogate, LightSpec
from .plan import ReplacementPlan, default_blocks, resolve_plan
from .replace import (COEFFICIENTS, RemovedBlock, ReplacementConfig, is_replaced,
                      replace_blocks, replaced_blocks)
from .synthesis import (GRANULARITIES, BlockSynthesis, NeighbourSynthesis, block_syntheses,
                        synthesised_numel)

__all__ = [
    'ADAPTERS', 'COEFFICIENTS', 'GRANULARITIES', 'AdapterError', 'BlockSynthesis',
    'CheckpointMismatchError', 'LightConvSurrogate', 'LightLinearSurrogate', 'LightSpec',
    'NeighbourSynthesis', 'PlanError', 'fold_replaced_blocks', 'RemovedBlock', 'ReplError',
    'ReplacementConfig', 'ReplacementPlan', 'block_syntheses', 'build_adapter', 'default_blocks',
    'is_replaced', 'replace_blocks', 'replaced_blocks', 'resolve_plan', 'synthesised_numel'
]
