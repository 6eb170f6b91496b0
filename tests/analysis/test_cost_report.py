"""Tests of repl_mm.analysis.cost_report: a model's cost report, through
tools/analysis/cost_report.py as a user runs it and in this process, on tiny mmpretrain classifiers
(32x32 inputs)."""
import json

from mmengine.config import Config

import repl_mm  # noqa: F401
from repl_mm.analysis.cost_report import cost_report, format_markdown

from conftest import run_tool, write_config


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
