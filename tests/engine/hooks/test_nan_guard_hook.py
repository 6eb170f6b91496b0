"""Tests of repl_mm.engine.hooks.nan_guard_hook: ReplNaNGuardHook and the parameter checksums that
compare replicas."""
import torch

from repl_mm.engine.hooks.nan_guard_hook import first_replica_mismatch, parameter_checksums


def test_replica_checksums_see_a_one_ulp_difference():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    names = [n for n, _ in model.named_parameters()]
    before = parameter_checksums(model)
    with torch.no_grad():
        model[1].bias[0] = torch.nextafter(model[1].bias[0], torch.tensor(1.0))
    after = parameter_checksums(model)
    assert first_replica_mismatch([before, before, before], names) is None
    assert first_replica_mismatch([before, before, after], names) == ('1.bias', 2)
