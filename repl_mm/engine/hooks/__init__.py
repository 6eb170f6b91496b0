from .repl_checkpoint_hook import ReplCheckpointHook
from .training_cost_hook import TrainingCostHook

__all__ = ['ReplCheckpointHook', 'TrainingCostHook']
