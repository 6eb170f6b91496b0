"""Tests of repl_mm.engine.ledger: the memory ledger on real mmdet, mmseg and mmpretrain models:
parameters, gradients and optimizer state equal hand counts; what autograd saves follows the
backbone kinds and peers; autocast copies, DDP's gradient buckets and ZeRO's shard are found."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401
from repl_core import replaced_blocks, synthesised_numel
from repl_mm.analysis.ledger_report import create_optimizer_state
from repl_mm.analysis.synthetic import backbone_input, backbone_step, synthetic_batch
from repl_mm.engine.ledger import CATEGORIES, StepLedger

from conftest import ROOT
from cuda_cases import needs_cuda

pytestmark = pytest.mark.usefixtures('one_thread')

CLASSIFIER = dict(
    type='ImageClassifier',
    backbone=dict(type='RepLCIFARResNet', depth=20, zero_init_residual=False, repl=dict()),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64))


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def ledgered_step(framework: str, model_cfg: dict, optim_wrapper: dict, shape, batch_size=2):
    """Build the model and optim wrapper, create the optimizer state, run one train_step inside
    a StepLedger; return the model, the torch optimizer and the ledger's result."""
    init_default_scope(framework)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(model_cfg))
    wrapper = build_optim_wrapper(model, copy.deepcopy(optim_wrapper))
    create_optimizer_state(model, [wrapper.optimizer])
    model.train()
    batch = synthetic_batch(framework, shape, batch_size)
    with StepLedger(model, [wrapper.optimizer]) as ledger:
        model.train_step(batch, wrapper)
    return model, wrapper.optimizer, ledger.result()


def _config_model(path: str) -> dict:
    return Config.fromfile(str(ROOT / path)).model


SGD = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
ADAMW = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))


@pytest.mark.parametrize('framework, model, optim_wrapper, shape', [
    ('mmdet', 'configs/demo/mask_rcnn_repl_r50_demo.py', SGD, (96, 96)),
    ('mmseg', 'configs/demo/deeplabv3plus_repl_r50_demo.py', SGD, (64, 128)),
    ('mmpretrain', CLASSIFIER, ADAMW, (32, 32)),
], ids=['mmdet-mask-rcnn', 'mmseg-deeplabv3plus', 'mmpretrain-adamw'])
def test_parameters_gradients_and_optimizer_state_equal_hand_counts(framework, model,
                                                                    optim_wrapper, shape):
    model_cfg = _config_model(model) if isinstance(model, str) else model
    model, optimizer, result = ledgered_step(framework, model_cfg, optim_wrapper, shape)
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    if optim_wrapper is SGD:  # one momentum buffer per trainable value
        state = _bytes(trainable)
    else:  # AdamW: two moments per value, and a float32 step count per tensor
        state = 2 * _bytes(trainable) + 4 * len(trainable)
    at_step = result.optimizer_step.by_category()
    peak = result.peak.by_category()
    assert peak['parameters'] == at_step['parameters'] == _bytes(params)
    assert peak['optimizer_state'] == at_step['optimizer_state'] == state
    assert at_step['gradients'] == _bytes(trainable)  # backward done: every .grad exists
    assert 0 <= peak['gradients'] <= _bytes(trainable)
    assert peak['activations'] > 0 and result.peak.total == sum(peak.values())
    # by module: the replaced blocks own only their coefficients, the stem its weights
    by_path = {}
    for (category, _, path), value in result.peak.bytes.items():
        if category == 'parameters':
            by_path[path] = by_path.get(path, 0) + value
    for path, block in replaced_blocks(model):
        owned = sum(v for p, v in by_path.items() if p == path or p.startswith(path + '.'))
        assert owned == _bytes(block.parameters()) > 0, path
    flops = result.total_flops('forward'), result.total_flops('backward')
    assert flops[0] > 0 and flops[1] > flops[0]  # backward: input and weight gradients
    assert result.total_elementwise_bytes() > 0


def _flops(model, x):
    from torch.utils.flop_counter import FlopCounterMode

    def step():
        sum(o.square().mean() for o in model(x)).backward()

    with StepLedger(model) as ledger:
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    return ledger.result(), counter.get_total_flops()


