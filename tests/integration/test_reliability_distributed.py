"""Distributed training on CPU: 2 gloo processes through tools/dist_train.sh, a SyncBN config,
identical replicas, and a 2-process checkpoint resumed by 1 process."""
import sys

import torch

from repl_mm.engine import trusted_checkpoint_globals

from conftest import ROOT, free_port
from reliability_configs.common import (HERE, data_options, make_tiny_classification_data, run,
                                        run_command)

SYNCBN = str(HERE / 'cifar_repl_tiny_syncbn.py')


def test_two_gloo_processes_train_syncbn_config_and_one_process_resumes(tmp_path):
    data = make_tiny_classification_data(tmp_path / 'data')
    work = tmp_path / 'work'
    result = run_command(['bash', str(ROOT / 'tools/dist_train.sh'), SYNCBN, '2', '--work-dir',
                          str(work), '--cfg-options', *data_options(data),
                          'train_cfg.max_iters=4', 'train_cfg.val_interval=4'], check=False,
                         env=dict(PORT=str(free_port()), PYTHON=sys.executable))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert 'rank 0 of 2; 1 SyncBN configs turned into BN' in log
    # DDP without find_unused_parameters: every parameter, coefficients included, gets a gradient
    assert 'unused parameters' not in log and 'Expected to have finished reduction' not in log
    assert 'parameters identical on all 2 processes at 4 checks' in log
    with trusted_checkpoint_globals():
        checkpoint = torch.load(work / 'iter_4.pth', map_location='cpu')
    assert checkpoint['rng_states']['world_size'] == 2
    coefficient = checkpoint['state_dict']['backbone.layer2.1.repl_coefficients.conv1_weight']
    assert coefficient.shape == (2, )

    # the 2-process checkpoint resumes in 1 process (SyncBN stays SyncBN there: same keys)
    result = run(str(ROOT / 'tools/train.py'), SYNCBN, '--work-dir', str(work), '--resume',
                 str(work / 'iter_4.pth'), '--cfg-options', *data_options(data),
                 'train_cfg.max_iters=6', 'train_cfg.val_interval=6')
    log = result.stdout + result.stderr
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'written by 2 processes and is resumed by 1' in log
    with trusted_checkpoint_globals():
        final = torch.load(work / 'iter_6.pth', map_location='cpu')
    assert final['meta']['iter'] == 6
    assert final['state_dict'].keys() == checkpoint['state_dict'].keys()
    assert all(torch.isfinite(v).all() for v in final['state_dict'].values()
               if v.is_floating_point())
