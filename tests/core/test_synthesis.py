"""Tests of repl_core.synthesis: a replaced block's tensors synthesised from its neighbours'
(NeighbourSynthesis and its attachment), checked against a hand-written forward."""
import copy

import torch
from torch import nn

from repl_core import COEFFICIENTS

from toy_net import ToyNet, replaced_toy


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
