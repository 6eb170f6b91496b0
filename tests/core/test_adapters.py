"""Tests of repl_core.adapters: bringing a neighbour's tensor to the replaced block's shape."""
import pytest
import torch

from repl_core import AdapterError, build_adapter


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


def test_a_name_no_adapter_implements_is_refused():
    with pytest.raises(AdapterError, match="no adapter is called 'crop'"):
        build_adapter('crop', (4, 6), (8, 6), what='layer1.1.conv1.weight')
