"""The segmentation and classification demos train and evaluate end to end through the tools.

Tiny versions of ``make demo``-like runs: generated Cityscapes-layout data and a Fashion-MNIST
subset in tmp, a couple of iterations through ``tools/train.py``, the checkpoint evaluated by
``tools/test.py``, which prints every metric as ``name: value``.
"""
import pytest

from conftest import FMNIST, ROOT, make_demo_data, metric, plan_in, run_tool

SEG_DEMO = 'configs/demo/deeplabv3plus_repl_r50_demo.py'
CLS_DEMO = 'configs/demo/repl_resnet_fashion_mnist_demo.py'
R50_PLAN = {'layer1': [1], 'layer2': [1], 'layer3': [1, 3], 'layer4': [1]}


def test_make_demo_data_writes_cityscapes_for_mmseg(tmp_path):
    summary = make_demo_data('cityscapes', '--out', str(tmp_path), '--num-train', '2',
                             '--num-val', '1', '--image-size', '32', '64', '--seed', '3')
    assert summary['written'] and summary['params']['seed'] == 3
    assert summary['splits']['val']['paths'] == {'img_path': 'leftImg8bit/val',
                                                 'seg_map_path': 'gtFine/val'}
    images = sorted((tmp_path / 'leftImg8bit' / 'train').glob('*/*_leftImg8bit.png'))
    labels = sorted((tmp_path / 'gtFine' / 'train').glob('*/*_gtFine_labelTrainIds.png'))
    assert len(images) == len(labels) == 2
    again = make_demo_data('cityscapes', '--out', str(tmp_path), '--num-train', '2',
                           '--num-val', '1', '--image-size', '32', '64', '--seed', '3')
    assert not again['written']  # up to date: skipped


def test_make_demo_data_fashion_mnist_without_the_files_says_what_to_install(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        make_demo_data('fashion-mnist', '--out', str(tmp_path / 'out'), '--fmnist-dir',
                       str(tmp_path / 'nowhere'))
    assert exit_info.value.code == 2
    assert 'apt-get install dataset-fashion-mnist' in capsys.readouterr().err


@pytest.mark.slow  # 37-64 s here (two processes building DeepLabV3+ R50-D8); the demo config's
# train and val steps are in the fast suite (tests/test_configs.py)
def test_segmentation_demo_trains_and_tests(tmp_path):
    data = tmp_path / 'demo_cityscapes'
    # generated at 64x128, the size the demo trains and tests at: nothing is rescaled
    summary = make_demo_data('cityscapes', '--out', str(data), '--num-train', '4',
                             '--num-val', '2', '--image-size', '64', '128', '--no-color')
    assert summary['params']['image_size'] == [64, 128]
    options = [f'{split}_dataloader.dataset.data_root={data}/'
               for split in ('train', 'val', 'test')]
    options.append('train_dataloader.batch_size=2')
    work = tmp_path / 'work'
    # one iteration; evaluation is left to tools/test.py
    run_tool('tools/train.py', SEG_DEMO, '--work-dir', str(work), '--cfg-options', *options,
             'train_cfg.max_iters=1', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=1', 'param_scheduler.0.end=1')
    assert plan_in(work / 'iter_1.pth') == R50_PLAN

    result = run_tool('tools/test.py', SEG_DEMO, str(work / 'iter_1.pth'), '--work-dir',
                      str(tmp_path / 'test'), '--cfg-options', *options)
    assert 0 <= metric(result.stdout, 'mIoU') <= 100
    assert 0 <= metric(result.stdout, 'aAcc') <= 100


@pytest.mark.skipif(not (FMNIST / 't10k-labels-idx1-ubyte.gz').is_file(),
                    reason='needs Debian dataset-fashion-mnist')
def test_classification_demo_trains_and_tests(tmp_path):
    data = tmp_path / 'fashion_mnist'
    summary = make_demo_data('fashion-mnist', '--out', str(data), '--num-train', '128',
                             '--num-val', '64')
    assert summary['splits']['train']['num_images'] == 128
    assert summary['splits']['val']['num_images'] == 64
    options = [f'{split}_dataloader.dataset.data_root={data}/'
               for split in ('train', 'val', 'test')]
    work = tmp_path / 'work'
    result = run_tool('tools/train.py', CLS_DEMO, '--work-dir', str(work), '--cfg-options',
                      *options, 'train_dataloader.batch_size=32', 'val_dataloader.batch_size=32',
                      'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                      'default_hooks.checkpoint.interval=1')
    log = result.stdout + result.stderr
    assert 'Epoch(train) [1][4/4]' in log
    assert 'Epoch(val) [1][2/2]' in log  # the 64 t10k items: the val split, not the train one
    assert plan_in(work / 'epoch_1.pth') == {f'layer{i}': [1] for i in (1, 2, 3)}

    result = run_tool('tools/test.py', CLS_DEMO, str(work / 'epoch_1.pth'), '--work-dir',
                      str(tmp_path / 'test'), '--cfg-options', *options)
    assert 0 <= metric(result.stdout, 'accuracy/top1') <= 100


def test_classification_demo_without_its_data_says_where_it_looked(tmp_path):
    result = run_tool(str(ROOT / 'tools/train.py'), str(ROOT / CLS_DEMO), cwd=tmp_path,
                      check=False)
    assert result.returncode == 2
    assert 'data/fashion_mnist/ (train_dataloader.dataset.data_root)' in result.stderr
    assert 'Traceback' not in result.stderr
