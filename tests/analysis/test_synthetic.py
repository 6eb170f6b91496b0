"""Tests of repl_mm.analysis.synthetic: training inputs without a dataset."""
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import repl_mm  # noqa: F401
from repl_mm.analysis.synthetic import framework_of, synthetic_batch

from conftest import write_config


def test_a_classification_batch_trains_the_configs_model(tmp_path):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(write_config(tmp_path / 'repl.py', 'RepLCIFARResNet',
                                           extra=', repl=dict()')))
    assert framework_of(cfg) == 'mmpretrain'
    batch = synthetic_batch('mmpretrain', (32, 32), batch_size=2)
    assert [tuple(image.shape) for image in batch['inputs']] == [(3, 32, 32)] * 2
    assert all(image.dtype == torch.uint8 for image in batch['inputs'])
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert torch.isfinite(losses['loss'])
