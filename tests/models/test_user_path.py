"""The path OpenMMLab users take: frozen stages, pretrained and RepL checkpoints, SyncBN, DDP with
activation checkpointing, weight decay from configs as they ship, ``--cfg-options`` plans.

Real mmdet / mmseg / mmpretrain backbones at small widths; DDP cases run 2 gloo processes.
"""
import copy
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.logging import MMLogger
from mmengine.model import MMDistributedDataParallel, convert_sync_batchnorm, \
    revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint
from torch.nn.modules.batchnorm import _BatchNorm

import repl_mm  # noqa: F401
from repl_core import (COEFFICIENTS, CheckpointMismatchError, PlanError, replaced_blocks,
                          suggest_blocks)

from conftest import ROOT, LogRecords
from reliability_configs.common import (TINY, data_options, make_tiny_classification_data,
                                        run, run_command)

pytestmark = pytest.mark.usefixtures('one_thread')

# small real backbones of each framework
RESNETS = {
    'mmdet': dict(type='RepLResNet', depth=50, base_channels=16),
    'mmseg': dict(type='RepLResNetV1c', depth=50, stem_channels=16, base_channels=16),
    'mmpretrain': dict(type='RepLResNet', depth=50, base_channels=16),
}
SWIN = dict(type='RepLSwinTransformer', embed_dims=32, depths=(2, 2, 4, 2),
            num_heads=(1, 2, 4, 8), window_size=4)
VIT = dict(type='RepLVisionTransformer', img_size=32, patch_size=8,
           arch=dict(embed_dims=32, num_layers=5, num_heads=2, feedforward_channels=64))


def build(scope, cfg, **kwargs):
    init_default_scope(scope)
    return MODELS.build(dict(cfg, **kwargs))


def features(model, x):
    out = model(x)
    return [o for o in (out if isinstance(out, (tuple, list)) else [out]) if torch.is_tensor(o)]


@pytest.mark.parametrize('scope', list(RESNETS))
def test_default_plan_skips_frozen_stages(scope):
    model = build(scope, RESNETS[scope], frozen_stages=1)
    assert model.repl_plan.skipped == (('layer1', 1), )
    assert model.repl_plan.to_dict()['layer1'] == [] and model.repl_plan.to_dict()['layer3']
    model.train()
    assert all(p.requires_grad for _, block in replaced_blocks(model)
               for p in getattr(block, COEFFICIENTS).values())


@pytest.mark.parametrize('scope, cfg, frozen, blocks', [
    ('mmdet', dict(type='RepLResNet', depth=18), 1, {'layer1': [1]}),
    ('mmseg', dict(type='RepLResNetV1c', depth=18), 1, {'layer1': [1]}),
    ('mmpretrain', dict(type='RepLResNet', depth=18), 1, {'layer1': [1]}),
    ('mmdet', SWIN, 1, {'stages.0': [1]}),
    ('mmpretrain', VIT, 3, {'layers': [1]}),
])
def test_a_frozen_block_in_an_explicit_plan_is_refused(scope, cfg, frozen, blocks):
    """ResNet-18's layer1[1] would take its successor from the trainable layer2[0]: before the
    fix, one SGD step changed the frozen stage."""
    with pytest.raises(PlanError, match=r'is frozen \(frozen_stages\).*lower frozen_stages'):
        build(scope, cfg, frozen_stages=frozen, repl=dict(blocks=blocks))


def test_an_empty_default_plan_warns_and_names_a_plan_that_works():
    handler = LogRecords()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        model = build('mmdet', dict(type='RepLResNet', depth=18))
    finally:
        logger.removeHandler(handler)
    assert model.repl_plan.replaced == ()
    suggestion = suggest_blocks(model.repl_plan.stages)
    assert suggestion == {'layer1': [1], 'layer2': [1], 'layer3': [1]}
    warnings = [m for m in handler.messages if str(suggestion) in m]
    assert len(warnings) == 1
    assert len(replaced_blocks(build('mmdet', dict(type='RepLResNet', depth=18),
                                     repl=dict(blocks=suggestion)))) == 3


