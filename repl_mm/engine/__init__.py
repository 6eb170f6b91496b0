"""mmengine glue: hooks, the CPU autocast optimizer wrapper, checkpoint loading, tool helpers.

Registered in mmengine's root registries, so mmdet, mmseg and mmpretrain configs all find them.
"""
from .checkpoint_files import (UntrustedCheckpointError, load_strictly, read_checkpoint,
                               trusted_checkpoint_globals)
from .data_check import DataNotFoundError, check_data_paths
from .hooks import (ReplCheckpointHook, ReplNaNGuardHook, ReplSafeCheckpointHook, RNGStateHook,
                    TrainingCostHook)
from .launch import finish_launcher, prepare_launcher
from .optim_wrapper import CPUAutocastOptimWrapper

__all__ = [
    'CPUAutocastOptimWrapper', 'DataNotFoundError', 'RNGStateHook', 'ReplCheckpointHook',
    'ReplNaNGuardHook', 'ReplSafeCheckpointHook', 'TrainingCostHook', 'finish_launcher',
    'UntrustedCheckpointError', 'check_data_paths', 'load_strictly', 'prepare_launcher',
    'read_checkpoint', 'trusted_checkpoint_globals'
]
