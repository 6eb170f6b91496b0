from .repl_checkpoint_hook import ReplCheckpointHook

__all__ = ['ReplCheckpointHook']
