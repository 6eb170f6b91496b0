"""Tests of repl_mm.mmseg.backbones: the RepL backbones in mmseg's registry."""
import pytest
import torch
from mmseg.models import backbones as upstream
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import repl_mm  # noqa: F401
from repl_core import replaced_blocks
from repl_mm.models import RepLBackboneMixin


@pytest.mark.parametrize('name, base', [
    ('RepLResNet', upstream.ResNet), ('RepLResNetV1c', upstream.ResNetV1c),
    ('RepLSwinTransformer', upstream.SwinTransformer),
    ('RepLVisionTransformer', upstream.VisionTransformer)])
def test_each_is_registered_as_a_subclass_of_its_upstream_class(name, base):
    init_default_scope('mmseg')
    cls = MODELS.get(name)
    assert issubclass(cls, base) and issubclass(cls, RepLBackboneMixin)


def test_resnet_v1c_builds_with_its_default_plan_and_runs():
    init_default_scope('mmseg')
    model = MODELS.build(dict(type='RepLResNetV1c', depth=50, stem_channels=16,
                              base_channels=16, repl=dict()))
    assert [name for name, _ in replaced_blocks(model)] == [
        'layer1.1', 'layer2.1', 'layer3.1', 'layer3.3', 'layer4.1']
    outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 128, 256, 512]