def test_frozen_norm_affines_stay_frozen_in_replaced_blocks():
    model = build('mmdet', RESNETS['mmdet'], norm_cfg=dict(type='BN', requires_grad=False))
    block = model.layer3[1]
    trains = {k: p.requires_grad for k, p in block.repl_coefficients.items()}
    assert trains == {'conv1_weight': True, 'bn1_weight': False, 'bn1_bias': False,
                      'conv2_weight': True, 'bn2_weight': False, 'bn2_bias': False,
                      'conv3_weight': True, 'bn3_weight': False, 'bn3_bias': False}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    norms = {n: block.get_submodule(n).weight.detach().clone() for n in ('bn1', 'bn2', 'bn3')}
    conv = block.conv2.weight.detach().clone()
    sum(o.mean() for o in model(torch.randn(2, 3, 32, 32))).backward()
    optimizer.step()
    assert all(torch.equal(block.get_submodule(n).weight, w) for n, w in norms.items())
    assert not torch.equal(block.conv2.weight, conv)


def test_synthesised_values_are_never_stale_after_a_data_write():
    """mmengine's EMA swap and fused optimizers write parameters through ``.data``, which leaves
    their version counters alone."""
    model = build('mmdet', RESNETS['mmdet'])
    block = model.layer3[1]
    features(model, torch.randn(2, 3, 32, 32))  # a forward with grad: its values are held
    prev, nxt = block.conv2.parametrizations.weight[0].neighbours
    prev.weight.data.copy_(torch.randn_like(prev.weight))
    a, b = block.repl_coefficients['conv2_weight'].detach()
    torch.testing.assert_close(block.conv2.weight, a * prev.weight + b * nxt.weight,
                               rtol=0, atol=0)


@pytest.mark.parametrize('scope, kind', [('mmdet', 'fused'), ('mmseg', 'fused'),
                                         ('mmpretrain', 'fused'), ('mmdet', 'light')])
