"""Light surrogates and folding on toy networks, in plain PyTorch."""
import copy

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from repl_core import (COEFFICIENTS, CheckpointMismatchError, LightConvSurrogate,
                          LightLinearSurrogate, LightSpec, NormFreeLightConvSurrogate, PlanError,
                          ReplacementConfig, ReplError, fold_replaced_blocks, is_replaced,
                          replace_blocks)


class Bottleneck(nn.Module):
    """A ResNet bottleneck (4c -> c -> c -> 4c) with an identity shortcut."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4 * c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, 4 * c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * c)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(x + self.bn3(self.conv3(out)))


class Encoder(nn.Module):
    """A pre-norm transformer block on (N, L, d) tokens."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        y = self.ln1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.ffn(self.ln2(x))


def conv_net(c=8, **repl):
    torch.manual_seed(0)
    net = nn.Sequential(*[Bottleneck(c) for _ in range(5)])
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    wrapper = nn.Module()
    wrapper.blocks = net
    replace_blocks(wrapper, [('blocks', 'blocks')], ReplacementConfig.from_dict(repl),
                   light_spec=lambda block: LightSpec('depthwise', 'conv2.weight', 'bn3'))
    return wrapper


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


def test_light_kind_needs_a_light_spec_and_a_shape_preserving_block():
    wrapper = nn.Module()
    wrapper.blocks = nn.Sequential(*[Bottleneck() for _ in range(3)])
    with pytest.raises(ReplError, match="kind='light'.*declares no light surrogate"):
        replace_blocks(wrapper, [('blocks', 'blocks')], ReplacementConfig(kind='light'))

    def no_light(block):
        raise PlanError('no light surrogate for this block')

    with pytest.raises(PlanError, match='no light surrogate for this block'):
        replace_blocks(wrapper, [('blocks', 'blocks')], ReplacementConfig(kind='light'),
                       light_spec=no_light)


def test_deepcopy_of_light_model_is_independent():
    net = conv_net(kind='light')
    twin = copy.deepcopy(net)
    assert twin.blocks[1].conv.parametrizations.weight[0].neighbours[0] is twin.blocks[0].conv2
    with torch.no_grad():
        twin.blocks[0].conv2.weight.zero_()
        twin.blocks[2].conv2.weight.zero_()
    assert twin.blocks[1].conv.weight.abs().sum() == 0
    assert net.blocks[1].conv.weight.abs().sum() > 0


def test_removed_kind_deletes_the_planned_blocks():
    net = conv_net(kind='removed')
    assert [type(b).__name__ for b in net.blocks] == [
        'Bottleneck', 'RemovedBlock', 'Bottleneck', 'RemovedBlock', 'Bottleneck']
    x = torch.randn(1, 32, 4, 4)
    torch.testing.assert_close(net.blocks[1](x), x)
    assert sum(p.numel() for p in net.parameters()) == 3 * sum(
        p.numel() for p in Bottleneck().parameters())


def test_checkpoint_of_the_other_light_norm_is_refused():
    # the two conv surrogates share the extra state (kind, granularity, adapter) but not their
    # coefficient keys: loading one into the other would leave its coefficients at their init
    state = conv_net(kind='light', light_norm='weight').state_dict()
    net = conv_net(kind='light')
    with pytest.raises(CheckpointMismatchError, match='repl.light_norm') as error:
        net.load_state_dict(state, strict=False)
    assert error.value.checkpoint_keys == ['scale', 'shift', 'weight']
    assert error.value.model_keys == ['conv_weight', 'norm_bias', 'norm_weight']


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
