"""Tests of repl_mm.engine.hooks.repl_checkpoint_hook: each RepL backbone's replacement recorded
in the checkpoint's meta."""
from mmengine.config import Config

import repl_mm  # noqa: F401
from repl_mm.analysis.synthetic import synthetic_runner

from conftest import plan_in, write_config


def test_the_checkpoint_meta_holds_the_plan(tmp_path):
    cfg = Config.fromfile(str(write_config(tmp_path / 'repl.py', 'RepLCIFARResNet',
                                           extra=", repl=dict(blocks={'layer2': [1]})")))
    synthetic_runner(cfg, str(tmp_path / 'work'), max_iters=1, batch_size=2, checkpoint=True,
                     custom_hooks=[dict(type='ReplCheckpointHook')]).train()
    assert plan_in(tmp_path / 'work' / 'iter_1.pth') == {'layer1': [], 'layer2': [1],
                                                         'layer3': []}