@pytest.mark.parametrize('converter', ['torch', 'mmengine'])
def test_syncbn_conversion_keeps_keys_coefficients_and_outputs(scope, kind, converter):
    model = build(scope, RESNETS[scope], repl=dict(kind=kind))
    twin = copy.deepcopy(model)
    coefficients = [p for n, p in model.named_parameters() if COEFFICIENTS in n]
    keys = list(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        expected = features(model, x)
    if converter == 'torch':
        synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    else:
        synced = convert_sync_batchnorm(model, 'torch')  # what cfg.sync_bn='torch' runs
    assert all(type(m).__name__.endswith('SyncBatchNorm') for m in synced.modules()
               if isinstance(m, _BatchNorm))
    assert list(synced.state_dict()) == keys
    assert [p for n, p in synced.named_parameters() if COEFFICIENTS in n] == coefficients
    assert all(p.requires_grad for p in coefficients)
    synced.eval()
    with torch.no_grad():
        for out, ref in zip(features(synced, x), expected):
            torch.testing.assert_close(out, ref, rtol=0, atol=0)
    reverted = revert_sync_batchnorm(synced)  # and back, as a single-process Runner does
    assert list(reverted.state_dict()) == keys
    reverted.eval()
    with torch.no_grad():
        for out, ref in zip(features(reverted, x), expected):
            torch.testing.assert_close(out, ref, rtol=0, atol=0)
    # training (one process: SyncBN runs as BN) reaches the coefficients through the new norms
    synced = convert_sync_batchnorm(reverted, 'torch')
    for m in (synced, twin):
        m.train()
        sum(o.square().mean() for o in features(m, x)).backward()
    twin_coefficients = [p for n, p in twin.named_parameters() if COEFFICIENTS in n]
    for p, q in zip(coefficients, twin_coefficients):
        torch.testing.assert_close(p.grad, q.grad)


def _save(model, path: Path) -> str:
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.mark.parametrize('scope, cfg, saved, loaded, difference', [
    ('mmseg', SWIN, dict(granularity='tensor'), dict(granularity='submodule'),
     "granularity='tensor' (this model: 'submodule')"),
    ('mmpretrain', VIT, dict(granularity='tensor'), dict(granularity='submodule'),
     "granularity='tensor' (this model: 'submodule')"),
    ('mmdet', RESNETS['mmdet'], dict(kind='fused'), dict(kind='light'),
     "kind='fused' (this model: 'light')"),
    ('mmseg', RESNETS['mmseg'], dict(blocks={'layer1': [2]}, adapter='average'),
     dict(blocks={'layer1': [2]}), "adapter='average' (this model: 'slice_pad')"),
    ('mmdet', RESNETS['mmdet'], dict(kind='fused'), dict(kind='removed'), "kind='removed'"),
    ('mmdet', RESNETS['mmdet'], dict(kind='removed'), dict(kind='fused'), "kind='removed'"),
])
def test_a_repl_checkpoint_of_other_settings_is_refused_on_the_non_strict_path(
        scope, cfg, saved, loaded, difference, tmp_path):
    checkpoint = _save(build(scope, cfg, repl=saved), tmp_path / 'repl.pth')
    with pytest.raises(CheckpointMismatchError, match=difference.replace('(', r'\(')
                       .replace(')', r'\)')):
        load_checkpoint(build(scope, cfg, repl=loaded), checkpoint, map_location='cpu')
    pretrained = dict(cfg, repl=loaded, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    with pytest.raises(CheckpointMismatchError):
        build(scope, pretrained).init_weights()


def test_an_adapter_setting_that_changes_nothing_loads(tmp_path):
    """layer3[3]'s neighbours have its shapes: no adapter runs, so the adapter setting does not
    change the function, and the checkpoint loads."""
    blocks = {'layer3': [3]}
    saved = build('mmdet', RESNETS['mmdet'], repl=dict(blocks=blocks, adapter='average'))
    checkpoint = _save(saved, tmp_path / 'repl.pth')
    model = build('mmdet', RESNETS['mmdet'], repl=dict(blocks=blocks))
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)


@pytest.mark.parametrize('kind, warm_start', [('removed', True), ('light', True),
                                              ('light', 'weights')])
def test_a_plain_checkpoint_in_a_removed_or_light_model(kind, warm_start, tmp_path):
    """Removed: the deleted blocks' tensors are dropped with one log line (a strict load
    succeeds). Light: the surrogate starts as its shortcut (its default warm start); the block's
    own weights cannot initialise it, which the log line says where they are asked to
    (``warm_start='weights'``), and the coefficients keep repl.init."""
    plain = build('mmdet', dict(RESNETS['mmdet'], type='ResNet'))
    checkpoint = _save(plain, tmp_path / 'plain.pth')
    model = build('mmdet', RESNETS['mmdet'], repl=dict(kind=kind, warm_start=warm_start))
    handler = LogRecords()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=kind == 'removed')
    finally:
        logger.removeHandler(handler)
    blocks = ['layer1.1', 'layer2.1', 'layer3.1', 'layer3.3', 'layer4.1']
    lines = [m for m in handler.messages if all(b in m for b in blocks)]
    assert len(lines) == 1
    torch.testing.assert_close(model.layer1[0].conv1.weight, plain.layer1[0].conv1.weight)
    if kind == 'light':
        zero = {n.rsplit('.', 1)[1] for n, p in model.named_parameters()
                if COEFFICIENTS in n and torch.equal(p, torch.zeros(2))}
        init = {n.rsplit('.', 1)[1] for n, p in model.named_parameters()
                if COEFFICIENTS in n and torch.equal(p, torch.tensor([0.5, 0.5]))}
        if warm_start == 'weights':
            assert 'Warm start' not in lines[0] and not zero and init
        else:
            assert zero == {'norm_weight', 'norm_bias'} and init == {'conv_weight'}


UPSTREAM_DECAY = {  # README's upstream configs: AdamW with decay on every parameter
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py': 'RepLSwinTransformer',
    'mmpretrain::vision_transformer/vit-base-p16_64xb64_in1k.py': 'RepLVisionTransformer',
}


