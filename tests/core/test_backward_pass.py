"""Tests of repl_core.backward_pass: whether autograd is running a backward pass, and the context
in which a recomputation inside it saves tensors as they are."""
import torch

from repl_core.backward_pass import in_backward, outside_recomputation


def test_in_backward_only_while_autograd_runs_one():
    seen = []
    x = torch.ones(2, requires_grad=True)
    y = x * 2
    y.register_hook(lambda grad: seen.append(in_backward()))
    assert not in_backward()
    y.sum().backward()
    assert seen == [True] and not in_backward()


def test_outside_recomputation_keeps_saved_tensors_as_they_are_in_a_backward_pass():
    packed = []

    def pack(tensor):
        packed.append(tensor)
        return tensor

    counts = []
    x = torch.ones(2, requires_grad=True)
    y = x * 2

    def recompute(grad):  # as a checkpoint recomputes: its own hooks on what autograd saves
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with outside_recomputation():
                torch.ones(2, requires_grad=True) * torch.full((2, ), 3.)
            counts.append(len(packed))
            torch.ones(2, requires_grad=True) * torch.full((2, ), 3.)
            counts.append(len(packed))
        return grad

    y.register_hook(recompute)
    y.sum().backward()
    assert counts == [0, 1]  # the checkpoint's hooks saw only what ran outside the context
