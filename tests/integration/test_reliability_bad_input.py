"""Bad input: each case ends with one clear message (exit code 2 from the tools, no traceback) and
loses nothing: missing or malformed data, a corrupt image, an empty annotation set, an impossible
plan, a coefficient that turns NaN, a disk that fills up while a checkpoint is written."""
import errno
import hashlib
import json
import os
import resource
import shutil

import pytest
import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook

from repl_mm.engine import trusted_checkpoint_globals
from repl_mm.engine.checkpoint_files import CorruptCheckpointError
from repl_mm.engine.explain_errors import (CheckpointWriteError, DiskFullError,
                                           NonFiniteTrainingError, explain_errors)

from conftest import tiny_runner
from reliability_configs.common import TINY, data_options, make_tiny_classification_data, run

DEMO = 'configs/demo/mask_rcnn_repl_r50_demo.py'


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_classification_data(tmp_path_factory.mktemp('tiny_cls'))


pytestmark = pytest.mark.usefixtures('one_thread')


def coco_copy(coco_demo, tmp_path):
    root = tmp_path / 'coco'
    shutil.copytree(coco_demo, root)
    return root


def demo_options(root):
    return ([f'{split}_dataloader.dataset.data_root={root}/' for split in ('train', 'val')]
            + [f'val_evaluator.ann_file={root}/annotations/instances_val2017.json'])


def assert_clean_failure(result, *phrases):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-4000:]
    assert 'Traceback' not in result.stderr, result.stderr[-4000:]
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr[-4000:]


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- data -----------------------------------------------------------------------------------
def test_missing_data_root_names_every_path(tmp_path):
    missing = tmp_path / 'no_such_data'
    result = run('tools/train.py', TINY, '--work-dir', str(tmp_path / 'work'),
                 '--cfg-options', *data_options(missing), check=False)
    assert_clean_failure(result, f'{missing} (train_dataloader.dataset.data_root)',
                         f'{missing} (val_dataloader.dataset.data_root)')


def test_missing_annotation_file_is_named(coco_demo, tmp_path):
    root = coco_copy(coco_demo, tmp_path)
    (root / 'annotations' / 'instances_train2017.json').unlink()
    result = run('tools/train.py', DEMO, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                 *demo_options(root), check=False)
    assert_clean_failure(result, f'{root}/annotations/instances_train2017.json '
                                 f'(train_dataloader.dataset.ann_file)')


def test_truncated_annotation_json_is_named(coco_demo, tmp_path):
    root = coco_copy(coco_demo, tmp_path)
    ann = root / 'annotations' / 'instances_train2017.json'
    ann.write_text(ann.read_text()[:1000])
    result = run('tools/train.py', DEMO, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                 *demo_options(root), check=False)
    assert_clean_failure(result, 'An annotation file is not valid JSON', str(ann), 'truncated')


def test_empty_annotation_set_is_named(coco_demo, tmp_path):
    root = coco_copy(coco_demo, tmp_path)
    ann = root / 'annotations' / 'instances_train2017.json'
    data = json.loads(ann.read_text())
    data['annotations'] = []  # filter_empty_gt then drops every image
    ann.write_text(json.dumps(data))
    result = run('tools/train.py', DEMO, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                 *demo_options(root), check=False)
    assert_clean_failure(result, 'has no samples', str(ann), 'filter_empty_gt')


