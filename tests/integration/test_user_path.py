"""End to end, the path OpenMMLab users take: DDP training with activation checkpointing through
``tools/dist_train.sh`` (2 gloo processes).

The rest of the user's path is tested beside the modules: frozen stages and plans in
tests/models/test_repl_backbone.py, pretrained and RepL checkpoints in
tests/core/test_state_dict_guard.py, SyncBN in tests/core/test_norm_rebuild.py, DDP with activation
checkpointing in tests/core/test_activation_checkpointing.py, weight decay from configs as they
ship in tests/core/test_coefficient_steps.py, ``--cfg-options`` plans in tests/engine/test_cli.py.
"""
import sys

import pytest

from conftest import ROOT, free_port
from reliability_configs.common import (TINY, data_options, make_tiny_classification_data,
                                        run_command)

pytestmark = pytest.mark.usefixtures('one_thread')


def test_ddp_with_cp_through_dist_train(tmp_path):
    data = make_tiny_classification_data(tmp_path / 'data')
    result = run_command(['bash', str(ROOT / 'tools/dist_train.sh'), TINY, '2', '--work-dir',
                          str(tmp_path / 'work'), '--cfg-options', *data_options(data),
                          'model.backbone.with_cp=True', 'train_cfg.max_iters=2',
                          'train_cfg.val_interval=2'],
                         env=dict(PORT=str(free_port()), PYTHON=sys.executable))
    assert (tmp_path / 'work' / 'iter_2.pth').is_file(), result.stdout[-2000:]
