"""Activation checkpointing of the blocks that take part in synthesis, without reentry.

OpenMMLab blocks checkpoint themselves (``with_cp=True``) with ``torch.utils.checkpoint`` in its
reentrant form: each block's recomputation and backward is a nested backward pass of its own. A
neighbour's tensor is read by its own block and by the synthesis of the replaced block beside
it, so in reentrant form its gradient is accumulated in two passes per step, which DDP (without
``static_graph``) refuses: "Expected to mark a variable ready only once". Non-reentrant
checkpointing recomputes inside the one backward pass, where autograd sums every contribution
to a tensor before accumulating it once. So the blocks whose tensors take part in synthesis (the
replaced blocks and their neighbours) trade their own reentrant checkpointing for torch's
composable non-reentrant one (forward hooks: module structure and state-dict keys unchanged),
which saves the same activations; the other blocks keep theirs.
"""
from torch import nn
from torch.distributed._composable import checkpoint as composable_checkpoint


def checkpoint_without_reentry(block: nn.Module) -> bool:
    """If ``block`` checkpoints itself (``block.with_cp``), make it do so without reentry.

    Returns:
        Whether ``block`` was switched.
    """
    if not getattr(block, 'with_cp', False):
        return False
    block.with_cp = False
    composable_checkpoint(block)
    return True
