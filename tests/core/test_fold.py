"""Tests of repl_core.fold: replaced blocks folded into ordinary blocks with materialised
weights."""
import pytest
import torch
from mmengine.registry import MODELS, init_default_scope
from torch import nn

import repl_mm  # noqa: F401
from repl_core import COEFFICIENTS, block_syntheses, fold_replaced_blocks, replaced_blocks

from cuda_cases import DEVICE, build_mmpretrain
from toy_net import Bottleneck, conv_net


@pytest.mark.parametrize('kind', ['fused', 'light', 'light/weight'])
@pytest.mark.parametrize('granularity', ['tensor', 'channel'])
def test_folding_reproduces_outputs(kind, granularity):
    kind, _, light_norm = kind.partition('/')
    net = conv_net(kind=kind, granularity=granularity, light_norm=light_norm or 'batch')
    with torch.no_grad():
        for p in net.parameters():  # move the coefficients off their init
            p.add_(0.01 * torch.randn_like(p))
    net.eval()
    x = torch.randn(2, 32, 12, 12)
    before = net.blocks(x)
    folded = fold_replaced_blocks(net)
    assert folded == ['blocks.1', 'blocks.3']
    assert not any(COEFFICIENTS in k for k in net.state_dict())
    torch.testing.assert_close(net.blocks(x), before, rtol=1e-5, atol=1e-6)
    if kind == 'fused':
        plain = nn.Sequential(*[Bottleneck() for _ in range(5)])
        plain.load_state_dict(net.blocks.state_dict(), strict=True)
        plain.eval()
        torch.testing.assert_close(plain(x), before, rtol=1e-5, atol=1e-6)
    assert all(p.requires_grad for p in net.parameters())


def test_folding_unhooks_the_block():
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(type='RepLResNet', depth=50, repl=dict(kind='fused')))
    fold_replaced_blocks(model)
    assert not block_syntheses(model)
    for module in model.modules():
        assert not module._forward_pre_hooks and not module._forward_hooks


@pytest.mark.cuda  # on the CPU without a GPU
@pytest.mark.parametrize('kind', ['fused', 'light'])
def test_cuda_outputs_equal_cpu_outputs_and_fold(kind):
    """``.cuda()`` moves the neighbour references with the model: the GPU forward equals the CPU
    one, and folding on the GPU keeps the outputs."""
    torch.manual_seed(0)
    backbone = build_mmpretrain(dict(type='RepLResNet', depth=50, repl=dict(kind=kind)))
    backbone.eval()  # mmpretrain's ResNet.train returns None: no chaining
    inputs = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = backbone(inputs)
        gpu = backbone.to(DEVICE)
        outputs = gpu(inputs.to(DEVICE))
        for out, ref in zip(outputs, expected):
            assert out.device.type == DEVICE
            torch.testing.assert_close(out.cpu(), ref, rtol=1e-3, atol=1e-3)
        fold_replaced_blocks(gpu)
        assert not list(replaced_blocks(gpu))
        for out, ref in zip(gpu(inputs.to(DEVICE)), outputs):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
