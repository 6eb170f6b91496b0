"""Tests of repl_core.norm_rebuild: synthesis carried over onto the norms a SyncBN converter
rebuilds (torch's and mmengine's converters, and mmengine's revert)."""
import copy

import pytest
import torch
from mmengine.model import convert_sync_batchnorm, revert_sync_batchnorm
from torch.nn.modules.batchnorm import _BatchNorm

import repl_mm  # noqa: F401
from repl_core import COEFFICIENTS

from mm_cases import SMALL_RESNETS, backbone_outputs, build_backbone

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.mark.parametrize('scope, kind', [('mmdet', 'fused'), ('mmseg', 'fused'),
                                         ('mmpretrain', 'fused'), ('mmdet', 'light')])
@pytest.mark.parametrize('converter', ['torch', 'mmengine'])
def test_syncbn_conversion_keeps_keys_coefficients_and_outputs(scope, kind, converter):
    model = build_backbone(scope, SMALL_RESNETS[scope], repl=dict(kind=kind))
    twin = copy.deepcopy(model)
    coefficients = [p for n, p in model.named_parameters() if COEFFICIENTS in n]
    keys = list(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        expected = backbone_outputs(model, x)
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
        for out, ref in zip(backbone_outputs(synced, x), expected):
            torch.testing.assert_close(out, ref, rtol=0, atol=0)
    reverted = revert_sync_batchnorm(synced)  # and back, as a single-process Runner does
    assert list(reverted.state_dict()) == keys
    reverted.eval()
    with torch.no_grad():
        for out, ref in zip(backbone_outputs(reverted, x), expected):
            torch.testing.assert_close(out, ref, rtol=0, atol=0)
    # training (one process: SyncBN runs as BN) reaches the coefficients through the new norms
    synced = convert_sync_batchnorm(reverted, 'torch')
    for m in (synced, twin):
        m.train()
        sum(o.square().mean() for o in backbone_outputs(m, x)).backward()
    twin_coefficients = [p for n, p in twin.named_parameters() if COEFFICIENTS in n]
    for p, q in zip(coefficients, twin_coefficients):
        torch.testing.assert_close(p.grad, q.grad)
