"""Tests of repl_core.light: light surrogates (kind='light'), on toy networks in plain PyTorch
and on CUDA under autocast. Folding them: tests/core/test_fold.py."""
import copy

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import repl_mm  # noqa: F401
from repl_core import (COEFFICIENTS, LightConvSurrogate, LightLinearSurrogate, LightSpec,
                       NormFreeLightConvSurrogate, PlanError, ReplacementConfig, ReplError,
                       is_replaced, replace_blocks, replaced_blocks)

from cuda_cases import build_mmpretrain, needs_cuda
from toy_net import Bottleneck, Encoder, conv_net


def tensor_at(module, path):
    owner, _, name = path.rpartition('.')
    return getattr(module.get_submodule(owner), name)


def flops(module, x):
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


@pytest.mark.parametrize('light_norm, keys', [
    ('batch', ('conv.weight', 'norm.weight', 'conv_weight')),
    ('weight', ('weight', 'scale', 'weight'))])
def test_light_conv_surrogate_costs_under_15_percent_and_trains(light_norm, keys):
    # cost ratio 9 * 4c / (17 c^2) = 2.1 / c: 6.6% at c = 32 (ResNet-50 has c >= 64)
    net = conv_net(c=32, kind='light', light_norm=light_norm)
    x = torch.randn(2, 128, 16, 16)
    assert flops(net.blocks[1], x) <= 0.15 * flops(Bottleneck(32), x)
    net = conv_net(kind='light', light_norm=light_norm)
    surrogate = net.blocks[1]
    kind = LightConvSurrogate if light_norm == 'batch' else NormFreeLightConvSurrogate
    assert isinstance(surrogate, kind) and is_replaced(surrogate)
    x = torch.randn(2, 32, 16, 16)
    # its depthwise kernel is the diagonal of the neighbours' 3x3 kernels mixed by (a, b), each
    # of the c diagonal kernels repeated for 4 consecutive of the block's 4c channels
    kernel, scale, key = keys
    a, b = surrogate.repl_coefficients[key].tolist()
    prev, nxt = (net.blocks[i].conv2.weight for i in (0, 2))
    diagonal = torch.stack([a * prev[i, i] + b * nxt[i, i] for i in range(8)])
    torch.testing.assert_close(tensor_at(surrogate, kernel)[:, 0],
                               diagonal.repeat_interleave(4, 0))
    torch.testing.assert_close(tensor_at(surrogate, scale),
                               0.5 * (net.blocks[0].bn3.weight + net.blocks[2].bn3.weight))
    out = net.blocks(x.requires_grad_())
    out.sum().backward()
    assert surrogate.repl_coefficients[key].grad.abs().sum() > 0
    assert net.blocks[0].conv2.weight.grad.abs().sum() > 0
    own = [n for n, _ in surrogate.named_parameters() if COEFFICIENTS not in n]
    assert own == []


def test_light_conv_surrogate_is_its_formula():
    # relu(x + scale * dwconv(x, standardised kernel) + shift), kernel standardised per channel
    surrogate = NormFreeLightConvSurrogate(6, 3)
    with torch.no_grad():
        surrogate.weight.normal_()
        surrogate.scale.uniform_(0.5, 1.5)
        surrogate.shift.uniform_(-0.2, 0.2)
    x = torch.randn(2, 6, 9, 9)
    k = surrogate.weight.flatten(1)
    k = (k - k.mean(1, keepdim=True)) / (k - k.mean(1, keepdim=True)).norm(dim=1, keepdim=True)
    branch = nn.functional.conv2d(x, k.view(6, 1, 3, 3), padding=1, groups=6)
    expected = torch.relu(x + surrogate.scale.view(1, -1, 1, 1) * branch
                          + surrogate.shift.view(1, -1, 1, 1))
    torch.testing.assert_close(surrogate(x), expected, rtol=1e-5, atol=1e-5)
    # a spatially constant input gives a branch of zero mean: only the shift remains
    flat = torch.full((1, 6, 5, 5), 2.0)
    inner = (..., slice(1, -1), slice(1, -1))  # away from the zero padding
    torch.testing.assert_close(surrogate(flat)[inner],
                               torch.relu(flat + surrogate.shift.view(1, -1, 1, 1))[inner])
    with pytest.raises(ValueError, match='1x1'):
        NormFreeLightConvSurrogate(6, 1)


