"""tools/analysis/cost_report.py --ledger, run as a user would: on mmdet's own Mask R-CNN config
as written (plain backbone, custom_imports) and on a ResNet-50 backbone alone; the ledger explains
the allocator's measured peak within 5%."""
import json
import runpy
import sys

import pytest
from matplotlib.image import imread

import repl_mm  # noqa: F401  (imported once, as the tool does)
from conftest import ROOT, run_tool

UPSTREAM_MASK_RCNN = '''
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['repl_mm'], allow_failed_imports=False)
'''


def _explained(variant: dict) -> None:
    """The categories sum to the measured peak within 5%, and ``other`` is small."""
    ledger, measured = variant['peak'], variant['measured']['peak_bytes']
    assert sum(ledger['by_category'].values()) == ledger['total']
    assert abs(ledger['total'] / measured - 1) < 0.05, variant['name']
    assert ledger['by_category']['other'] < 0.01 * measured
    assert ledger['by_category']['parameters'] == 4 * variant['params']['parameters']


def test_ledger_of_an_upstream_mask_rcnn_config(tmp_path):
    config = tmp_path / 'mask_rcnn_upstream.py'
    config.write_text(UPSTREAM_MASK_RCNN)
    out = tmp_path / 'ledger'
    result = run_tool('tools/analysis/cost_report.py', str(config), '--ledger', '--variants',
                      'fused+cp', '--shape', '96', '96', '--batch-size', '1', '--out', str(out))
    assert '| fused+cp |' in result.stdout
    report = json.loads((out / 'ledger.json').read_text())
    assert report['shape'] == [96, 96] and report['batch_size'] == 1
    [fused] = report['variants']
    assert fused['description'] == 'RepLResNet kind=fused, with_cp=True'
    _explained(fused)
    assert fused['batch_input_shape'] == [1, 3, 96, 96]
    # the config's frozen_stages=1 holds for both: layer1 trains nothing, its block 1 is plain
    parts = {part['name']: part for part in fused['parts']}
    assert parts['backbone.layer1']['params']['trainable'] == 0
    assert parts['backbone.layer1.1']['label'] == ''
    assert parts['backbone.layer2.1']['label'] == 'replaced'
    assert parts['backbone.layer2.1']['peak']['parameters'] == 4 * 18  # 9 tensors' (a, b)
    assert fused['ratios']['trainable_vs_plain'] is None  # fused+cp compares to plain+cp
    assert imread(str(out / 'ledger.png')).shape[0] > 100


def test_ledger_of_a_backbone_step(tmp_path):
    out = tmp_path / 'ledger'
    run_tool('tools/analysis/cost_report.py', 'configs/repl_resnet50_imagenet.py', '--ledger',
             '--backbone-only', '--variants', 'fused', '--shape', '64', '64', '--batch-size', '2',
             '--format', 'json', '--out', str(out))
    [fused] = json.loads((out / 'ledger.json').read_text())['variants']
    _explained(fused)
    names = [part['name'] for part in fused['parts']]
    assert names[:5] == ['backbone (stem, other)', 'layer1', 'layer1.0', 'layer1.1', 'layer1.2']
    replaced = [part['name'] for part in fused['parts'] if part['label'] == 'replaced']
    assert replaced == ['layer1.1', 'layer2.1', 'layer3.1', 'layer3.3', 'layer4.1']
    total = fused['parts'][-1]
    assert total['peak'] == fused['peak']['by_category']


def test_ledger_refuses_an_unknown_variant(tmp_path, monkeypatch, capsys):
    """Exit 2 with the choices, before any variant runs (in this process: run_tool's exit)."""
    monkeypatch.setattr(sys, 'argv', ['cost_report.py', 'configs/repl_resnet50_imagenet.py',
                                      '--ledger', '--variants', 'fused', 'fused+zero',
                                      '--out', str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / 'tools/analysis/cost_report.py'), run_name='__main__')
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Unknown variant 'fused+zero'" in stderr and 'fused+cp' in stderr
    assert not (tmp_path / 'configs').exists()


def test_recompute_keeps_what_plain_checkpointing_of_the_same_blocks_keeps(tmp_path):
    """repl.recompute=True against the plain backbone with the plan's blocks checkpointed: the
    same activations and recomputation FLOPs, without the replaced blocks' parameters."""
    out = tmp_path / 'ledger'
    run_tool('tools/analysis/cost_report.py', 'configs/repl_resnet50_imagenet.py', '--ledger',
             '--backbone-only', '--variants', 'fused', 'plain+recompute', 'fused+recompute',
             'removed+recompute', '--shape', '64', '64', '--batch-size', '2', '--format', 'json',
             '--out', str(out))
    fused, plain_rc, fused_rc, removed_rc = json.loads(
        (out / 'ledger.json').read_text())['variants']
    assert removed_rc['skipped'] == 'removed blocks have nothing to recompute'
    assert 'layer1.1, layer2.1, layer3.1, layer3.3, layer4.1 checkpointed' in \
        plain_rc['description']

    def saved(variant):
        return variant['saved_in_forward']['activations']

    assert saved(fused_rc) == saved(plain_rc) < 0.9 * saved(fused)
    assert fused_rc['flops']['backward'] == plain_rc['flops']['backward'] > \
        fused['flops']['backward']
    assert fused_rc['params']['trainable'] < 0.71 * plain_rc['params']['trainable']


def test_ledger_of_a_grey_image_config(tmp_path):
    """A config whose backbone takes one channel (Fashion-MNIST) gets one-channel images."""
    out = tmp_path / 'ledger'
    run_tool('tools/analysis/cost_report.py', 'benchmarks/configs/fashion_mnist_resnet32.py',
             '--ledger', '--variants', 'fused', '--batch-size', '2', '--format', 'json',
             '--out', str(out))
    [fused] = json.loads((out / 'ledger.json').read_text())['variants']
    assert 'error' not in fused, fused.get('error')
    assert fused['batch_input_shape'] == [2, 1, 28, 28]
