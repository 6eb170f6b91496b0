"""Whether autograd is running a backward pass, and what a recomputation inside one must save.

A checkpointed block recomputes its forward inside the backward pass; code that runs in both
(synthesis, activation checkpointing, the memory ledger) asks ``in_backward`` which one it is in.
"""
import contextlib

import torch
from torch import Tensor


def in_backward() -> bool:
    """Whether autograd is running a backward pass (where checkpoints recompute)."""
    return torch._C._current_graph_task_id() != -1


def outside_recomputation() -> contextlib.AbstractContextManager:
    """Inside a backward pass, a context in which the tensors autograd saves are kept as they are.

    A checkpointed block recomputes its forward in the backward pass and must save exactly the
    tensors its forward saved (torch checks their number and shapes). Its synthesised values came
    from outside its forward (the backbone's node) or from before its checkpoint started (its own
    pre-hook); when they must be made again during the recomputation (another forward of the
    block ran in between and its backward has freed them: two crops before one backward), the
    synthesis saves its inputs under these hooks, not the checkpoint's, so the recomputation
    saves what the forward saved. Outside a backward pass: nothing.
    """
    if not in_backward():
        return contextlib.nullcontext()
    return torch.autograd.graph.saved_tensors_hooks(_keep, _keep)


def _keep(tensor: Tensor) -> Tensor:
    return tensor
