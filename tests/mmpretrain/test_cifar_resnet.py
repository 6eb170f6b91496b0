"""Tests of repl_mm.mmpretrain.cifar_resnet: the classic CIFAR ResNet of depth 6n+2."""
import pytest
import torch

from repl_mm.mmpretrain.cifar_resnet import CIFARResNet


def test_resnet_20_is_the_papers_network():
    model = CIFARResNet(depth=20)
    assert [len(getattr(model, f'layer{i}')) for i in (1, 2, 3)] == [3, 3, 3]
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(0.27e6, rel=0.05)
    (out, ) = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64, 8, 8)


def test_a_depth_not_6n_plus_2_is_refused():
    with pytest.raises(ValueError, match='depth must be 6n\\+2'):
        CIFARResNet(depth=18)
