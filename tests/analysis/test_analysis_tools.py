"""tools/analysis/cost_report.py, tools/analysis/plot_logs.py and tools/fold.py, run as a user
would, on tiny mmpretrain classifiers (32x32 inputs)."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from matplotlib.image import imread
from mmengine.config import Config

import repl_mm  # noqa: F401
from repl_mm.analysis.cost_report import build_model, cost_report, format_markdown
from repl_mm.analysis.synthetic import synthetic_runner
from repl_mm.analysis.plot import plot_logs, read_training_log
from repl_mm.engine import trusted_checkpoint_globals

from conftest import run_tool

CLASSIFIER = '''
default_scope = 'mmpretrain'
custom_imports = dict(imports=['repl_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='{backbone}', depth={depth}, zero_init_residual=False{extra}),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels={channels},
              loss=dict(type='CrossEntropyLoss')))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={{'repl_coefficients': dict(decay_mult=0.)}}))
train_dataloader = dict(batch_size=4)
test_pipeline = [dict(type='PackInputs')]
test_dataloader = dict(batch_size=4, dataset=dict(type='CIFAR10', data_root='data/cifar10',
                                                   test_mode=True, pipeline=test_pipeline))
custom_hooks = [dict(type='ReplCheckpointHook'), dict(type='TrainingCostHook')]
'''


def write_config(path, backbone: str, depth: int = 20, channels: int = 64, extra: str = ''):
    path.write_text(CLASSIFIER.format(backbone=backbone, depth=depth, channels=channels,
                                      extra=extra))
    return path


def rows(report: dict) -> dict:
    return {part['name']: part for part in report['parts']}


def test_cost_report_repl_light_and_plain(tmp_path):
    fused_config = write_config(tmp_path / 'fused.py', 'RepLCIFARResNet', extra=', repl=dict()')
    result = run_tool('tools/analysis/cost_report.py', str(fused_config), '--format', 'json',
                      '--measure', '--iters', '2', '--batch-size', '2')
    assert 'RepL' in result.stderr  # model-building logs go to stderr, not into the report
    fused = json.loads(result.stdout)
    reports = {}
    for name, backbone, extra in (('light', 'RepLCIFARResNet', ", repl=dict(kind='light')"),
                                  ('plain', 'CIFARResNet', '')):
        cfg = Config.fromfile(str(write_config(tmp_path / f'{name}.py', backbone, extra=extra)))
        reports[name] = cost_report(cfg)
    light, plain = (json.loads(json.dumps(reports[n].to_dict())) for n in ('light', 'plain'))

    stages = ['backbone.layer1', 'backbone.layer2', 'backbone.layer3']
    for report in (fused, light, plain):
        assert report['input_shape'] == [32, 32]  # CIFAR10 test set, no Resize
        parts = rows(report)
        backbone = parts['backbone']
        for key in ('parameters', 'trainable', 'synthesised'):
            assert sum(parts[n][key] for n in stages + ['backbone (stem, other)']) == \
                backbone[key]
        assert [parts[n]['blocks'] for n in stages] == [3, 3, 3]
        assert parts['model']['parameters'] == backbone['parameters'] + parts['head']['parameters']
    assert [rows(fused)[n]['replaced'] for n in stages] == [[1], [1], [1]]
    assert rows(fused)['backbone']['replaced'] == ['layer1.1', 'layer2.1', 'layer3.1']
    assert [rows(plain)[n]['replaced'] for n in stages] == [[], [], []]
    # every synthesised value is a value the plain twin stores, less the 3 x 6 (a, b) pairs
    repl, twin = rows(fused)['backbone'], rows(plain)['backbone']
    assert twin['parameters'] - (repl['parameters'] - 3 * 6 * 2) == repl['synthesised'] > 0
    # a fused block runs the whole block, a light one a depthwise conv
    assert rows(fused)['backbone']['flops'] == rows(plain)['backbone']['flops']
    for name in stages + ['backbone', 'model']:
        assert rows(light)[name]['flops'] < rows(fused)[name]['flops']
    assert rows(light)['backbone.layer1']['flops'] < 0.75 * rows(fused)['backbone.layer1']['flops']

    training = fused['training']
    assert training['batch_input_shape'] == [2, 3, 32, 32] and training['iters'] == 2
    assert 0 < training['seconds_per_iter'] < 60
    assert 50 < training['cpu_peak_rss_mb'] < 24 * 1024
    assert training['cpu_peak_rss_mb'] == training['rss_before_mb'] + training['training_mb']
    table = format_markdown(reports['light'])
    assert '| backbone.layer2 | 3 | 1: 1 |' in table and '| backbone | 9 | 3 |' in table


@pytest.fixture(scope='module')
def trained_runs(tmp_path_factory):
    """Two 4-iteration runs (fused and light RepL CIFAR ResNet-20) with TrainingCostHook."""
    root = tmp_path_factory.mktemp('runs')
    work_dirs = []
    for kind in ('fused', 'light'):
        config = write_config(root / f'{kind}.py', 'RepLCIFARResNet',
                              extra=f", repl=dict(kind='{kind}')")
        cfg = Config.fromfile(str(config))
        work_dir = root / kind
        synthetic_runner(cfg, str(work_dir), max_iters=4, log_interval=1,
                         custom_hooks=cfg.custom_hooks).train()
        work_dirs.append(work_dir)
    return work_dirs


def test_plot_logs_overlays_two_runs(trained_runs, tmp_path):
    out = tmp_path / 'plots' / 'runs.png'
    result = run_tool('tools/analysis/plot_logs.py', *map(str, trained_runs), '--out', str(out))
    # 2 runs; repl: 3 blocks x (a, b) x 2 runs
    assert result.stdout.strip() == (f'{out}: loss (2 curves), memory (2 curves), '
                                     f'time (2 curves), repl (12 curves)')
    image = imread(str(out))
    assert image.shape[:2] == (4 * 320, 900)  # four panels of 3.2 x 9 inches at 100 dpi
    assert image.std() > 0.05  # something was drawn

    drawn = plot_logs([str(trained_runs[0])], str(tmp_path / 'one.png'),
                      ['lr', 'cost/params_trainable', 'nope'])
    assert drawn == {'lr': 1, 'cost/params_trainable': 1}
    curves = read_training_log(str(trained_runs[0]))
    assert curves['loss'][0] == [1, 2, 3, 4]


PLAIN_LOAD = textwrap.dedent('''
    import sys
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint
    config, weights, inputs, outputs = sys.argv[1:]
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model).eval()
    load_checkpoint(model, weights, map_location='cpu', strict=True)
    with torch.no_grad():
        torch.save(model(torch.load(inputs), mode='tensor'), outputs)
    assert not [m for m in sys.modules if m.startswith('repl_mm')], 'repl_mm was imported'
    print(type(model.backbone).__module__)
''')


def test_fold_gives_a_stock_checkpoint_and_config(tmp_path):
    # ResNet-18 (CIFAR stem, 16 base channels) with the last block of layer1 and layer3 replaced,
    # per-channel coefficients: each takes its successor from the next stage through an adapter
    config = write_config(tmp_path / 'repl_r18.py', 'RepLResNet_CIFAR', depth=18, channels=128,
                          extra=", base_channels=16, stem_channels=16, repl=dict(blocks="
                                "{'layer1': [1], 'layer3': [1]}, granularity='channel')")
    cfg = Config.fromfile(str(config))
    synthetic_runner(cfg, str(tmp_path / 'work'), max_iters=2, custom_hooks=cfg.custom_hooks,
                     checkpoint=True).train()
    checkpoint = tmp_path / 'work' / 'iter_2.pth'
    out = tmp_path / 'folded'
    result = run_tool('tools/fold.py', str(config), str(checkpoint), str(out))
    assert 'folded 2 blocks (backbone.layer1.1, backbone.layer3.1)' in result.stdout

    folded = torch.load(out / 'repl_r18_folded.pth', weights_only=True)  # no allow-list
    assert set(folded) == {'state_dict', 'meta'}
    assert folded['meta']['repl_folded']['plan']['layer1'] == [1]
    assert not any('repl' in key for key in folded['state_dict'])
    plain_text = (out / 'repl_r18_folded.py').read_text()
    assert "type='ResNet_CIFAR'" in plain_text
    assert 'repl' not in plain_text.replace('repl_r18', '')  # no repl, import, hook or key

    model = build_model(cfg).eval()
    with trusted_checkpoint_globals():
        model.load_state_dict(torch.load(checkpoint, map_location='cpu')['state_dict'])
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.save(inputs, tmp_path / 'inputs.pth')
    with torch.no_grad():
        expected = model(inputs, mode='tensor')
    loaded = subprocess.run(
        [sys.executable, '-c', PLAIN_LOAD, str(out / 'repl_r18_folded.py'),
         str(out / 'repl_r18_folded.pth'), str(tmp_path / 'inputs.pth'),
         str(tmp_path / 'outputs.pth')], cwd=tmp_path, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split()[-1].startswith('mmpretrain.')
    actual = torch.load(tmp_path / 'outputs.pth')
    assert torch.allclose(actual, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(actual, torch.zeros_like(actual))


def test_fold_refuses_the_light_kind(tmp_path):
    config = write_config(tmp_path / 'light.py', 'RepLCIFARResNet',
                          extra=", repl=dict(kind='light')")
    result = run_tool('tools/fold.py', str(config), str(tmp_path / 'any.pth'),
                      str(tmp_path / 'out'), check=False)
    assert result.returncode == 2
    assert "repl.kind='light'" in result.stderr and 'still needs repl-mm' in result.stderr
    assert not (tmp_path / 'out').exists()
