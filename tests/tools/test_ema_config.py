"""A config with mmengine's ``EMAHook`` (upstream RTMDet, ConvNeXt and DeiT configs have one)
through every tool: train, test, fold the averaged weights."""
import re

import pytest
import torch

from repl_mm.engine import read_checkpoint

from conftest import run_tool_here
from reliability_configs.common import HERE, data_options, make_tiny_classification_data

pytestmark = pytest.mark.usefixtures('one_thread')
EMA = str(HERE / 'cifar_repl_tiny_ema.py')


def test_train_test_and_fold_a_config_with_an_ema_hook(tmp_path):
    """tools/test.py must load the checkpoint after the hooks' before_run, or it fails with
    "'EMAHook' object has no attribute 'ema_model'"."""
    data = make_tiny_classification_data(tmp_path / 'data')
    options = ['--cfg-options', *data_options(data),
               f'test_dataloader.dataset.data_root={data}']
    code, _, err = run_tool_here('tools/train.py', EMA, '--work-dir', tmp_path / 'work',
                                 *options, 'train_cfg.max_iters=4')
    assert code == 0, err[-3000:]
    checkpoint_file = tmp_path / 'work' / 'iter_4.pth'
    code, out, err = run_tool_here('tools/test.py', EMA, checkpoint_file, '--work-dir',
                                   tmp_path / 'test', *options)
    assert code == 0, err[-3000:]
    assert re.search(r'^accuracy/top1: [0-9.]+$', out, re.M), out[-2000:]
    code, _, err = run_tool_here('tools/fold.py', EMA, checkpoint_file, tmp_path / 'folded')
    assert code == 0, err[-3000:]
    folded = torch.load(tmp_path / 'folded' / 'cifar_repl_tiny_ema_folded.pth',
                        weights_only=True)['state_dict']
    checkpoint = read_checkpoint(str(checkpoint_file))
    averaged, raw = checkpoint['state_dict'], checkpoint['ema_state_dict']
    key = 'backbone.layer1.0.conv1.weight'  # EMAHook swaps: state_dict holds the averages
    assert torch.equal(folded[key], averaged[key])
    assert not torch.equal(averaged[key], raw[f'module.{key}'])
