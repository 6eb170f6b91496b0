from .nan_guard_hook import ReplNaNGuardHook
from .repl_checkpoint_hook import ReplCheckpointHook
from .rng_state_hook import RNGStateHook
from .safe_checkpoint_hook import ReplSafeCheckpointHook
from .training_cost_hook import TrainingCostHook

__all__ = [
    'RNGStateHook', 'ReplCheckpointHook', 'ReplNaNGuardHook', 'ReplSafeCheckpointHook',
    'TrainingCostHook'
]
