"""Tests of repl_mm.engine.hooks.safe_checkpoint_hook: ReplSafeCheckpointHook removes old
checkpoints only after the new one is written (a disk that fills up while it writes:
tests/integration/test_reliability_bad_input.py)."""
import pytest
import torch

from repl_mm.engine import trusted_checkpoint_globals

from conftest import tiny_runner
from reliability_configs.common import make_tiny_classification_data

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_classification_data(tmp_path_factory.mktemp('tiny_cls'))


def test_safe_checkpoint_hook_rotates_after_writing(tiny_data, tmp_path):
    work = tmp_path / 'work'
    _, runner = tiny_runner(work, tiny_data, **{
        'default_hooks.checkpoint.type': 'ReplSafeCheckpointHook', 'train_cfg.max_iters': 6})
    runner.train()
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_6.pth']
    with trusted_checkpoint_globals():
        checkpoint = torch.load(work / 'iter_6.pth', map_location='cpu')
    assert checkpoint['message_hub']['runtime_info']['keep_ckpt_ids'] == [6]