def test_corrupt_image_stops_training_naming_the_file(tmp_path):
    data = make_tiny_classification_data(tmp_path / 'data')
    corrupt = data / 'train' / 'green' / '3.png'
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # a PNG cut short
    result = run('tools/train.py', TINY, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                 *data_options(data), 'train_cfg.max_iters=4', check=False)
    assert_clean_failure(result, f'Could not decode the image {corrupt}',
                         "ignore_empty=True and imdecode_backend='pillow'")


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_corrupt_image_with_ignore_empty(coco_demo, tmp_path, backend):
    """mmcv/mmengine's convention, made explicit. LoadImageFromFile(ignore_empty=True) returns
    None for an image it cannot read and a training dataset then draws another, random sample;
    a test dataset fails. But cv2 (the default decoder) returns no image rather than raising
    on corrupt bytes, and the assert after ignore_empty's try block fires: only the pillow
    decoder lets training skip a corrupt image."""
    from mmdet.datasets import CocoDataset
    root = coco_copy(coco_demo, tmp_path)
    corrupt = root / 'train2017' / '000000000001.png'
    corrupt.write_bytes(corrupt.read_bytes()[:100])  # a PNG cut short
    pipeline = [dict(type='LoadImageFromFile', ignore_empty=True, imdecode_backend=backend),
                dict(type='LoadAnnotations', with_bbox=True)]
    kwargs = dict(data_root=str(root), ann_file='annotations/instances_train2017.json',
                  data_prefix=dict(img='train2017/'), pipeline=pipeline,
                  metainfo=dict(classes=('trouser', 'bag', 'ankle_boot')))
    train = CocoDataset(**kwargs)
    index = next(i for i in range(len(train))
                 if train.get_data_info(i)['img_path'] == str(corrupt))
    if backend == 'cv2':
        with pytest.raises(AssertionError, match=f'failed to load image: {corrupt}'):
            train[index]
        return
    assert train[index]['img_path'] != str(corrupt)  # another sample in its place
    test = CocoDataset(test_mode=True, **kwargs)
    with pytest.raises(Exception, match='should not get `None`'):
        test[index]


# ---- model ----------------------------------------------------------------------------------
def test_impossible_block_is_named(tiny_data, tmp_path):
    result = run('tools/train.py', TINY, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                 *data_options(tiny_data), 'model.backbone.repl.blocks.layer2=[0]', check=False)
    assert_clean_failure(result, 'layer2[0] cannot be replaced',
                         "parameter 'downsample.0.weight' has no counterpart")


def test_nan_coefficient_stops_the_tool(tiny_data, tmp_path):
    result = run('tools/train.py', TINY, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                 *data_options(tiny_data), 'model.backbone.repl.init=(nan,nan)', check=False)
    assert_clean_failure(result, 'Training stopped at iteration 1',
                         'backbone.layer1.1 (conv1_weight=nan', 'loss=nan',
                         'no checkpoint was written yet')
    assert not list((tmp_path / 'work').glob('*.pth'))


class PoisonCoefficient(Hook):
    """Sets a coefficient to NaN before iteration ``at``, as an overflowing update would."""

    priority = 'HIGHEST'

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            with torch.no_grad():
                runner.model.backbone.layer2[1].repl_coefficients['conv1_weight'].fill_(
                    float('nan'))


def test_nan_guard_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    _, runner = tiny_runner(tmp_path / 'guarded', tiny_data)
    runner.register_hook(PoisonCoefficient(at=3))
    with pytest.raises(NonFiniteTrainingError) as error:
        runner.train()
    good = tmp_path / 'guarded' / 'iter_2.pth'
    assert error.value.iteration == 3
    assert error.value.non_finite_coefficients['backbone.layer2.1']['conv1_weight'] == 'nan'
    assert error.value.non_finite_losses == {'loss': 'nan'}
    assert error.value.last_checkpoint == str(good)
    assert str(good) in str(error.value) and 'backbone.layer2.1' in str(error.value)
    assert sorted(p.name for p in (tmp_path / 'guarded').glob('*.pth')) == ['iter_2.pth']
    with trusted_checkpoint_globals():
        checkpoint = torch.load(good, map_location='cpu')
    assert checkpoint['meta']['iter'] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint['state_dict'].values()
               if v.is_floating_point())

    # the control: without the guard, training goes on and the NaN state replaces iter_2.pth
    _, runner = tiny_runner(tmp_path / 'unguarded', tiny_data,
                            custom_hooks=[dict(type='ReplCheckpointHook')])
    runner.register_hook(PoisonCoefficient(at=3))
    runner.train()
    assert sorted(p.name for p in (tmp_path / 'unguarded').glob('*.pth')) == ['iter_4.pth']
    with trusted_checkpoint_globals():
        broken = torch.load(tmp_path / 'unguarded' / 'iter_4.pth', map_location='cpu')
    assert torch.isnan(broken['state_dict']['backbone.layer2.1.repl_coefficients.conv1_weight']
                       ).all()


