"""Tests of repl_core.replace: blocks of a backbone replaced in place following a plan (fused,
light and removed kinds), on a toy block sequence in plain PyTorch and on real backbones.

The rest of the mechanism on the toy sequence is tested beside its modules: plan, synthesis,
coefficients, settings, adapters, state_dict_guard and warm_start."""
import pytest
import torch
from torch import nn

import repl_mm  # noqa: F401
from repl_core import (COEFFICIENTS, PlanError, ReplacementConfig, ReplError, replace_blocks,
                       synthesised_numel)

from mm_cases import SMALL_RESNETS, build_backbone
from toy_net import Bottleneck, ToyNet, conv_net, replaced_toy


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


def test_removed_kind_deletes_the_planned_blocks():
    net = conv_net(kind='removed')
    assert [type(b).__name__ for b in net.blocks] == [
        'Bottleneck', 'RemovedBlock', 'Bottleneck', 'RemovedBlock', 'Bottleneck']
    x = torch.randn(1, 32, 4, 4)
    torch.testing.assert_close(net.blocks[1](x), x)
    assert sum(p.numel() for p in net.parameters()) == 3 * sum(
        p.numel() for p in Bottleneck().parameters())


def test_frozen_norm_affines_stay_frozen_in_replaced_blocks():
    model = build_backbone('mmdet', SMALL_RESNETS['mmdet'],
                           norm_cfg=dict(type='BN', requires_grad=False))
    block = model.layer3[1]
    trains = {k: p.requires_grad for k, p in block.repl_coefficients.items()}
    assert trains == {'conv1_weight': True, 'bn1_weight': False, 'bn1_bias': False,
                      'conv2_weight': True, 'bn2_weight': False, 'bn2_bias': False,
                      'conv3_weight': True, 'bn3_weight': False, 'bn3_bias': False}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    norms = {n: block.get_submodule(n).weight.detach().clone() for n in ('bn1', 'bn2', 'bn3')}
    conv = block.conv2.weight.detach().clone()
    sum(o.mean() for o in model(torch.randn(2, 3, 32, 32))).backward()
    optimizer.step()
    assert all(torch.equal(block.get_submodule(n).weight, w) for n, w in norms.items())
    assert not torch.equal(block.conv2.weight, conv)
