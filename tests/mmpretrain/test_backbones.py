"""Tests of repl_mm.mmpretrain.backbones: the RepL backbones in mmpretrain's registry."""
import pytest
from mmengine.registry import init_default_scope
from mmpretrain.models import backbones as upstream
from mmpretrain.registry import MODELS

import repl_mm  # noqa: F401
from repl_core import replaced_blocks
from repl_mm.models import RepLBackboneMixin
from repl_mm.mmpretrain.cifar_resnet import CIFARResNet


@pytest.mark.parametrize('name, base', [
    ('RepLResNet', upstream.ResNet), ('RepLResNet_CIFAR', upstream.ResNet_CIFAR),
    ('RepLCIFARResNet', CIFARResNet), ('RepLSwinTransformer', upstream.SwinTransformer),
    ('RepLVisionTransformer', upstream.VisionTransformer)])
def test_each_is_registered_as_a_subclass_of_its_upstream_class(name, base):
    init_default_scope('mmpretrain')
    cls = MODELS.get(name)
    assert issubclass(cls, base) and issubclass(cls, RepLBackboneMixin)


def test_the_cifar_resnet_builds_with_its_default_plan():
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(type='RepLCIFARResNet', depth=20, repl=dict()))
    assert [name for name, _ in replaced_blocks(model)] == ['layer1.1', 'layer2.1', 'layer3.1']
