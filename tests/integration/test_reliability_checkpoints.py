"""Checkpoint files across tools, for mmdet, mmseg and mmpretrain models: a plain checkpoint
initialises a RepL model (replaced blocks' weights ignored or used for the warm start), a RepL
checkpoint is refused by a model with another plan, a folded checkpoint loads into the stock
model with strict=True. Real framework configs, with a narrow ResNet-34 (base 16 channels)."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import load_checkpoint
from torch.nn.utils import parametrize
from torch.utils._pytree import tree_leaves

import repl_mm  # noqa: F401
from repl_core import COEFFICIENTS, CheckpointMismatchError, fold_replaced_blocks, \
    replaced_blocks
from repl_mm.engine.launch import convert_sync_bn

from conftest import LogRecords, perturb

# framework: (base config, plain backbone, RepL backbone, backbone and model overrides, size)
FRAMEWORKS = {
    'mmdet': ('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', 'ResNet', 'RepLResNet',
              dict(init_cfg=None, frozen_stages=-1, norm_eval=False),
              dict(neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
                   bbox_head=dict(num_classes=3, in_channels=32, feat_channels=32,
                                  stacked_convs=1)), 64),
    'mmseg': ('mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py', 'ResNetV1c',
              'RepLResNetV1c', dict(stem_channels=16),
              dict(pretrained=None, decode_head=dict(in_channels=128, channels=16, num_classes=4),
                   auxiliary_head=dict(in_channels=64, channels=16, num_classes=4)), 64),
    'mmpretrain': ('mmpretrain::resnet/resnet18_8xb16_cifar10.py', 'ResNet_CIFAR',
                   'RepLResNet_CIFAR', dict(), dict(head=dict(in_channels=128, num_classes=4)),
                   32),
}
# the default plan of ResNet-34 (3, 4, 6, 3 blocks)
REPLACED = ['backbone.layer1.1', 'backbone.layer2.1', 'backbone.layer3.1', 'backbone.layer3.3',
            'backbone.layer4.1']
_model_cfgs = {}


pytestmark = pytest.mark.usefixtures('one_thread')


def build(framework, repl=None):
    """The framework's model; its backbone RepL with ``repl``, or the stock class if None."""
    base, plain, repl_type, backbone, overrides, _ = FRAMEWORKS[framework]
    if framework not in _model_cfgs:
        cfg = Config.fromstring(f"_base_ = '{base}'", '.py')
        cfg.merge_from_dict(dict(model=dict(
            backbone=dict(depth=34, base_channels=16, **backbone), **overrides)))
        convert_sync_bn(cfg.model)  # single-process CPU test: plain BN
        _model_cfgs[framework] = cfg.model.to_dict()
    cfg = copy.deepcopy(_model_cfgs[framework])
    cfg['backbone']['type'] = plain if repl is None else repl_type
    if repl is not None:
        cfg['backbone']['repl'] = repl
    init_default_scope(framework)
    return MODELS.build(cfg)


def synthesised(block):
    """``{path in block: synthesised tensor}`` of a replaced block."""
    return {f'{path}.{name}'.lstrip('.'): getattr(module, name).detach().clone()
            for path, module in block.named_modules() if parametrize.is_parametrized(module)
            for name in module.parametrizations}


def forward(model, size):
    model.eval()
    with torch.no_grad():
        inputs = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
        return tree_leaves(model(inputs, mode='tensor'))


def load_logged(model, filename, strict=False):
    records = LogRecords()
    logger = MMLogger.get_current_instance()
    logger.addHandler(records)
    try:
        load_checkpoint(model, str(filename), map_location='cpu', strict=strict,
                        logger='current')
    finally:
        logger.removeHandler(records)
    return records.messages


