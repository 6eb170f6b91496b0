"""Tests of repl_mm.analysis.variants: a config's model as plain, RepL of each kind and with the
peers a user would pick instead."""
from mmpretrain.models.backbones import ResNet_CIFAR

import repl_mm  # noqa: F401
from repl_mm.analysis.variants import accepts, amp_optim_wrapper, default_frozen_stages
from repl_mm.mmpretrain.cifar_resnet import CIFARResNet


def test_peers_settings():
    assert default_frozen_stages(dict(type='ResNet')) == 1
    assert default_frozen_stages(dict(type='ResNet', frozen_stages=1)) == 2
    optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1), loss_scale=512.)
    assert amp_optim_wrapper(optim_wrapper, 'cpu') == (
        dict(type='CPUAutocastOptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
        'CPUAutocastOptimWrapper bf16')
    assert amp_optim_wrapper(optim_wrapper, 'cuda')[0]['type'] == 'AmpOptimWrapper'
    assert optim_wrapper['loss_scale'] == 512.  # the given config is left alone


def test_accepts_follows_keyword_arguments_up_the_class_hierarchy():
    assert accepts(CIFARResNet, 'depth') and accepts(CIFARResNet, 'with_cp')
    assert accepts(ResNet_CIFAR, 'frozen_stages') and not accepts(CIFARResNet, 'nope')
