"""Tests of repl_mm.engine.convert_checkpoint (tools/convert.py: tests/tools/test_convert_tool.py).
A transformer converts from a plain checkpoint without data: its default start is identity."""
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401
from repl_mm.engine.convert_checkpoint import convert_checkpoint
from repl_mm.models import plain_model_cfg


def test_a_transformer_converts_without_data_as_its_shortcut(tmp_path):
    backbone = dict(type='RepLVisionTransformer', img_size=32, patch_size=8, in_channels=3,
                    arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                              feedforward_channels=64))
    cfg = Config(dict(
        default_scope='mmpretrain',
        model=dict(type='ImageClassifier', backbone=backbone, neck=None,
                   head=dict(type='LinearClsHead', num_classes=3, in_channels=32)),
        train_dataloader=dict(batch_size=2, dataset=dict(
            type='CustomDataset', data_root=str(tmp_path / 'no_data'), pipeline=[]))))
    cfg.dump(str(tmp_path / 'vit.py'))
    cfg = Config.fromfile(str(tmp_path / 'vit.py'))
    init_default_scope('mmpretrain')
    plain = MODELS.build(plain_model_cfg(cfg.model))
    torch.save({'state_dict': plain.state_dict()}, tmp_path / 'plain.pth')
    result = convert_checkpoint(cfg, str(tmp_path / 'plain.pth'), str(tmp_path / 'out'), 'vit')
    assert result.warm_start == 'identity' and result.output_error is None  # no data read
    assert result.plan == {'layers': [1]}
