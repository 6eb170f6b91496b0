"""Tests of repl_mm.analysis.step_timing: the timed-step loop (median, min and max of repeats)."""
import torch

from repl_mm.analysis.step_timing import forward_backward, time_step


def test_a_timed_step_runs_warmup_and_repeats_and_trains_nothing():
    calls = []
    times = time_step(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and times['min'] <= times['median'] <= times['max']

    module = torch.nn.Linear(3, 2)
    before = module.weight.detach().clone()
    forward_backward(module, torch.ones(4, 3))()
    assert module.weight.grad is not None and torch.equal(module.weight, before)