@pytest.mark.parametrize('optimizer', [
    dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.01),
    dict(type='AdamW', lr=0.1, weight_decay=0.05),
    dict(type='Adam', lr=0.1, weight_decay=0.01),
    dict(type='RMSprop', lr=0.1, weight_decay=0.01),
    dict(type='NAdam', lr=0.1, weight_decay=0.01, decoupled_weight_decay=True),
])
def test_no_weight_decay_on_coefficients_without_a_config_line(optimizer):
    """Zero gradients everywhere: the optimizer's decay moves every weight but no coefficient."""
    from mmengine.optim import build_optim_wrapper
    model = build('mmdet', RESNETS['mmdet'])
    wrapper = build_optim_wrapper(model, dict(optimizer=optimizer))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    for _ in range(5):
        wrapper.step()
    after = dict(model.named_parameters())
    for name, value in before.items():
        if COEFFICIENTS in name:
            assert torch.equal(after[name], value), name
    weight = 'layer1.0.conv1.weight'
    assert (after[weight] - before[weight]).abs().max() > 1e-3 * before[weight].abs().max()


@pytest.mark.parametrize('option', ["model.backbone.repl.blocks={'layer3':[1,3]}",
                                    'model.backbone.repl.blocks.layer3=[1,3]'])
def test_readme_plan_options_build_the_plan_they_say(option):
    """README's two spellings of a plan on the command line, parsed as the tools parse them."""
    import argparse

    from mmengine.config import Config

    from repl_mm.engine.cli import add_cfg_options
    parser = argparse.ArgumentParser()
    add_cfg_options(parser)
    cfg = Config.fromfile(str(ROOT / 'configs/mask_rcnn_repl_r50_coco.py'))
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', option]).cfg_options)
    backbone = build('mmdet', dict(cfg.model.backbone, init_cfg=None))
    assert backbone.repl_plan.to_dict() == {'layer1': [], 'layer2': [], 'layer3': [1, 3],
                                            'layer4': []}


def test_dict_plan_through_cfg_options(tmp_path):
    """``--cfg-options "model.backbone.repl.blocks={'layer2':[1],'layer3':[1]}"``: mmengine's own
    option parser recursed without end on it."""
    data = make_tiny_classification_data(tmp_path / 'data')
    work = tmp_path / 'work'
    run(str(ROOT / 'tools/train.py'), TINY, '--work-dir', str(work), '--cfg-options',
        *data_options(data), "model.backbone.repl.blocks={'layer2':[1],'layer3':[1]}",
        'train_cfg.max_iters=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1')
    from repl_mm.engine import trusted_checkpoint_globals
    with trusted_checkpoint_globals():
        meta = torch.load(work / 'iter_1.pth', map_location='cpu')['meta']
    assert meta['repl']['backbone']['plan'] == {'layer1': [], 'layer2': [1], 'layer3': [1]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _ddp_steps(rank: int, port: int, scope: str, cfg: dict) -> None:
    """One process of a 2-process DDP run: mmengine's default wrapper, two backward passes."""
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = MMDistributedDataParallel(build(scope, cfg), device_ids=None)
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(rank))
        for _ in range(2):
            sum(o.square().mean() for o in features(model, x)).backward()
        coefficient = next(p for n, p in model.named_parameters() if COEFFICIENTS in n)
        grads = [torch.zeros_like(coefficient.grad) for _ in range(2)]
        dist.all_gather(grads, coefficient.grad)
        assert torch.equal(grads[0], grads[1]), 'gradients were not all-reduced'
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('scope, cfg', [
    ('mmdet', dict(RESNETS['mmdet'], with_cp=True)),
    ('mmseg', dict(SWIN, with_cp=True)),
    pytest.param('mmdet', dict(RESNETS['mmdet'], with_cp=True, repl=dict(kind='light')),
                 marks=pytest.mark.slow),
])
def test_ddp_with_activation_checkpointing(scope, cfg):
    """Before: "Expected to mark a variable ready only once" at the first backward."""
    mp.spawn(_ddp_steps, args=(free_port(), scope, cfg), nprocs=2)


def test_ddp_with_cp_through_dist_train(tmp_path):
    data = make_tiny_classification_data(tmp_path / 'data')
    result = run_command(['bash', str(ROOT / 'tools/dist_train.sh'), TINY, '2', '--work-dir',
                          str(tmp_path / 'work'), '--cfg-options', *data_options(data),
                          'model.backbone.with_cp=True', 'train_cfg.max_iters=2',
                          'train_cfg.val_interval=2'],
                         env=dict(PORT=str(free_port()), PYTHON=sys.executable))
    assert (tmp_path / 'work' / 'iter_2.pth').is_file(), result.stdout[-2000:]
