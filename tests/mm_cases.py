"""Small real backbones of each framework, as several test modules build them."""
import torch
from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401

SMALL_RESNETS = {
    'mmdet': dict(type='RepLResNet', depth=50, base_channels=16),
    'mmseg': dict(type='RepLResNetV1c', depth=50, stem_channels=16, base_channels=16),
    'mmpretrain': dict(type='RepLResNet', depth=50, base_channels=16),
}
SMALL_SWIN = dict(type='RepLSwinTransformer', embed_dims=32, depths=(2, 2, 4, 2),
                  num_heads=(1, 2, 4, 8), window_size=4)
SMALL_VIT = dict(type='RepLVisionTransformer', img_size=32, patch_size=8,
                 arch=dict(embed_dims=32, num_layers=5, num_heads=2, feedforward_channels=64))


def build_backbone(scope, cfg, **kwargs):
    init_default_scope(scope)
    return MODELS.build(dict(cfg, **kwargs))


def backbone_outputs(model, x):
    """The backbone's output tensors, whether it returns one or a tuple."""
    out = model(x)
    return [o for o in (out if isinstance(out, (tuple, list)) else [out]) if torch.is_tensor(o)]
