"""Tests of repl_core.coefficients: a replaced block's coefficients and their shapes."""
import pytest

from toy_net import replaced_toy


@pytest.mark.parametrize('granularity, shape', [('tensor', (2, )), ('channel', (2, 4)),
                                                ('submodule', (2, ))])
def test_granularity_shapes(granularity, shape):
    net, _ = replaced_toy(granularity=granularity)
    coefficients = net.blocks[1].repl_coefficients
    assert all(tuple(p.shape) == shape for p in coefficients.values())
    expected = {'submodule': {'conv', 'bn'}}.get(
        granularity, {'conv_weight', 'conv_bias', 'bn_weight', 'bn_bias'})
    assert set(coefficients) == expected
