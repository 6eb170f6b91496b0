"""Every config in configs/ builds its model and runs a real train step and val step.

The model is built as ``Runner`` builds it (``data_preprocessor`` merged into the model, SyncBN
reverted in a single process), with only what cannot run here changed: no pretrained weights
(offline), tiny synthetic inputs in the model's data format.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from mmengine.structures import PixelData

import repl_mm  # noqa: F401
from repl_core import COEFFICIENTS, replaced_blocks

from conftest import ROOT

# the model configs and the demos; benchmarks/configs/ holds the demos' plain-backbone twins
# (tests/test_benchmark_tool.py) and the accuracy benchmark's configs
CONFIGS = sorted(str(p.relative_to(ROOT)) for folder in ('configs', 'configs/demo')
                 for p in (ROOT / folder).glob('*.py'))
R50_PLAN = {'layer1': [1], 'layer2': [1], 'layer3': [1, 3], 'layer4': [1]}
# the default plan, written out: every other block from index 1, never a stage's last
DEFAULT_PLANS = {
    50: R50_PLAN,
    20: {f'layer{i}': [1] for i in (1, 2, 3)},  # CIFAR ResNet-20: 3 blocks a stage
    32: {f'layer{i}': [1, 3] for i in (1, 2, 3)},  # 5 blocks
    110: {f'layer{i}': [1, 3, 5, 7, 9, 11, 13, 15] for i in (1, 2, 3)},  # 18 blocks
}
SIZE = {'mmdet': 64, 'mmseg': 64, 'mmpretrain': 32}


def test_every_config_is_listed():
    assert len(CONFIGS) >= 10 and 'configs/mask_rcnn_repl_r50_coco.py' in CONFIGS


def load(config: str) -> Config:
    cfg = Config.fromfile(str(ROOT / config))
    model = cfg.model
    if cfg.get('data_preprocessor') is not None:  # what Runner does with mmpretrain's key
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    if model.get('pretrained'):  # mmseg: ImageNet weights cannot be downloaded here
        model.pretrained = None
    backbone = model.backbone
    init_cfg = backbone.get('init_cfg') or {}
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        backbone.init_cfg = None
    if 'ResNet' in backbone.type:
        # zero-init of each block's last norm would give the coefficients no gradient at step 1
        backbone.zero_init_residual = False
    if cfg.default_scope == 'mmseg':
        model.data_preprocessor.size = (SIZE['mmseg'], ) * 2  # instead of the crop size
    return cfg


def build(cfg: Config) -> torch.nn.Module:
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return revert_sync_batchnorm(model)  # as Runner does without a process group


def seg_batch(n: int, size: int, num_classes: int) -> dict:
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                                    generator=generator))
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size)))
        labels = torch.randint(0, num_classes, (1, size, size), generator=generator)
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def cls_batch(n: int, size: int, channels: int, num_classes: int) -> dict:
    from mmpretrain.structures import DataSample
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (channels, size, size), dtype=torch.uint8,
                            generator=generator) for _ in range(n)]
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def batch(cfg: Config, n: int) -> dict:
    scope, size = cfg.default_scope, SIZE[cfg.default_scope]
    if scope == 'mmdet':
        from mmdet.testing import demo_mm_inputs
        head = cfg.model.get('roi_head') or {}
        return demo_mm_inputs(n, image_shapes=[(3, size, size)] * n,
                              num_classes=(head or cfg.model).bbox_head.num_classes,
                              with_mask='mask_head' in head)
    if scope == 'mmseg':
        return seg_batch(n, size, cfg.model.decode_head.num_classes)
    return cls_batch(n, size, cfg.model.backbone.get('in_channels', 3),
                     cfg.model.head.num_classes)


@pytest.mark.parametrize('config', CONFIGS)
def test_config_trains_and_evaluates_with_the_default_plan(config):
    cfg = load(config)
    assert 'repl_mm' in cfg.custom_imports.imports
    assert [hook.type for hook in cfg.custom_hooks] == [  # configs/_base_/repl_runtime.py
        'ReplCheckpointHook', 'RNGStateHook', 'TrainingCostHook', 'ReplNaNGuardHook']
    assert 'blocks' not in cfg.model.backbone.repl  # the default plan
    torch.manual_seed(0)
    model = build(cfg)
    backbone = model.backbone
    stages = {name: len(backbone.get_submodule(path)) for name, path in backbone.repl_stages()}
    expected = DEFAULT_PLANS.get(cfg.model.backbone.get('depth'),
                                 {name: list(range(1, depth - 1, 2))
                                  for name, depth in stages.items()})
    frozen = cfg.model.backbone.get('frozen_stages', -1)  # never replaced (mmdet's configs: 1)
    expected = {name: [] if i < frozen else blocks
                for i, (name, blocks) in enumerate(expected.items())}
    assert backbone.repl_plan.to_dict() == expected

    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # coefficients of frozen stages (mmdet's frozen_stages=1) are frozen with them
    coefficients = {id(p): name for name, p in model.named_parameters()
                    if COEFFICIENTS in name and p.requires_grad}
    groups = [g for g in wrapper.optimizer.param_groups
              if any(id(p) in coefficients for p in g['params'])]
    assert sum(len(g['params']) for g in groups) == len(coefficients) > 0
    assert all(g['weight_decay'] == 0 for g in groups)  # the coefficient decay rule

    before = {name: p.detach().clone() for name, p in model.named_parameters()
              if COEFFICIENTS in name}
    model.train()
    # two steps: a head initialised to zero (mmpretrain's ViT head) passes no gradient at step 1
    for _ in range(2):
        losses = model.train_step(batch(cfg, 2), wrapper)
        assert losses and all(torch.isfinite(v).all() for v in losses.values()), losses
    after = dict(model.named_parameters())
    moved = [name for name, value in before.items() if not torch.equal(value, after[name])]
    assert moved, 'no RepL coefficient was updated by the optimizer'

    model.eval()
    outputs = model.val_step(batch(cfg, 1))
    assert len(outputs) == 1
    field = {'mmdet': 'pred_instances', 'mmseg': 'pred_sem_seg',
             'mmpretrain': 'pred_score'}[cfg.default_scope]
    assert hasattr(outputs[0], field)


def test_syncbn_config_after_revert_keeps_synthesis_on_the_live_neighbours():
    """mmseg's configs use SyncBN; a single-process Runner reverts it to BN.

    ``revert_sync_batchnorm`` rebuilds every norm, the replaced blocks' too (they say
    ``affine=False``: they own no affine parameters), and the synthesis moves to the new norms at
    once. The ordinary neighbours' norms become new ``_BatchNormXd`` modules around the same
    Parameter objects, so the synthesis, which holds the old modules, still reads the live
    tensors: training updates what the replaced blocks use.
    """
    cfg = load('configs/deeplabv3plus_repl_r50-d8_cityscapes-512x1024.py')
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    keys = list(model.state_dict())
    model = revert_sync_batchnorm(model)
    assert list(model.state_dict()) == keys
    backbone = model.backbone
    for path, block in replaced_blocks(backbone):
        for owner_path, owner in block.named_modules():
            for name, parametrizations in getattr(owner, 'parametrizations', {}).items():
                if isinstance(owner, torch.nn.modules.batchnorm._BatchNorm):
                    assert type(owner).__name__ == 'Parametrized_BatchNormXd', (path, owner_path)
                synthesis = parametrizations[0]
                live = [dict(backbone.named_parameters())[f'{n}.{owner_path}.{name}']
                        for n in _neighbour_paths(backbone, path)]
                assert all(getattr(old, name) is new
                           for old, new in zip(synthesis.neighbours, live)), (path, owner_path)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    weight = backbone.layer1[1].norm1.weight.detach().clone()
    losses = model.train_step(seg_batch(2, 64, 19), wrapper)
    assert all(torch.isfinite(v).all() for v in losses.values())
    # the neighbours' norms moved, so the synthesised norm weight follows them
    assert not torch.equal(weight, backbone.layer1[1].norm1.weight)


def _neighbour_paths(backbone, path: str):
    stage, index = path.rsplit('.', 1)
    (prev_stage, prev_index), (next_stage, next_index) = backbone.repl_plan.neighbours(
        (stage, int(index)))
    return f'{prev_stage}.{prev_index}', f'{next_stage}.{next_index}'


def test_warm_start_from_plain_weights_after_syncbn_revert(tmp_path):
    """A single-process run of an mmseg config with ImageNet weights: the Runner reverts SyncBN,
    then init_weights loads the plain checkpoint and warm-starts the coefficients."""
    cfg = load('configs/upernet_repl_r50_cityscapes-512x1024.py')
    init_default_scope('mmseg')
    plain = dict(cfg.model.backbone, type='ResNetV1c')
    plain.pop('repl')
    checkpoint = Path(tmp_path, 'plain.pth')
    torch.save(MODELS.build(plain).state_dict(), checkpoint)
    backbone = MODELS.build(dict(cfg.model.backbone,
                                 repl=dict(cfg.model.backbone.repl, warm_start='weights'),
                                 init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint))))
    backbone = revert_sync_batchnorm(backbone)
    # the conv kernels' coefficients (the norms of a fresh plain model are all 1 / 0, which
    # the 0.5 / 0.5 init already fits exactly)
    before = {n: p.detach().clone() for n, p in backbone.named_parameters()
              if COEFFICIENTS in n and '.conv' in n}
    backbone.init_weights()
    after = dict(backbone.named_parameters())
    # every one was fitted by least squares (random kernels: near 0), to finite values
    assert len(before) == 15 and all(
        not torch.equal(after[n], value) and torch.isfinite(after[n]).all()
        for n, value in before.items())


# README's upstream configs, used as they ship: only the backbone type, repl=dict() and
# custom_imports change
UPSTREAM = {
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py': 'RepLResNet',
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py': 'RepLSwinTransformer',
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py':
    'RepLSwinTransformer',
    'mmpretrain::vision_transformer/vit-base-p16_64xb64_in1k.py': 'RepLVisionTransformer',
}


@pytest.mark.parametrize('base', list(UPSTREAM))
def test_upstream_config_as_is_trains_with_repl(base, tmp_path):
    text = (f"_base_ = '{base}'\n"
            "custom_imports = dict(imports=['repl_mm'], allow_failed_imports=False)\n"
            f"model = dict(backbone=dict(type='{UPSTREAM[base]}', repl=dict()))\n")
    path = tmp_path / 'repl_upstream.py'
    path.write_text(text)
    cfg = load(str(path))
    torch.manual_seed(0)
    model = build(cfg)
    assert len(replaced_blocks(model.backbone)) >= 2
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # the config's own optimizer decays (AdamW 0.05 / 0.3, SGD 1e-4) but not the coefficients:
    # with zero gradients one step moves every decayed weight and no coefficient
    assert any(g['weight_decay'] > 0 for g in wrapper.optimizer.param_groups)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    wrapper.step()
    after = dict(model.named_parameters())
    coefficients = [n for n in before if COEFFICIENTS in n]
    assert coefficients and all(torch.equal(after[n], before[n]) for n in coefficients)
    assert any(not torch.equal(after[n], before[n]) for n in before if n.endswith('conv.weight')
               or n.endswith('conv1.weight') or n.endswith('qkv.weight'))
    wrapper.zero_grad()
    model.train()
    for _ in range(2):
        losses = model.train_step(batch(cfg, 2), wrapper)
        assert all(torch.isfinite(v).all() for v in losses.values()), losses
    model.eval()
    assert len(model.val_step(batch(cfg, 1))) == 1
