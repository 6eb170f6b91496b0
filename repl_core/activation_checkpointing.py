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

``repl.recompute=True`` checkpoints the replaced blocks alone, whatever ``with_cp`` says
(``recompute_in_backward``): what the fused kind keeps of a replaced block in the backward pass
is then its input, as plain checkpointing of the same blocks keeps, without their parameters.
Its recomputation updates no norm statistics: a replaced block's batch norms count each batch
once, so training follows exactly the trajectory it follows without recomputation.
"""
from typing import List, Tuple

import torch
from torch import nn
from torch.distributed._composable import checkpoint as composable_checkpoint
from torch.nn.modules.batchnorm import _BatchNorm

from .backward_pass import in_backward

#: norm buffers a recomputation must leave as the forward pass left them
_RUNNING_STATS = ('running_mean', 'running_var', 'num_batches_tracked')


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


def recompute_in_backward(block: nn.Module, checkpointed: bool) -> None:
    """Make ``block`` keep only its inputs for the backward pass and recompute the rest there.

    The hooks that keep its batch norms' statistics are the block's, not the norms': converters
    that rebuild norms (``revert_sync_batchnorm``, ``convert_sync_batchnorm``) keep them, and
    the norms found at each call are the ones the block holds then.

    Args:
        block: a replaced block (or its light surrogate).
        checkpointed: the block checkpoints without reentry already (``with_cp``); only its
            norms' statistics are then kept from counting the batch twice.
    """
    if not checkpointed:
        composable_checkpoint(block)
    block.register_forward_pre_hook(_keep_norm_statistics)
    # always_call: a recomputation that stops early (torch's early stop raises inside it) or
    # raises still gets its statistics back
    block.register_forward_hook(_restore_norm_statistics, always_call=True)


def _keep_norm_statistics(block: nn.Module, _) -> None:
    block.__dict__.pop('_repl_kept_stats', None)
    if not in_backward():
        return
    block._repl_kept_stats = [
        (norm, name, getattr(norm, name).clone()) for norm in block.modules()
        if isinstance(norm, _BatchNorm) and norm.training and norm.track_running_stats
        for name in _RUNNING_STATS if getattr(norm, name) is not None]


def _restore_norm_statistics(block: nn.Module, _, __) -> None:
    kept: List[Tuple[nn.Module, str, torch.Tensor]] = block.__dict__.pop('_repl_kept_stats', [])
    with torch.no_grad():
        for norm, name, value in kept:
            getattr(norm, name).copy_(value)