def test_norm_free_surrogate_keeps_only_its_input_and_output_for_backward():
    # the memory a surrogate adds to a training step: what autograd saves of (N, C, H, W) size
    surrogate = conv_net(kind='light', light_norm='weight').blocks[1]
    x = torch.randn(2, 32, 16, 16, requires_grad=True)
    saved = []

    def pack(tensor):
        if tensor.numel() == x.numel():
            saved.append(tensor.data_ptr())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = surrogate(x)
    assert set(saved) <= {x.data_ptr(), out.data_ptr()}, saved
    out.sum().backward()
    assert x.grad is not None
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = conv_net(kind='light').blocks[1](x)  # the batch-norm surrogate: one map more
    assert len(set(saved) - {x.data_ptr(), out.data_ptr()}) == 1


def test_light_linear_surrogate_on_tokens():
    torch.manual_seed(0)
    root = nn.Module()
    root.layers = nn.ModuleList([Encoder() for _ in range(3)])
    replace_blocks(root, [('layers', 'layers')], ReplacementConfig(kind='light'),
                   light_spec=lambda block: LightSpec('linear', 'attn.out_proj.weight', 'ln1',
                                                      bias='attn.out_proj.bias'))
    surrogate = root.layers[1]
    assert isinstance(surrogate, LightLinearSurrogate)
    x = torch.randn(2, 10, 16)
    assert flops(surrogate, x) <= 0.15 * flops(Encoder(), x)
    a, b = surrogate.repl_coefficients['linear_weight'].tolist()
    expected = a * root.layers[0].attn.out_proj.weight + b * root.layers[2].attn.out_proj.weight
    torch.testing.assert_close(surrogate.linear.weight, expected)
    y = x
    for layer in root.layers:
        y = layer(y)
    y.sum().backward()
    assert surrogate.repl_coefficients['linear_weight'].grad.abs().sum() > 0


def test_deepcopy_of_light_model_is_independent():
    net = conv_net(kind='light')
    twin = copy.deepcopy(net)
    assert twin.blocks[1].conv.parametrizations.weight[0].neighbours[0] is twin.blocks[0].conv2
    with torch.no_grad():
        twin.blocks[0].conv2.weight.zero_()
        twin.blocks[2].conv2.weight.zero_()
    assert twin.blocks[1].conv.weight.abs().sum() == 0
    assert net.blocks[1].conv.weight.abs().sum() > 0


def test_light_norm_is_for_conv_surrogates():
    with pytest.raises(ReplError, match="repl.light_norm='none' is unknown"):
        ReplacementConfig.from_dict(dict(kind='light', light_norm='none'))
    root = nn.Module()
    root.layers = nn.ModuleList([Encoder() for _ in range(3)])
    with pytest.raises(PlanError, match="a transformer block's surrogate"):
        replace_blocks(root, [('layers', 'layers')],
                       ReplacementConfig(kind='light', light_norm='weight'),
                       light_spec=lambda block: LightSpec('linear', 'attn.out_proj.weight', 'ln1',
                                                          bias='attn.out_proj.bias'))


@needs_cuda
@pytest.mark.parametrize('light_norm', ['batch', 'weight'])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
def test_cuda_light_surrogate_under_autocast_channels_last(dtype, light_norm):
    """The light surrogate under autocast on channels-last input: close to fp32, and the
    backbone trains (finite coefficient gradients)."""
    torch.manual_seed(0)
    model = build_mmpretrain(dict(type='RepLResNet', depth=50,
                       repl=dict(kind='light', light_norm=light_norm)))
    model = model.to('cuda', memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64, device='cuda').to(memory_format=torch.channels_last)
    surrogate = model.layer1[1]
    features = torch.rand(2, 256, 16, 16, device='cuda').to(memory_format=torch.channels_last)
    surrogate.eval()  # the batch-norm surrogate: running statistics, the same in both
    with torch.no_grad():
        expected = surrogate(features)
        with torch.autocast('cuda', dtype=dtype):
            out = surrogate(features)
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.float(), expected, rtol=0.02, atol=0.02)
    surrogate.train()
    with torch.autocast('cuda', dtype=dtype):
        outputs = model(x)
    sum(o.float().square().mean() for o in outputs).backward()
    for _, block in replaced_blocks(model):
        for name, p in getattr(block, COEFFICIENTS).items():
            assert torch.isfinite(p.grad).all(), name
