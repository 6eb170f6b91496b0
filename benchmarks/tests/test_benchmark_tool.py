"""benchmarks/benchmark.py run as a user would on a tiny classifier, the variants it derives from
real configs, and the plain twins of benchmarks/benchmark_tasks.py."""
import json
import os
import subprocess
import sys

import pytest
from matplotlib.image import imread
from mmengine.config import Config

import repl_mm  # noqa: F401
from repl_mm.models import plain_model_cfg

from conftest import ROOT, run_tool
from cost_benchmark import STEADY_MALLOC, variant_specs

CLASSIFIER = '''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['repl_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='{backbone}', depth=20, zero_init_residual=False{extra}),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={{'repl_coefficients': dict(decay_mult=0.)}}))
train_dataloader = dict(batch_size=8)
'''


def classifier(tmp_path, backbone='RepLCIFARResNet', extra=', repl=dict()'):
    path = tmp_path / 'classifier.py'
    path.write_text(CLASSIFIER.format(backbone=backbone, extra=extra))
    return path


def by_name(report: dict) -> dict:
    return {variant['name']: variant for variant in report['variants']}


def test_benchmark_tool_on_a_tiny_classifier(tmp_path):
    out = tmp_path / 'bench'
    result = run_tool('benchmarks/benchmark.py', str(classifier(tmp_path)), '--shape', '32', '32',
                      '--iters', '2', '--warmup', '1', '--repeats', '1', '--threads', '1',
                      '--variants', 'repl-fused', 'repl-light', 'removed', '--out', str(out))
    assert '[4/4] repeat 1/1' in result.stderr  # progress, one line per process
    report = json.loads((out / 'benchmark.json').read_text())
    markdown = (out / 'benchmark.md').read_text()
    assert result.stdout.strip().startswith(markdown.strip()[:40])
    assert imread(str(out / 'benchmark.png')).shape[0] > 100
    assert report['settings']['batch_size'] == 8 and report['settings']['threads'] == 1
    assert report['settings']['malloc'] == 'steady' and 'malloc steady' in markdown
    variants = by_name(report)
    assert list(variants) == ['baseline', 'repl-fused', 'repl-light', 'removed']
    base, fused, light, removed = (variants[n] for n in variants)
    for variant in variants.values():
        assert f'| {variant["name"]} |' in markdown
        assert variant['error'] is None and len(variant['runs']) == 1
        assert len(variant['runs'][0]['seconds']) == 2 and variant['time']['median'] > 0
        assert variant['memory']['peak_mb'] > 100
        assert variant['time']['minor_faults_per_step'] >= 0
        assert variant['batch_input_shape'] == [8, 3, 32, 32]
    assert base['ratios']['time'] == base['ratios']['trainable_backbone'] == 1.0
    assert base['ratios']['peak_mb'] == base['ratios']['flops_model'] == 1.0
    assert base['description'] == 'plain CIFARResNet' and base['repl'] is None
    # fused: every synthesised value is one the baseline trains, less the (a, b) pairs it adds
    counts, plain = fused['params']['backbone'], base['params']['backbone']
    assert counts['synthesised'] > counts['coefficients'] == 3 * 6 * 2
    assert plain['trainable'] - counts['trainable'] == \
        counts['synthesised'] - counts['coefficients']
    assert fused['params']['model']['trainable'] < base['params']['model']['trainable']
    assert fused['repl']['plan'] == {'layer1': [1], 'layer2': [1], 'layer3': [1]}
    # a fused block computes the whole block; a light one a depthwise conv; removed nothing
    assert fused['flops']['backbone'] == base['flops']['backbone']
    assert removed['flops']['backbone'] < light['flops']['backbone'] < fused['flops']['backbone']
    assert removed['params']['backbone']['parameters'] < plain['parameters']
    assert removed['params']['backbone']['synthesised'] == 0
    assert fused['ratios']['trainable_backbone'] == pytest.approx(
        counts['trainable'] / plain['trainable'])


