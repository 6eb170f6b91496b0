"""The RepL mechanism on a toy block sequence, in plain PyTorch (no OpenMMLab)."""
import copy

import pytest
import torch
from torch import nn

from repl_core import (COEFFICIENTS, AdapterError, CheckpointMismatchError, PlanError,
                          ReplacementConfig, ReplError, build_adapter, is_replaced,
                          replace_blocks, resolve_plan, synthesised_numel)


class ToyBlock(nn.Module):
    """conv -> BN -> relu, with a residual; enough to exercise every kind of tensor."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + torch.relu(self.bn(self.conv(x)))


class ToyNet(nn.Module):
    def __init__(self, depth: int = 5, channels: int = 4) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ToyBlock(channels) for _ in range(depth)])

    def forward(self, x):
        return self.blocks(x)


def replaced_toy(**repl):
    torch.manual_seed(0)
    net = ToyNet()
    plan = replace_blocks(net, [('blocks', 'blocks')], ReplacementConfig.from_dict(repl))
    return net, plan


def reference_forward(net: ToyNet, x: torch.Tensor, replaced=(1, 3)) -> torch.Tensor:
    """Hand-written RepL forward: block i runs with a * P_{i-1} + b * P_{i+1}."""
    for i, block in enumerate(net.blocks):
        if i in replaced:
            prev, nxt = net.blocks[i - 1], net.blocks[i + 1]
            c = block.repl_coefficients
            w = c['conv_weight'][0] * prev.conv.weight + c['conv_weight'][1] * nxt.conv.weight
            bias = c['conv_bias'][0] * prev.conv.bias + c['conv_bias'][1] * nxt.conv.bias
            g = c['bn_weight'][0] * prev.bn.weight + c['bn_weight'][1] * nxt.bn.weight
            beta = c['bn_bias'][0] * prev.bn.bias + c['bn_bias'][1] * nxt.bn.bias
            y = nn.functional.conv2d(x, w, bias, padding=1)
            y = nn.functional.batch_norm(y, None, None, g, beta, training=True)
            x = x + torch.relu(y)
        else:
            x = block(x)
    return x


def test_default_plan_on_toy_sequence():
    net, plan = replaced_toy()
    assert plan.replaced == (('blocks', 1), ('blocks', 3))
    assert [is_replaced(b) for b in net.blocks] == [False, True, False, True, False]


def test_forward_and_gradients_match_hand_written_reference():
    net, _ = replaced_toy(init=(0.3, 0.9))
    net.double()  # float64: a conv bias before a BN has a gradient of pure rounding noise
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    out = net(x)
    params = dict(net.named_parameters())
    grads = torch.autograd.grad(out.square().sum(), list(params.values()))
    ref_net = copy.deepcopy(net)
    ref_out = reference_forward(ref_net, x)
    ref_params = dict(ref_net.named_parameters())
    ref_grads = torch.autograd.grad(ref_out.square().sum(), list(ref_params.values()))
    torch.testing.assert_close(out, ref_out)
    for name, grad, ref_grad in zip(params, grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, msg=name)
    named = dict(zip(params, grads))
    # gradients reach a and b, and both neighbours through the synthesis (the BN biases start
    # at zero in both neighbours, and a conv bias before a training-mode BN has no effect, so
    # their coefficients' gradients are zero by design)
    for key in ('conv_weight', 'bn_weight'):
        assert named[f'blocks.1.{COEFFICIENTS}.{key}'].abs().sum() > 0
    assert named['blocks.0.conv.weight'].abs().sum() > 0
    assert named['blocks.2.conv.weight'].abs().sum() > 0


def test_replaced_block_owns_no_weights_and_counts_drop_exactly():
    plain = ToyNet()
    net, _ = replaced_toy()
    block_size = sum(p.numel() for p in plain.blocks[1].parameters())
    own = [n for n, _ in net.blocks[1].named_parameters() if COEFFICIENTS not in n]
    assert own == []
    coefficients = sum(p.numel() for n, p in net.named_parameters() if COEFFICIENTS in n)
    assert coefficients == 2 * 4 * 2  # 2 blocks x 4 tensors x (a, b)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    plain_trainable = sum(p.numel() for p in plain.parameters())
    assert plain_trainable - trainable == 2 * block_size - coefficients
    assert synthesised_numel(net) == 2 * block_size


def test_state_dict_keys_follow_the_plain_network():
    plain_keys = set(ToyNet().state_dict())
    net, _ = replaced_toy()
    keys = set(net.state_dict())
    extra = {k for k in keys - plain_keys}
    assert extra and all(f'.{COEFFICIENTS}.' in k for k in extra)
    missing = plain_keys - keys  # exactly the replaced blocks' parameters
    assert missing == {f'blocks.{i}.{t}' for i in (1, 3)
                       for t in ('conv.weight', 'conv.bias', 'bn.weight', 'bn.bias')}
    assert 'blocks.1.bn.running_mean' in keys
    # neighbours' weights appear once in parameters and state dict
    names = [n for n, _ in net.named_parameters()]
    assert len(names) == len(set(names))
    assert len({id(p) for p in net.parameters()}) == len(names)


def test_bn_statistics_are_the_replaced_blocks_own():
    net, _ = replaced_toy()
    net(torch.randn(2, 4, 6, 6) * 3 + 1)
    stats = [b.bn.running_mean for b in net.blocks]
    assert not torch.equal(stats[1], stats[0]) and not torch.equal(stats[1], stats[2])
    assert stats[1].abs().sum() > 0


def test_deepcopy_and_to_keep_neighbour_references():
    net, _ = replaced_toy()
    twin = copy.deepcopy(net).to(torch.float64)
    synthesis = twin.blocks[1].conv.parametrizations.weight[0]
    assert synthesis._sources[0] is twin.blocks[0].conv
    assert synthesis._sources[2] is twin.blocks[1].repl_coefficients
    with torch.no_grad():
        twin.blocks[0].conv.weight.zero_()
        twin.blocks[2].conv.weight.zero_()
    assert twin.blocks[1].conv.weight.dtype == torch.float64
    assert twin.blocks[1].conv.weight.abs().sum() == 0
    assert net.blocks[1].conv.weight.abs().sum() > 0  # the original is untouched


def test_detach_neighbours_stops_gradient_at_coefficients():
    net, _ = replaced_toy(detach_neighbours=True)
    net.blocks[2].conv.weight.requires_grad_(True)
    out = net.blocks[1](torch.randn(2, 4, 6, 6))
    out.square().sum().backward()
    assert net.blocks[1].repl_coefficients['conv_weight'].grad.abs().sum() > 0
    assert net.blocks[0].conv.weight.grad is None
    assert net.blocks[2].conv.weight.grad is None


@pytest.mark.parametrize('granularity, shape', [('tensor', (2, )), ('channel', (2, 4)),
                                                ('submodule', (2, ))])
def test_granularity_shapes(granularity, shape):
    net, _ = replaced_toy(granularity=granularity)
    coefficients = net.blocks[1].repl_coefficients
    assert all(tuple(p.shape) == shape for p in coefficients.values())
    expected = {'submodule': {'conv', 'bn'}}.get(
        granularity, {'conv_weight', 'conv_bias', 'bn_weight', 'bn_bias'})
    assert set(coefficients) == expected


def test_loading_plain_state_dict_drops_replaced_weights_and_logs_once():
    messages = []
    torch.manual_seed(0)
    net = ToyNet()
    replace_blocks(net, [('blocks', 'blocks')], ReplacementConfig(warm_start=False),
                   log=messages.append)
    plain = ToyNet().state_dict()
    result = net.load_state_dict(plain, strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(  # the settings are the model's own
        k for k, _ in net.named_parameters() if COEFFICIENTS in k)
    assert len(messages) == 1 and 'blocks.1, blocks.3' in messages[0]
    torch.testing.assert_close(net.blocks[0].conv.weight, plain['blocks.0.conv.weight'])
    torch.testing.assert_close(net.blocks[1].bn.running_var, plain['blocks.1.bn.running_var'])
    torch.testing.assert_close(net.blocks[1].repl_coefficients['conv_weight'],
                               torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize('granularity', ['tensor', 'channel', 'submodule'])
def test_warm_start_fits_coefficients_to_pretrained_weights(granularity):
    torch.manual_seed(0)
    pretrained = ToyNet()
    with torch.no_grad():  # block 1 is exactly 0.3 * block 0 + 0.7 * block 2, block 3 is not
        for name, param in pretrained.blocks[1].named_parameters():
            param.copy_(0.3 * pretrained.blocks[0].get_parameter(name)
                        + 0.7 * pretrained.blocks[2].get_parameter(name))
    messages = []
    net = ToyNet()
    replace_blocks(net, [('blocks', 'blocks')],
                   ReplacementConfig(granularity=granularity, warm_start='weights'),
                   log=messages.append)
    result = net.load_state_dict(pretrained.state_dict(), strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, param in pretrained.blocks[1].named_parameters():
        owner, tensor = name.split('.')
        torch.testing.assert_close(getattr(net.blocks[1].get_submodule(owner), tensor), param,
                                   atol=1e-5, rtol=1e-4)
    assert len(messages) == 1
    assert 'blocks.1 0.000' in messages[0] and 'blocks.3 0.' in messages[0]
    assert 'blocks.3 0.000' not in messages[0]


def test_loading_another_plan_fails_clearly():
    net, _ = replaced_toy()
    other = ToyNet(depth=5)
    replace_blocks(other, [('blocks', 'blocks')], ReplacementConfig(blocks={'blocks': [2]}))
    with pytest.raises(CheckpointMismatchError) as error:
        other.load_state_dict(net.state_dict(), strict=False)
    assert error.value.checkpoint_blocks == ['blocks.1', 'blocks.3']
    assert error.value.model_blocks == ['blocks.2']
    channel, _ = replaced_toy(granularity='channel')
    with pytest.raises(CheckpointMismatchError) as error:
        channel.load_state_dict(net.state_dict())
    assert (error.value.checkpoint_spec.granularity, error.value.model_spec.granularity) == \
        ('tensor', 'channel')


@pytest.mark.parametrize('blocks, message', [
    ({'layer9': [1]}, r"unknown stage 'layer9'"),
    ({5: [1]}, r'unknown stage index 5'),
    ({'layer1': [3]}, r"unknown block index 3; stage layer1 has blocks 0..2"),
    ({'layer1': [0]}, r"layer1\[0\] is the network's first block"),
    ({'layer2': [1]}, r"layer2\[1\] is the network's last block"),
    ({'layer1': [1, 2]}, r'layer1\[1\] and layer1\[2\] are adjacent'),
    ({'layer1': [2], 1: [0]}, r'layer1\[2\] and layer2\[0\] are adjacent'),
    ({'layer1': [1, 1]}, r'duplicate'),
    ({'layer1': [1], 0: [1]}, r'given twice'),
    ({'layer1': 1}, r'must be a list'),
    ([1], r'must be a dict'),
])
def test_invalid_plans_name_stage_index_and_rule(blocks, message):
    with pytest.raises(PlanError, match=message):
        resolve_plan([('layer1', 3), ('layer2', 2)], blocks)


def test_explicit_plan_by_name_and_index_and_default_rule():
    stages = [('layer1', 3), ('layer2', 4), ('layer3', 6), ('layer4', 3)]
    assert resolve_plan(stages).to_dict() == {
        'layer1': [1], 'layer2': [1], 'layer3': [1, 3], 'layer4': [1]}
    assert resolve_plan(stages, {'layer3': [1, 3]}).replaced == (('layer3', 1), ('layer3', 3))
    assert resolve_plan(stages, {2: [3]}).replaced == (('layer3', 3), )
    assert resolve_plan(stages, {}).replaced == ()
    # the last block of a stage may be replaced: its successor lies in the next stage
    assert resolve_plan(stages, {'layer1': [2]}).neighbours(('layer1', 2)) == (
        ('layer1', 1), ('layer2', 0))


def test_unknown_options_and_values_are_rejected():
    with pytest.raises(ReplError, match=r"unknown option\(s\) \['blocks_'\]"):
        ReplacementConfig.from_dict({'blocks_': {}})
    with pytest.raises(ReplError, match=r"repl.granularity='row' is unknown"):
        ReplacementConfig.from_dict({'granularity': 'row'})


def test_adapters_bridge_channels_and_refuse_other_ranks():
    source = torch.randn(8, 4, 3, 3)
    sliced = build_adapter('slice_pad', source.shape, (4, 6, 1, 1))(source)
    assert sliced.shape == (4, 6, 1, 1)
    torch.testing.assert_close(sliced[:, :4], source[:4, :, 1:2, 1:2])
    assert sliced[:, 4:].abs().sum() == 0
    averaged = build_adapter('average', source.shape, (4, 8, 3, 3))(source)
    torch.testing.assert_close(averaged[0, :2], source[:2].mean(0)[:1].expand(2, 3, 3) / 2)
    projection = build_adapter('projection', source.shape, (4, 6, 3, 3))
    torch.testing.assert_close(projection(source), build_adapter(
        'slice_pad', source.shape, (4, 6, 3, 3))(source))
    assert sum(p.numel() for p in projection.parameters()) == 4 * 8 + 6 * 4
    assert build_adapter('slice_pad', source.shape, source.shape) is None
    with pytest.raises(AdapterError, match='no adapter can bridge a 4-d tensor'):
        build_adapter('slice_pad', source.shape, (4, 6))


def test_replacing_a_block_without_counterpart_fails():
    class Stem(nn.Module):
        def __init__(self):
            super().__init__()
            self.other = nn.Linear(2, 2)

        def forward(self, x):
            return x

    net = ToyNet()
    net.blocks[0] = Stem()
    with pytest.raises(PlanError, match=r"blocks\[1\] cannot be replaced: its parameter "
                                        r"'conv.weight' has no counterpart in its neighbour "
                                        r"blocks\[0\]"):
        replace_blocks(net, [('blocks', 'blocks')], ReplacementConfig(blocks={0: [1]}))


class BiasFreeBlock(nn.Module):
    """A residual MLP block without biases: its branch ends in ``branch.2.weight``."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.branch = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.ReLU(),
                                    nn.Linear(dim, dim, bias=False))

    def forward(self, x):
        return x + self.branch(x)


def test_identity_start_without_a_gradient_is_refused_with_every_way_out():
    """One 'submodule' pair weighs the whole branch: zero, the branch's output is O(c^2) when no
    bias ends it, so the pair would never move."""
    net = nn.Module()
    net.blocks = nn.Sequential(*[BiasFreeBlock() for _ in range(3)])
    plain = copy.deepcopy(net).state_dict()
    replace_blocks(net, [('blocks', 'blocks')], ReplacementConfig.from_dict(
        dict(granularity='submodule', warm_start='identity')),
        residual_ends=lambda block: ['branch.2.weight'])
    with pytest.raises(ReplError, match=r"\['branch'\] also weigh tensors inside it and no bias "
                                        r"ends it.*granularity='tensor' or 'channel'.*"
                                        r"warm_start='weights'.*warm_start='activations'.*"
                                        r'warm_start=False'):
        net.load_state_dict(plain, strict=False)
