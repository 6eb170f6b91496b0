"""``repl_core.warm_start``: the one place a start is computed (the load guard only calls it)."""
import copy

import pytest
import torch
from torch import nn

from repl_core import COEFFICIENTS, LightSpec, ReplacementConfig, replace_blocks, replaced_blocks
from repl_core.warm_start import residual_keys, start_from_plain_state_dict


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return x + torch.relu(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[Block() for _ in range(5)])


def replaced(warm_start, kind='fused'):
    torch.manual_seed(0)
    net = Net()
    replace_blocks(net, [('blocks', 'blocks')],
                   ReplacementConfig(kind=kind, warm_start=warm_start),
                   light_spec=lambda block: LightSpec('depthwise', 'conv.weight', 'bn'),
                   residual_ends=lambda block: ['bn.weight', 'bn.bias'])
    return net


@pytest.mark.parametrize('kind', ['fused', 'light'])
@pytest.mark.parametrize('warm_start', [None, 'weights', 'identity', 'activations'])
def test_the_guard_starts_a_plain_load_exactly_as_the_warm_start_module_computes(kind,
                                                                                 warm_start):
    """Loading a plain state dict gives the coefficients ``start_from_plain_state_dict``
    writes, and nothing else: the guard computes no start of its own."""
    torch.manual_seed(1)
    plain = Net().state_dict()
    loaded = replaced(warm_start, kind)
    loaded.load_state_dict(plain, strict=False)

    expected_model = replaced(warm_start, kind)
    state = copy.deepcopy(plain)
    sentence = start_from_plain_state_dict(expected_model, warm_start, kind,
                                           {k: k for k in state}, state, '')
    for path, block in replaced_blocks(loaded):
        for key, value in getattr(block, COEFFICIENTS).items():
            name = f'{path}.{COEFFICIENTS}.{key}'
            want = state.get(name, getattr(expected_model.get_submodule(path),
                                           COEFFICIENTS)[key])
            torch.testing.assert_close(value, want, rtol=0, atol=0)
    if warm_start in ('identity', 'activations'):
        assert 'shortcut' in sentence
        for path, block in replaced_blocks(loaded):
            for key in residual_keys(block):
                assert not getattr(block, COEFFICIENTS)[key].any()
    elif warm_start == 'weights':
        assert ('least squares' in sentence) == (kind == 'fused')
    else:
        assert sentence == ''