def test_flops_are_flop_counter_modes_but_for_grouped_weight_gradients():
    """The ledger counts FLOPs with FlopCounterMode's formulas: the same total for a fused
    ResNet-18; for a light one (depthwise surrogates) FlopCounterMode counts each depthwise
    weight gradient channels times over, the ledger as 2 x batch x positions x weights."""
    init_default_scope('mmdet')
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    fused = MODELS.build(dict(type='RepLResNet', depth=18, repl=dict(blocks={'layer1': [1]})))
    result, theirs = _flops(fused, x)
    assert result.total_flops() == theirs > 0
    assert 0 < result.total_flops('forward') < result.total_flops('backward')
    light = MODELS.build(dict(type='RepLResNet', depth=18,
                              repl=dict(blocks={'layer1': [1]}, kind='light',
                                        light_norm='weight')))
    result, theirs = _flops(light, x)
    depthwise = 2 * 2 * 16 * 16 * 64 * 9  # batch, 16x16 positions, 64 channels x 3 x 3
    assert theirs - result.total_flops() == 64 * depthwise - depthwise


def backbone_saved(repl=None, shape=(64, 64), **backbone):
    """One backbone step of a ResNet-50 at batch 2: the ledger's result, the trainable
    parameters and the model."""
    init_default_scope('mmdet')
    torch.manual_seed(0)
    cfg = dict(type='ResNet' if repl is None else 'RepLResNet', depth=50, **backbone)
    if repl is not None:
        cfg['repl'] = repl
    model = MODELS.build(cfg)
    wrapper = build_optim_wrapper(model, copy.deepcopy(SGD))
    model.train()
    step = backbone_step(model, backbone_input(Config(dict(model=dict(backbone=cfg))), 2,
                                               shape, 0), wrapper)
    with StepLedger(model, [wrapper.optimizer]) as ledger:
        step()
    result = ledger.result()
    return result, sum(p.numel() for p in model.parameters() if p.requires_grad), model


#: the reference table: RepL kinds and peers of a ResNet-50 backbone
KINDS_AND_PEERS = dict(plain=(None, {}), fused=({}, {}), light_batch=(dict(kind='light'), {}),
                       light_weight=(dict(kind='light', light_norm='weight'), {}),
                       removed=(dict(kind='removed'), {}),
                       frozen=(None, dict(frozen_stages=1)), cp=(None, dict(with_cp=True)))


def saved_for_backward(shape):
    saved, trainable = {}, {}
    for name, (repl, backbone) in KINDS_AND_PEERS.items():
        result, trainable[name], model = backbone_saved(repl, shape, **backbone)
        saved[name] = sum(result.saved_by_category().values())
        if name == 'fused':
            assert result.saved_by_category()['synthesised_weights'] > 0
            # the synthesised weights live until the synthesis' backward (end of the pass), and
            # so do the neighbour tensors padded to another shape: conv1 of each stage's block 1
            # takes 4x the input channels of block 0's
            padded = 64 * 256 + 128 * 512 + 256 * 1024 + 512 * 2048
            assert result.peak.by_category()['synthesised_weights'] == \
                4 * (synthesised_numel(model) + padded)
            assert result.peak.by_category()['activations'] == \
                plain.peak.by_category()['activations']  # the fused kind saves what plain does
        if name == 'plain':
            plain = result
    return saved, trainable


def test_saved_for_backward_follows_kinds_and_peers():
    """At 64x64 the weights that convolutions save weigh most: every kind saves less than
    fused, removed least of RepL's, checkpointing least of all; the fused kind's saved weights
    are synthesised weights, not parameters or activations."""
    saved, trainable = saved_for_backward((64, 64))
    assert saved['cp'] < saved['removed'] < saved['light_weight'] < saved['light_batch'] < \
        saved['fused']
    assert saved['removed'] < saved['frozen'] < saved['plain'] < saved['fused']
    assert 0.69 < trainable['fused'] / trainable['plain'] < 0.71
    assert trainable['removed'] == trainable['fused'] - 90  # the fused kind's coefficients


