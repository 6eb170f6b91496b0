"""Crash and resume: a run killed with SIGKILL after a checkpoint and resumed ends bitwise equal to
an uninterrupted run; a checkpoint carrying an unexpected pickled object is refused."""
import os

import pytest
import torch

from conftest import ROOT
from reliability_configs.common import HERE, TINY, data_options, make_tiny_classification_data, run

SHORT = ['train_cfg.max_iters=6', 'train_cfg.val_interval=2',
         'default_hooks.checkpoint.interval=2', 'param_scheduler.0.end=2',
         'param_scheduler.1.begin=2', 'param_scheduler.1.end=6']


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_classification_data(tmp_path_factory.mktemp('tiny_cls'))


def crash_resume(config, work_dir, data, *extra):
    return run('tools/crash_resume_check.py', config, '--checkpoint', 'iter_2.pth',
               '--work-dir', str(work_dir), '--cfg-options', *data_options(data), *SHORT,
               *extra, check=False)


def test_killed_and_resumed_run_equals_uninterrupted_run(tiny_data, tmp_path):
    """RepL-ResNet-20 with a shuffling sampler, RandomFlip, Mixup and drop path; killed after
    iteration 2 (validation ran there too), resumed to 6."""
    result = crash_resume(TINY, tmp_path, tiny_data)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = result.stdout
    assert 'killed (SIGKILL) after' in report and 'resumed from iteration 2' in report
    for group in ('weights', 'RepL coefficients', 'BN buffers', 'optimizer state',
                  'param schedulers', 'RNG states', 'loss curve'):
        line = next(line for line in report.splitlines() if line.strip().startswith(group))
        assert line.rstrip().endswith('equal'), line
    assert 'result: EQUAL' in report


@pytest.mark.slow
def test_without_rng_state_hook_the_resumed_run_differs(tiny_data, tmp_path):
    """The control: mmengine alone restores the seed, not the generators."""
    result = crash_resume(str(HERE / 'cifar_repl_tiny_no_rng_hook.py'), tmp_path, tiny_data)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert 'result: MISMATCH' in result.stdout
    assert 'RNGStateHook in custom_hooks: NO' in result.stdout


@pytest.mark.slow
def test_killed_and_resumed_run_with_data_workers(tiny_data, tmp_path):
    """Two persistent data workers: their generators are seeded by mmengine's worker_init_fn and
    replay the skipped batches, so the resumed run is still bitwise equal."""
    result = crash_resume(TINY, tmp_path, tiny_data, 'train_dataloader.num_workers=2',
                          'train_dataloader.persistent_workers=True')
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert 'result: EQUAL' in result.stdout


@pytest.mark.slow
def test_epoch_based_run_killed_after_an_epoch_and_resumed(tiny_data, tmp_path):
    """EpochBasedTrainLoop with DefaultSampler, killed after epoch 1 of 3 (4 iterations each):
    the resumed run starts the next epoch with the restored generators, bitwise equal too."""
    result = run('tools/crash_resume_check.py', str(HERE / 'cifar_repl_tiny_epochs.py'),
                 '--checkpoint', 'epoch_1.pth', '--work-dir', str(tmp_path), '--cfg-options',
                 *data_options(tiny_data), check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert 'result: EQUAL' in result.stdout


@pytest.mark.slow
def test_mask_rcnn_killed_and_resumed_run_equals_uninterrupted_run(coco_demo, tmp_path):
    """The demo Mask R-CNN RepL-R50: mmdet's RPN and RoI samplers draw from torch's global
    generator, the data pipeline (RandomFlip) from numpy's, one data worker."""
    data = [f'{split}_dataloader.dataset.data_root={coco_demo}/' for split in ('train', 'val')]
    result = run('tools/crash_resume_check.py', str(HERE / 'mask_rcnn_repl_demo_resume.py'),
                 '--checkpoint', 'iter_2.pth', '--work-dir', str(tmp_path), '--cfg-options',
                 *data, f'val_evaluator.ann_file={coco_demo}/annotations/instances_val2017.json',
                 threads=2, check=False, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert 'result: EQUAL' in result.stdout


class Payload:
    """Unpickling this runs a shell command: what a malicious checkpoint would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_resume_refuses_a_checkpoint_carrying_a_pickled_object(tiny_data, tmp_path):
    marker = tmp_path / 'payload_ran'
    checkpoint = tmp_path / 'iter_2.pth'
    torch.save({'meta': {'iter': 2, 'note': Payload(marker)}, 'state_dict': {}}, checkpoint)
    result = run(str(ROOT / 'tools/train.py'), TINY, '--work-dir', str(tmp_path / 'work'),
                 '--resume', str(checkpoint), '--cfg-options', *data_options(tiny_data),
                 check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'Refused to load a checkpoint' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not marker.exists()
