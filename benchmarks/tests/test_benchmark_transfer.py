"""The transfer benchmark's statistics (paired by seed, t-based intervals) and settings."""
import argparse
import math

import pytest
import torch
from mmengine.registry import init_default_scope
from repl_core import NormFreeLightConvSurrogate
from scipy import stats

from benchmark_transfer import build_classifier, convert, paired, result_path, settings_compared


def test_paired_difference_uses_the_t_quantile():
    a, b = [90.0, 91.0, 92.5, 90.5, 91.5], [89.0, 90.5, 91.0, 90.0, 90.0]
    differences = [x - y for x, y in zip(a, b)]
    mean = sum(differences) / 5
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 4)
    half = stats.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert paired(a, b) == f'{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]'
    assert paired([90.0], [89.5]) == '+0.50 (n=1)'


def test_settings_are_compared_on_their_common_seeds_only():
    def runs(top1):
        return {seed: {'top1': value} for seed, value in top1.items()}

    rows = {'val_lr0.0001': {'plain': runs({0: 80.0, 1: 81.0, 2: 82.0})},
            'val_lr0.0005': {'plain': runs({0: 87.0, 1: 88.0, 3: 99.0}),
                             'removed': runs({0: 85.0})}}
    header, rule, line = settings_compared(rows)
    assert header.startswith('| variant | setting A | setting B | n |')
    assert line == f'| plain | val_lr0.0001 | val_lr0.0005 | 2 | {paired([80, 81], [87, 88])} |'
    assert settings_compared({'val_lr0.0005': rows['val_lr0.0005']}) == []


def test_light_norm_reaches_the_light_variants_and_names_its_results():
    init_default_scope('mmpretrain')
    plain = build_classifier('resnet20', 5)
    light, _ = convert('resnet20', 'light-identity', plain, [], 0, None, 'weight')
    assert any(isinstance(m, NormFreeLightConvSurrogate) for m in light.backbone.modules())
    fused, _ = convert('resnet20', 'fused-identity', plain, [], 0, None, 'weight')
    assert fused.backbone.repl_config.light_norm == 'batch'  # only light variants take it
    args = argparse.Namespace(out='out', arch='resnet20', split='test', shots=100, iters=300,
                              lr=0.01, coefficient_lr_mult=None, light_norm=None)
    assert result_path(args, 'plain', 0).endswith('test_s100_i300_lr0.01_mdefault/plain_seed0.json')
    args.light_norm = 'weight'
    assert '_mdefault_lnweight/' in result_path(args, 'light-own', 0)


def test_frozen_blocks_freezes_exactly_the_blocks_repl_replaces():
    """The peer with RepL's trainable count that keeps the pretrained function."""
    init_default_scope('mmpretrain')
    plain = build_classifier('resnet20', 5)
    frozen, info = convert('resnet20', 'frozen-blocks', plain, [], 0, None)
    assert info['frozen_blocks'] == ['layer1.1', 'layer2.1', 'layer3.1']
    still = {n.split('.')[1] + '.' + n.split('.')[2] for n, p in frozen.named_parameters()
             if not p.requires_grad}
    assert still == {'layer1.1', 'layer2.1', 'layer3.1'}
    removed, _ = convert('resnet20', 'removed', plain, [], 0, None)
    assert sum(p.numel() for p in frozen.parameters() if p.requires_grad) == sum(
        p.numel() for p in removed.parameters() if p.requires_grad)
    for (name, p), q in zip(frozen.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(p, q), name  # the pretrained weights, all of them


def test_distillation_pulls_the_replaced_blocks_towards_the_pretrained_ones():
    """A search candidate: its loss compares each replaced block with the pretrained block on the
    same input, reaches the coefficients, and stops after ``until`` steps."""
    import benchmark_transfer as bt
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    plain = build_classifier('resnet20', 5)
    model, _ = convert('resnet20', 'fused-identity', plain, [], 0, None)
    distill = bt.Distillation(model, plain, until=1)
    with distill.watching(0):
        bt.logits(model, torch.randn(4, 1, 28, 28))
    loss = distill.loss()
    assert len(distill.terms) == 3 and loss > 0
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters()
               if 'repl_coefficients' in n)
    with distill.watching(1):  # off after `until` steps
        bt.logits(model, torch.randn(4, 1, 28, 28))
    assert distill.terms == []


@pytest.mark.slow
def test_progressive_replacement_runs_and_records_its_settings(monkeypatch):
    """A search candidate: plain fine-tuning for the first steps, then the default plan replaced
    and fitted to the network as it is then (a few steps on Fashion-MNIST)."""
    import benchmark_transfer as bt
    monkeypatch.setattr(bt, 'PROGRESSIVE_STEPS', 2)
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    plain = build_classifier('resnet20', 5)
    args = argparse.Namespace(arch='resnet20', split='val', shots=4, iters=4, batch=8, lr=0.01,
                              coefficient_lr_mult=None, light_norm=None)
    result = bt.run_one(args, 'progressive', 0, plain)
    assert result['settings']['plain_steps'] == 2 and result['replaced'] == 3
    assert result['settings']['warm_start'] == 'activations'
    assert result['coefficient_max_move'] > 0


@pytest.mark.slow
def test_costs_of_a_fine_tuning_step(tmp_path, capsys):
    """The ledger of one step of each variant: deleting saves activations and FLOPs, the fused
    kind saves neither, freezing the same blocks trains what RepL trains."""
    import json

    import benchmark_transfer as bt
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    plain = build_classifier('resnet20', 5)
    path = tmp_path / 'resnet20' / 'pretrained.pth'
    path.parent.mkdir()
    torch.save(dict(state_dict=plain.state_dict(), top1=0.0), path)
    assert bt.pretrained_path(str(tmp_path), 'resnet20') == str(path)
    bt.costs(argparse.Namespace(arch='resnet20', out=str(tmp_path), shots=4, batch=4,
                                light_norm=None,
                                variants=['plain', 'removed', 'frozen-blocks', 'fused-default']))
    rows = json.loads((tmp_path / 'resnet20' / 'costs_b4.json').read_text())['variants']
    flops = {v: r['flops']['forward'] + r['flops']['backward'] for v, r in rows.items()}
    activations = {v: r['by_category']['activations'] for v, r in rows.items()}
    assert activations['removed'] < activations['fused-default'] == activations['plain']
    assert flops['removed'] < flops['frozen-blocks'] < flops['fused-default'] == flops['plain']
    assert rows['frozen-blocks']['trainable'] == rows['removed']['trainable']
    assert '| fused-default |' in capsys.readouterr().out
