"""Tests of repl_mm.analysis.allocator_peak: the measured peak of one step's tensor memory."""
import torch

from repl_mm.analysis.allocator_peak import AllocatorPeak

MIB = 1024 * 1024


def test_the_cpu_peak_counts_what_the_step_held_at_once():
    kept = torch.zeros(MIB // 4)  # 1 MiB, live before the measurement: not counted
    with AllocatorPeak('cpu') as meter:
        before = torch.ones(MIB // 2)  # 2 MiB, live when the step starts
        with meter.step():
            a = torch.ones(MIB)  # 4 MiB
            b = a * 2  # 4 MiB more, while a is alive
            del a, b
    result = meter.result()
    assert result['step_start_bytes'] == 2 * MIB
    assert 10 * MIB <= result['peak_bytes'] < 10 * MIB + 1024  # and a scalar or two
    del kept, before
