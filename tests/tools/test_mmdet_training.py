"""Real mmdet train and test steps with RepL-ResNet-50, through the API and through the tools."""
import shutil

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import repl_mm  # noqa: F401
from repl_mm.engine import trusted_checkpoint_globals

from conftest import ROOT, rename_categories, run_tool

DEMO = 'configs/demo/mask_rcnn_repl_r50_demo.py'
COCO = 'configs/mask_rcnn_repl_r50_coco.py'


def demo_cfg(data_root) -> Config:
    cfg = Config.fromfile(str(ROOT / DEMO))
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(data_root)
    return cfg


def test_demo_config_train_step_and_test_step(coco_demo):
    from mmdet.registry import DATASETS, MODELS
    init_default_scope('mmdet')
    cfg = demo_cfg(coco_demo)
    # zero_init_residual starts every block's last BN at 0, so (a, b) would get gradient only
    # after the neighbours' BN weights moved; without it they move at the first step
    cfg.model.backbone.zero_init_residual = False
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[0], dataset[1]])
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = model.backbone.layer3[3].repl_coefficients['conv2_weight'].detach().clone()
    model.train()
    losses = model.train_step(batch, wrapper)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    assert all(torch.isfinite(v).all() for v in losses.values())
    after = model.backbone.layer3[3].repl_coefficients['conv2_weight']
    assert not torch.equal(before, after)  # the optimizer moved the coefficients
    model.eval()
    val = DATASETS.build(cfg.val_dataloader.dataset)
    outputs = model.test_step(pseudo_collate([val[0]]))
    assert len(outputs) == 1 and hasattr(outputs[0], 'pred_instances')


def test_tools_train_two_iterations_then_test_and_resume(coco_demo, tmp_path):
    data = f'train_dataloader.dataset.data_root={coco_demo}/ ' \
           f'val_dataloader.dataset.data_root={coco_demo}/ ' \
           f'test_dataloader.dataset.data_root={coco_demo}/ ' \
           f'val_evaluator.ann_file={coco_demo}/annotations/instances_val2017.json ' \
           f'test_evaluator.ann_file={coco_demo}/annotations/instances_val2017.json'.split()
    work = tmp_path / 'work'
    run_tool('tools/train.py', DEMO, '--work-dir', str(work), '--cfg-options', *data,
             'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=3',
             'param_scheduler.0.end=2')
    with trusted_checkpoint_globals():
        checkpoint = torch.load(work / 'iter_2.pth', map_location='cpu')
    assert checkpoint['meta']['repl']['backbone']['plan'] == {
        'layer1': [1], 'layer2': [1], 'layer3': [1, 3], 'layer4': [1]}
    assert 'backbone.layer3.3.repl_coefficients.conv2_weight' in checkpoint['state_dict']
    assert 'backbone.layer3.3.conv2.weight' not in checkpoint['state_dict']

    result = run_tool('tools/test.py', DEMO, str(work / 'iter_2.pth'), '--work-dir',
                      str(tmp_path / 'test'), '--cfg-options', *data)
    for metric in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
        assert f'{metric}: ' in result.stdout

    # resume from iter 1 up to iter 3: the iteration count and the coefficients carry over
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copy(work / 'iter_1.pth', resumed / 'iter_1.pth')
    result = run_tool('tools/train.py', DEMO, '--work-dir', str(resumed), '--resume',
                      str(resumed / 'iter_1.pth'), '--cfg-options', *data,
                      'train_cfg.max_iters=3', 'train_cfg.val_interval=10',
                      'param_scheduler.0.end=2')
    assert 'resumed epoch: 0, iter: 1' in result.stdout + result.stderr
    with trusted_checkpoint_globals():
        final = torch.load(resumed / 'iter_3.pth', map_location='cpu')
        start = torch.load(work / 'iter_1.pth', map_location='cpu')
    assert final['meta']['iter'] == 3
    assert final['state_dict'].keys() == start['state_dict'].keys()
    key = 'backbone.layer3.2.conv2.weight'  # a neighbour of a replaced block trained on
    assert not torch.equal(final['state_dict'][key], start['state_dict'][key])

    # the checkpoint cannot be evaluated by a model with another plan
    result = run_tool('tools/test.py', DEMO, str(work / 'iter_2.pth'), '--cfg-options', *data,
                      'model.backbone.repl.blocks.layer3=[2]', check=False)
    assert result.returncode == 2
    assert 'another RepL replacement plan' in result.stderr
    assert 'Traceback' not in result.stderr


def test_real_coco_config_trains_two_iterations_on_generated_data(tmp_path):
    """mask_rcnn_repl_r50_coco.py as it is, on generated data under its own data_root."""
    from repl_mm.demo import make_coco_demo
    root = tmp_path / 'data' / 'coco'
    make_coco_demo(str(root), num_train=4, num_val=2, seed=1, image_size=64)
    for split in ('train', 'val'):
        rename_categories(root / 'annotations' / f'instances_{split}2017.json',
                          {'trouser': 'person', 'bag': 'handbag', 'ankle_boot': 'car'})
    result = run_tool(str(ROOT / 'tools/train.py'), str(ROOT / COCO), '--work-dir', 'work',
                      '--cfg-options', 'model.backbone.init_cfg=None', 'train_cfg.max_epochs=1',
                      'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                      'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
                      cwd=tmp_path)
    log = result.stdout + result.stderr
    assert 'Epoch(train) [1][2/2]' in log
    # 2 iterations from scratch detect nothing, so CocoMetric scores an empty result set
    assert 'Epoch(val) [1][2/2]' in log and (tmp_path / 'work' / 'epoch_1.pth').exists()


def test_missing_coco_says_where_it_looked(tmp_path):
    result = run_tool(str(ROOT / 'tools/train.py'), str(ROOT / COCO), cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert 'data/coco/ (train_dataloader.dataset.data_root)' in result.stderr
    assert 'make demo' in result.stderr and 'Traceback' not in result.stderr
