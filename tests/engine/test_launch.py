"""Tests of repl_mm.engine.launch: distributed launch on CPU as well as on CUDA."""
from repl_mm.engine.launch import convert_sync_bn


def test_every_sync_bn_norm_config_becomes_bn():
    cfg = dict(backbone=dict(type='RepLResNet', norm_cfg=dict(type='SyncBN', requires_grad=True)),
               neck=[dict(norm_cfg=dict(type='MMSyncBN')), dict(norm_cfg=dict(type='GN'))])
    assert convert_sync_bn(cfg) == 2
    assert cfg == dict(backbone=dict(type='RepLResNet',
                                     norm_cfg=dict(type='BN', requires_grad=True)),
                       neck=[dict(norm_cfg=dict(type='BN')), dict(norm_cfg=dict(type='GN'))])
