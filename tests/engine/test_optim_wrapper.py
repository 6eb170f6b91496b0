"""Tests of repl_mm.engine.optim_wrapper: CPUAutocastOptimWrapper (bf16 autocast on CPU)."""
import torch

import repl_mm  # noqa: F401

from mm_cases import build_backbone


def test_cpu_autocast_optim_wrapper_runs_bf16():
    from mmengine.optim import build_optim_wrapper
    model = build_backbone('mmpretrain', dict(type='RepLCIFARResNet', depth=20))
    wrapper = build_optim_wrapper(model, dict(type='CPUAutocastOptimWrapper',
                                              optimizer=dict(type='SGD', lr=0.1)))
    x = torch.randn(2, 3, 16, 16)
    with wrapper.optim_context(model):
        out = model(x)[0]
    assert out.dtype == torch.bfloat16
    before = model.layer1[1].repl_coefficients['conv1_weight'].detach().clone()
    wrapper.update_params(out.float().square().mean())
    after = model.layer1[1].repl_coefficients['conv1_weight']
    assert after.dtype == torch.float32 and not torch.equal(before, after)
