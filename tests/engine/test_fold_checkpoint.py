"""Tests of repl_mm.engine.fold_checkpoint: the plain config a folded checkpoint is given (the
whole fold through tools/fold.py: tests/tools/test_fold_tool.py)."""
import numpy as np
from mmengine.config import Config

import repl_mm  # noqa: F401
from repl_mm.engine.fold_checkpoint import plain_config, primitive

from conftest import write_config


def test_primitive_keeps_what_a_plain_config_can_hold():
    assert primitive({'a': (1, 2.0), 'b': np.float32(0.5), 'c': [None, 'x'], 'd': object()}) == {
        'a': (1, 2.0), 'b': 0.5, 'c': [None, 'x']}


def test_the_plain_config_needs_no_repl_mm(tmp_path):
    cfg = Config.fromfile(str(write_config(tmp_path / 'repl.py', 'RepLResNet_CIFAR', depth=18,
                                           channels=512, extra=', repl=dict()')))
    plain, still_ours = plain_config(cfg)
    assert still_ours == []
    assert plain.model.backbone.type == 'ResNet_CIFAR' and 'repl' not in plain.model.backbone
    assert 'custom_imports' not in plain and 'custom_hooks' not in plain
    assert plain.optim_wrapper.paramwise_cfg.custom_keys == {}