@pytest.mark.slow
def test_saved_for_backward_reproduces_the_reference_table():
    """ResNet-50 backbone, 2x3x224x224, saved for backward relative to plain (docs/benchmarks.md,
    section 6, the reference tables): fused 1.02, light batch 0.85, light weight 0.79, removed
    0.74, frozen_stages=1 0.71, with_cp 0.24."""
    saved, _ = saved_for_backward((224, 224))
    expected = dict(fused=1.02, light_batch=0.85, light_weight=0.79, removed=0.74, frozen=0.71,
                    cp=0.24)
    for name, ratio in expected.items():
        assert abs(saved[name] / saved['plain'] - ratio) < 0.006, name


def test_autocast_weight_copies_are_their_own_category():
    """bf16 autocast on CPU (CPUAutocastOptimWrapper): the weights' low-precision copies are
    found, owned by their parameters' modules, and the parameters stay parameters."""
    model, _, result = ledgered_step(
        'mmpretrain', CLASSIFIER, dict(type='CPUAutocastOptimWrapper', **SGD), (32, 32))
    saved = result.saved_by_category()
    assert saved['autocast_weight_copies'] > 0
    weights = sum(p.numel() * 2 for n, p in model.named_parameters()
                  if n.endswith('weight') and p.dim() > 1)
    copies = sum(v for (c, _, p), v in result.peak.bytes.items()
                 if c == 'autocast_weight_copies')
    assert 0 < copies <= weights
    owners = {p for (c, _, p), v in result.peak.bytes.items() if c == 'autocast_weight_copies'}
    assert owners and all(p.startswith(('backbone.', 'head.')) for p in owners)
    assert result.peak.by_category()['parameters'] == _bytes(model.parameters())


def test_ddp_buckets_and_zero_state(process_group):
    """Under DDP the reducer's buckets (one flat copy of every trainable gradient) are found
    and equal a hand count; ZeroRedundancyOptimizer's state is counted."""
    from mmengine.model import MMDistributedDataParallel
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(CLASSIFIER))
    ddp = MMDistributedDataParallel(module=model, device_ids=None)
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(
        type='ZeroRedundancyOptimizer', optimizer_type='SGD', lr=0.01, momentum=0.9)))
    batch = synthetic_batch('mmpretrain', (32, 32), 2)
    ddp.train_step(batch, wrapper)  # the state of a steady step; DDP rebuilds its buckets
    ddp.train_step(batch, wrapper)
    with StepLedger(model, [wrapper.optimizer]) as ledger:
        ddp.train_step(batch, wrapper)
    at_step = ledger.result().optimizer_step.by_category()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert at_step['gradient_buckets'] == _bytes(trainable)
    assert at_step['gradients'] == _bytes(trainable)
    assert at_step['optimizer_state'] == _bytes(trainable)  # one process owns every shard
    assert set(CATEGORIES) == set(at_step)


@needs_cuda
@pytest.mark.parametrize('repl', [None, dict(), dict(kind='light', light_norm='weight')],
                         ids=['plain', 'fused', 'light-weight'])
def test_ledger_explains_cuda_max_memory_allocated(repl):
    """One backbone step of a ResNet-50 at 16x3x224x224 (SGD with momentum, its state made
    first): the ledger's categories at its peak sum to within 5% of max_memory_allocated over
    the step, less what was allocated before the model was built; the parameters, gradients
    and optimizer state equal hand counts."""
    from mmengine.config import Config
    from repl_mm.analysis.ledger_report import measure_ledger
    backbone = dict(type='ResNet', depth=50) if repl is None else \
        dict(type='RepLResNet', depth=50, repl=repl)
    cfg = Config(dict(default_scope='mmpretrain', model=dict(backbone=backbone),
                      optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))))
    result = measure_ledger(cfg, device='cuda', shape=(224, 224), batch_size=16,
                            backbone_only=True)
    measured = result['measured']['peak_bytes']
    assert result['measured']['source'] == 'torch.cuda.max_memory_allocated'
    assert abs(result['peak']['total'] / measured - 1) < 0.05, (result['peak'], measured)
    trainable = 4 * result['params']['trainable']
    assert result['peak']['by_category']['parameters'] == 4 * result['params']['parameters']
    assert result['peak']['by_category']['optimizer_state'] == trainable
    assert result['optimizer_step']['gradients'] == trainable