FAULTS = '''
import resource, torch
torch.set_num_threads(1)
for _ in range(10):  # a 48 MiB tensor, allocated, touched and freed; glibc's heap needs a few
    torch.empty(12 << 20).fill_(1.)  # rounds until the holes fit posix_memalign's requests
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.empty(12 << 20).fill_(1.)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def test_steady_malloc_reuses_freed_memory():
    """The workers' allocator setting: with glibc's defaults a large freed tensor goes back to
    the kernel and every new one faults its pages in again; with STEADY_MALLOC it is reused."""
    env = {k: v for k, v in os.environ.items() if k not in STEADY_MALLOC}
    faults = {}
    for name, extra in (('system', {}), ('steady', STEADY_MALLOC)):
        result = subprocess.run([sys.executable, '-c', FAULTS], env=dict(env, **extra),
                                capture_output=True, text=True, check=True)
        faults[name] = int(result.stdout.split()[-1])
    assert faults['system'] > 5 * 10000  # 12,288 pages a tensor
    assert faults['steady'] < 1000


def test_variants_follow_the_backbone_class():
    """mmdet's ResNet has no drop_path_rate; its COCO config freezes one stage already."""
    cfg = Config.fromfile(str(ROOT / 'configs/mask_rcnn_repl_r50_coco.py'))
    specs = {spec.name: spec for spec in variant_specs(cfg, device='cpu')}
    assert 'drop_path_rate' in specs['stochastic-depth'].skipped
    assert specs['stochastic-depth'].cfg is None
    baseline = specs['baseline'].cfg.model.backbone
    assert baseline.type == 'ResNet' and 'repl' not in baseline
    assert specs['frozen-stages'].cfg.model.backbone.frozen_stages == 2
    assert specs['checkpointing'].cfg.model.backbone.with_cp is True
    assert specs['amp'].cfg.optim_wrapper.type == 'CPUAutocastOptimWrapper'
    assert specs['amp'].cfg.model.backbone.type == 'ResNet'
    for name, kind in (('repl-fused', 'fused'), ('repl-light', 'light'),
                       ('removed', 'removed')):
        assert specs[name].cfg.model.backbone.type == 'RepLResNet'
        assert specs[name].cfg.model.backbone.repl == dict(kind=kind)
    assert variant_specs(cfg, ['amp'], device='cuda')[0].cfg.optim_wrapper.type == \
        'AmpOptimWrapper'


def test_every_variant_in_mixed_precision():
    """``--amp``: each variant keeps its model and trains under the AMP wrapper; the plain AMP
    peer is then the baseline itself and is skipped, saying so."""
    cfg = Config.fromfile(str(ROOT / 'configs/mask_rcnn_repl_r50_coco.py'))
    specs = {spec.name: spec for spec in variant_specs(cfg, device='cuda', amp=True)}
    for name in ('baseline', 'repl-fused', 'repl-light', 'removed', 'frozen-stages',
                 'checkpointing'):
        assert specs[name].cfg.optim_wrapper.type == 'AmpOptimWrapper', name
        assert specs[name].cfg.optim_wrapper.optimizer == cfg.optim_wrapper.optimizer
    assert specs['repl-light'].cfg.model.backbone.repl == dict(kind='light')
    assert specs['checkpointing'].cfg.model.backbone.with_cp is True
    assert specs['amp'].cfg is None and '--amp' in specs['amp'].skipped
    assert cfg.optim_wrapper.type != 'AmpOptimWrapper'  # the config itself is untouched


def test_variants_of_a_plain_config(tmp_path):
    """A plain backbone gets its registered RepL twin with the default plan; mmpretrain's
    ResNet family takes drop_path_rate."""
    cfg = Config.fromfile(str(classifier(tmp_path, 'CIFARResNet', extra='')))
    specs = {spec.name: spec for spec in variant_specs(cfg, device='cpu')}
    assert not any(spec.skipped for spec in specs.values())
    assert specs['repl-light'].cfg.model.backbone.type == 'RepLCIFARResNet'
    assert specs['repl-light'].cfg.model.backbone.repl == dict(kind='light')
    assert specs['stochastic-depth'].cfg.model.backbone.drop_path_rate == 0.1
    assert specs['frozen-stages'].cfg.model.backbone.frozen_stages == 1


@pytest.mark.parametrize('repl, plain', [
    ('configs/demo/mask_rcnn_repl_r50_demo', 'benchmarks/configs/demo_mask_rcnn_r50'),
    ('configs/demo/deeplabv3plus_repl_r50_demo', 'benchmarks/configs/demo_deeplabv3plus_r50')])
def test_plain_twins_differ_only_in_the_backbone(repl, plain):
    repl_cfg = Config.fromfile(str(ROOT / f'{repl}.py'))
    plain_cfg = Config.fromfile(str(ROOT / f'{plain}.py'))
    assert {'type': 'TrainingCostHook'} in repl_cfg.custom_hooks
    repl_cfg.model = plain_model_cfg(repl_cfg.model)
    assert repl_cfg.pretty_text == plain_cfg.pretty_text


@pytest.mark.slow
def test_benchmark_tool_backbone_only_with_every_peer(tmp_path):
    out = tmp_path / 'bench'
    run_tool('benchmarks/benchmark.py', str(classifier(tmp_path)), '--backbone-only',
             '--shape', '32', '32', '--batch-size', '4', '--iters', '2', '--warmup', '1',
             '--repeats', '2', '--out', str(out))
    report = json.loads((out / 'benchmark.json').read_text())
    variants = by_name(report)
    assert report['settings']['mode'] == 'backbone'
    assert list(variants) == ['baseline', 'repl-fused', 'repl-light', 'removed',
                              'frozen-stages', 'checkpointing', 'stochastic-depth', 'amp']
    for variant in variants.values():
        assert variant['error'] is None and variant['skipped'] is None
        assert [run['repeat'] for run in variant['runs']] == [0, 1]
        assert variant['batch_input_shape'] == [4, 3, 32, 32]
        assert 'model' not in variant['params'] and set(variant['flops']) == {'backbone'}
    assert variants['frozen-stages']['ratios']['trainable_backbone'] < 1
    assert variants['checkpointing']['flops'] == variants['baseline']['flops']
    assert 'CPUAutocastOptimWrapper' in variants['amp']['description']
    assert 'ratio of fastest repeats' in (out / 'benchmark.md').read_text()
