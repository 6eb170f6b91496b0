"""The transformer demos train and evaluate end to end through the tools, at tiny size: RepL-Swin-T
Mask R-CNN on generated COCO-layout data, UPerNet RepL-Swin-T on generated Cityscapes-layout data
and a small RepL-ViT on a Fashion-MNIST subset. One iteration (a few for the ViT), then
``tools/test.py`` on the checkpoint, which prints every metric as ``name: value``."""
import json

import pytest

from conftest import FMNIST, make_demo_data, metric, plan_in, run_tool

# 2-block stages keep their blocks
SWIN_PLAN = {'stages.0': [], 'stages.1': [], 'stages.2': [1, 3], 'stages.3': []}


def test_swin_mask_rcnn_demo_trains_and_tests(coco_demo, tmp_path):
    config = 'configs/demo/mask_rcnn_repl_swin-t_demo.py'
    ann = f'{coco_demo}/annotations/instances_val2017.json'
    options = [f'{split}_dataloader.dataset.data_root={coco_demo}/'
               for split in ('train', 'val', 'test')]
    options += [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']
    work = tmp_path / 'work'
    run_tool('tools/train.py', config, '--work-dir', str(work), '--cfg-options', *options,
             'train_dataloader.batch_size=2', 'train_cfg.max_iters=1', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=1', 'param_scheduler.0.end=1',
             'default_hooks.logger.interval=1')
    assert plan_in(work / 'iter_1.pth') == SWIN_PLAN
    [scalars] = work.glob('*/vis_data/scalars.json')
    [line] = [record for record in map(json.loads, scalars.read_text().splitlines())
              if record.get('iter') == 1]  # TrainingCostHook, on by default in repl-mm configs
    assert line['cost/replaced_blocks'] == 2 and line['cost/cpu_peak_rss_mb'] > 0
    assert 'repl/backbone.stages.2.blocks.1/a' in line

    result = run_tool('tools/test.py', config, str(work / 'iter_1.pth'), '--work-dir',
                      str(tmp_path / 'test'), '--cfg-options', *options)
    for name in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert f'{name}: ' in result.stdout


def test_swin_upernet_demo_trains_and_tests(tmp_path):
    config = 'configs/demo/upernet_repl_swin-t_demo.py'
    data = tmp_path / 'demo_cityscapes'
    make_demo_data('cityscapes', '--out', str(data), '--num-train', '2', '--num-val', '1',
                   '--image-size', '64', '128', '--no-color')
    options = [f'{split}_dataloader.dataset.data_root={data}/'
               for split in ('train', 'val', 'test')]
    work = tmp_path / 'work'
    run_tool('tools/train.py', config, '--work-dir', str(work), '--cfg-options', *options,
             'train_dataloader.batch_size=2', 'train_cfg.max_iters=1', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=1', 'param_scheduler.0.end=1')
    assert plan_in(work / 'iter_1.pth') == SWIN_PLAN

    result = run_tool('tools/test.py', config, str(work / 'iter_1.pth'), '--work-dir',
                      str(tmp_path / 'test'), '--cfg-options', *options)
    assert 0 <= metric(result.stdout, 'mIoU') <= 100


@pytest.mark.skipif(not (FMNIST / 't10k-labels-idx1-ubyte.gz').is_file(),
                    reason='needs Debian dataset-fashion-mnist')
def test_vit_fashion_mnist_demo_trains_and_tests(tmp_path):
    config = 'configs/demo/repl_vit_fashion_mnist_demo.py'
    data = tmp_path / 'fashion_mnist'
    make_demo_data('fashion-mnist', '--out', str(data), '--num-train', '128', '--num-val', '64')
    options = [f'{split}_dataloader.dataset.data_root={data}/'
               for split in ('train', 'val', 'test')]
    work = tmp_path / 'work'
    result = run_tool('tools/train.py', config, '--work-dir', str(work), '--cfg-options',
                      *options, 'train_dataloader.batch_size=32', 'val_dataloader.batch_size=32',
                      'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                      'default_hooks.checkpoint.interval=1')
    assert 'Epoch(train) [1][4/4]' in result.stdout + result.stderr
    assert plan_in(work / 'epoch_1.pth') == {'layers': [1, 3]}

    result = run_tool('tools/test.py', config, str(work / 'epoch_1.pth'), '--work-dir',
                      str(tmp_path / 'test'), '--cfg-options', *options)
    assert 0 <= metric(result.stdout, 'accuracy/top1') <= 100