@pytest.fixture
def disk_full_at_iter_4(monkeypatch):
    """Writing iter_4.pth stops halfway with ENOSPC, as on a full disk."""
    put = LocalBackend.put

    def full_put(self, obj, filepath):
        if str(filepath).endswith('iter_4.pth'):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', full_put)


def test_disk_full_with_mmengine_checkpoint_hook_loses_the_checkpoint(
        tiny_data, tmp_path, disk_full_at_iter_4):
    """Why ReplSafeCheckpointHook exists: with max_keep_ckpts=1 mmengine removes iter_2.pth
    before writing iter_4.pth, so a failed write leaves no complete checkpoint."""
    work = tmp_path / 'work'
    cfg, runner = tiny_runner(work, tiny_data)
    with pytest.raises(DiskFullError) as error:
        with explain_errors(cfg):
            runner.train()
    assert error.value.errno == errno.ENOSPC and error.value.last_checkpoint is None
    assert 'ReplSafeCheckpointHook' in str(error.value)  # the fix it names
    assert not (work / 'iter_2.pth').exists()
    with pytest.raises(CorruptCheckpointError) as corrupt:
        with explain_errors(cfg, str(work / 'iter_4.pth')), trusted_checkpoint_globals():
            torch.load(work / 'iter_4.pth', map_location='cpu')
    assert corrupt.value.path == str(work / 'iter_4.pth')


def test_disk_full_with_safe_checkpoint_hook_keeps_the_last_checkpoint(
        tiny_data, tmp_path, disk_full_at_iter_4):
    work = tmp_path / 'work'
    _, runner = tiny_runner(work, tiny_data,
                            **{'default_hooks.checkpoint.type': 'ReplSafeCheckpointHook'})
    with pytest.raises(CheckpointWriteError) as error:
        runner.train()
    assert error.value.errno == errno.ENOSPC and error.value.removed
    assert error.value.path == str(work / 'iter_4.pth') and error.value.iteration == 4
    assert error.value.last_checkpoint == str(work / 'iter_2.pth')
    assert str(work / 'iter_2.pth') in str(error.value)
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')


def test_disk_full_through_the_tool_keeps_the_last_checkpoint(tiny_data, tmp_path):
    """A real failed write: the resumed run may write files of at most 512 KiB (RLIMIT_FSIZE;
    its logs are smaller, a checkpoint is about 1.5 MB), so writing iter_4.pth fails with
    EFBIG halfway, as on a full disk."""
    work = tmp_path / 'work'
    options = [*data_options(tiny_data), 'default_hooks.checkpoint.type=ReplSafeCheckpointHook',
               'default_hooks.checkpoint.max_keep_ckpts=1', 'train_cfg.val_interval=10']
    run('tools/train.py', TINY, '--work-dir', str(work), '--cfg-options', *options,
        'train_cfg.max_iters=2')
    good = work / 'iter_2.pth'
    before = sha256(good)

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, resource.RLIM_INFINITY))

    result = run('tools/train.py', TINY, '--work-dir', str(work), '--resume', '--cfg-options',
                 *options, 'train_cfg.max_iters=4', preexec_fn=limit_file_size, check=False)
    assert_clean_failure(result, f'Could not write the checkpoint {work / "iter_4.pth"}',
                         'File too large', f'The last complete checkpoint is {good}')
    assert sha256(good) == before
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']
    assert (work / 'last_checkpoint').read_text() == str(good)
