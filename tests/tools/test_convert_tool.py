"""tools/convert.py as a user runs it: a plain checkpoint of the tiny classifier becomes a RepL
checkpoint and a config that trains from it; ``blocks='auto'`` chooses the plan within a
budget."""
import re

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401
from repl_mm.engine import trusted_checkpoint_globals
from repl_mm.models import plain_model_cfg

from conftest import plan_in
from reliability_configs.common import (TINY, data_options, make_tiny_classification_data,
                                        run)


def plain_checkpoint(path):
    cfg = Config.fromfile(TINY)
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(plain_model_cfg(cfg.model))
    torch.save({'state_dict': model.state_dict()}, path)


def convert(tmp_path, *options):
    data = make_tiny_classification_data(tmp_path / 'data')
    plain_checkpoint(tmp_path / 'plain.pth')
    result = run('tools/convert.py', TINY, str(tmp_path / 'plain.pth'), str(tmp_path / 'out'),
                 '--batches', '2', '--steps', '20', '--cfg-options', *data_options(data),
                 *options)
    return data, result.stdout


def test_activation_conversion_writes_a_checkpoint_and_config_that_train(tmp_path):
    data, stdout = convert(tmp_path, 'model.backbone.repl.warm_start=activations')
    errors = dict(re.findall(r'^(layer\d\.\d): output error ([0-9.]+); fit', stdout, re.M))
    assert sorted(errors) == ['layer1.1', 'layer2.1', 'layer3.1']
    with trusted_checkpoint_globals():
        checkpoint = torch.load(tmp_path / 'out' / 'cifar_repl_tiny_repl.pth', map_location='cpu')
    report = checkpoint['meta']['repl_conversion']
    assert report['warm_start'] == 'activations'
    assert [b['path'] for b in report['blocks']] == ['layer1.1', 'layer2.1', 'layer3.1']
    fits = [(b['fit']['error_before'], b['fit']['error_after']) for b in report['blocks']]
    assert all(after <= before for before, after in fits)  # the fit keeps its best state
    assert any(after < before for before, after in fits)
    # the written config fine-tunes from the checkpoint (the guard accepts it)
    work = tmp_path / 'work'
    run('tools/train.py', str(tmp_path / 'out' / 'cifar_repl_tiny_repl.py'), '--work-dir',
        str(work), '--cfg-options', *data_options(data), 'train_cfg.max_iters=1',
        'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1')
    assert plan_in(work / 'iter_1.pth') == {'layer1': [1], 'layer2': [1], 'layer3': [1]}


def test_auto_plan_within_a_budget(tmp_path):
    _, stdout = convert(tmp_path, 'model.backbone.repl.blocks=auto',
                        'model.backbone.repl.budget=0.2')
    ranked = re.findall(r'^auto plan: (layer\d\[\d\]) alone changes the backbone output by',
                        stdout, re.M)
    assert len(ranked) >= 4  # every block that keeps its input's shape, but the last
    written = Config.fromfile(str(tmp_path / 'out' / 'cifar_repl_tiny_repl.py'))
    plan = written.model.backbone.repl.blocks
    assert any(plan.values()) and written.model.backbone.repl.budget is None
    init_default_scope('mmpretrain')
    backbone = MODELS.build(written.model.backbone)
    total = sum(p.numel() for p in MODELS.build(
        plain_model_cfg(dict(backbone=dict(written.model.backbone)))['backbone']).parameters())
    assert total - sum(p.numel() for p in backbone.parameters()) >= 0.2 * total


def test_a_backbone_checkpoint_converts_and_another_network_is_refused(tmp_path):
    """Pretrained weights usually hold the backbone alone (``init_cfg=Pretrained``)."""
    data = make_tiny_classification_data(tmp_path / 'data')
    cfg = Config.fromfile(TINY)
    init_default_scope('mmpretrain')
    plain = MODELS.build(plain_model_cfg(cfg.model))
    torch.save(plain.backbone.state_dict(), tmp_path / 'backbone.pth')
    result = run('tools/convert.py', TINY, str(tmp_path / 'backbone.pth'), str(tmp_path / 'out'),
                 '--batches', '1', '--cfg-options', *data_options(data))
    assert re.search(r'^layer1\.1: output error [0-9.]+; fit ', result.stdout, re.M)
    torch.save({'conv.weight': torch.zeros(3)}, tmp_path / 'other.pth')
    refused = run('tools/convert.py', TINY, str(tmp_path / 'other.pth'), str(tmp_path / 'out2'),
                  '--cfg-options', *data_options(data), check=False)
    assert refused.returncode == 2 and 'holds none of the backbone' in refused.stderr