@pytest.mark.parametrize('warm_start', [False, 'weights'])
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_plain_checkpoint_initialises_repl_model(framework, warm_start, tmp_path):
    plain = build(framework)
    perturb(plain)
    # the plain checkpoint's replaced blocks hold exactly 0.3 * prev + 0.7 * next (through the
    # adapters where shapes differ), so a warm start must find (a, b) = (0.3, 0.7) everywhere
    donor = build(framework, repl=dict(warm_start=False))
    donor.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for name, p in donor.named_parameters():
            if COEFFICIENTS in name:
                p.copy_(torch.tensor([0.3, 0.7]))
    state = plain.state_dict()
    for path, block in replaced_blocks(donor):
        for name, value in synthesised(block).items():
            state[f'{path}.{name}'] = value
    torch.save({'state_dict': state, 'meta': {}}, tmp_path / 'plain.pth')

    repl = build(framework, repl=dict(warm_start=warm_start))
    messages = load_logged(repl, tmp_path / 'plain.pth')
    lines = [m for m in messages if 'RepL: ' in m and 'not loaded' in m]
    assert len(lines) == 1 and ', '.join(REPLACED) in lines[0]
    # mmengine names what the state dict lacks: only the coefficients, unless warm-started
    mismatch = ' '.join(m for m in messages if 'do not match exactly' in m)
    assert 'unexpected key' not in mismatch
    listed = mismatch.partition('missing keys in source state_dict: ')[2]
    missing = [key.strip() for key in listed.split(',') if key.strip()]
    assert all(COEFFICIENTS in key for key in missing)
    assert len(missing) == (0 if warm_start else 30)
    ours = repl.state_dict()
    for key, value in state.items():
        if key in ours:  # every ordinary weight and every buffer, replaced blocks' included
            assert torch.equal(ours[key], value), key
    coefficients = [p for n, p in repl.named_parameters() if COEFFICIENTS in n]
    assert len(coefficients) == 5 * 6  # 5 BasicBlocks, 6 tensors each
    if warm_start:
        assert 'Warm start' in lines[0]
        assert all(f'{path} 0.000' in lines[0] for path in REPLACED)  # relative fit error
        for c in coefficients:
            torch.testing.assert_close(c.detach(), torch.tensor([0.3, 0.7]), atol=1e-4,
                                       rtol=0)
    else:
        assert 'Warm start' not in lines[0]
        assert all(c.tolist() == [0.5, 0.5] for c in coefficients)


@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_repl_checkpoint_is_refused_by_another_plan_or_granularity(framework, tmp_path):
    torch.save({'state_dict': build(framework, repl=dict()).state_dict()},
               tmp_path / 'repl.pth')
    other_plan = build(framework, repl=dict(blocks={'layer3': [2]}))
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(other_plan, str(tmp_path / 'repl.pth'), map_location='cpu')
    assert error.value.checkpoint_blocks == [f'backbone.{block}' for block in (
        'layer1.1', 'layer2.1', 'layer3.1', 'layer3.3', 'layer4.1')]
    assert error.value.model_blocks == ['backbone.layer3.2']
    other_granularity = build(framework, repl=dict(granularity='channel'))
    with pytest.raises(CheckpointMismatchError,
                       match=r"granularity='tensor' \(this model: 'channel'\)") as error:
        load_checkpoint(other_granularity, str(tmp_path / 'repl.pth'), map_location='cpu')
    assert error.value.checkpoint_spec.granularity == 'tensor'
    assert error.value.model_spec.granularity == 'channel'


@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_folded_checkpoint_loads_into_the_stock_model_strictly(framework, tmp_path):
    size = FRAMEWORKS[framework][-1]
    repl = build(framework, repl=dict())
    perturb(repl)  # coefficients included
    expected = forward(repl, size)
    assert len(fold_replaced_blocks(repl)) == 5
    torch.save({'state_dict': repl.state_dict()}, tmp_path / 'folded.pth')
    # tensors only: stock tools load it under torch's default weights_only=True, no allow-list
    torch.load(tmp_path / 'folded.pth', weights_only=True)

    stock = build(framework)
    assert 'RepL' not in type(stock.backbone).__name__
    load_checkpoint(stock, str(tmp_path / 'folded.pth'), map_location='cpu', strict=True)
    for got, want in zip(forward(stock, size), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
