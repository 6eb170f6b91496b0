"""Tests of repl_mm.mmdet.backbones: RepLResNet in mmdet, the foundation contract on a real
ResNet-50."""
import copy

import pytest
import torch
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import repl_mm  # noqa: F401
from repl_core import COEFFICIENTS, PlanError, is_replaced, synthesised_numel

from conftest import LogRecords

init_default_scope('mmdet')

DEFAULT_PLAN = {'layer1': [1], 'layer2': [1], 'layer3': [1, 3], 'layer4': [1]}


def build(**kwargs):
    cfg = dict(type='RepLResNet', depth=50, repl=dict())
    cfg.update(kwargs)
    return MODELS.build(cfg)


def count(module, trainable_only=False):
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def test_default_plan_and_parameter_counts():
    plain, repl = ResNet(50), build()
    assert repl.repl_plan.to_dict() == DEFAULT_PLAN
    assert count(plain) == 23_508_032
    assert synthesised_numel(repl) == 7_047_424
    coefficients = sum(p.numel() for n, p in repl.named_parameters() if COEFFICIENTS in n)
    assert coefficients == 5 * 9 * 2  # 5 blocks, 9 tensors each, (a, b)
    assert count(plain, True) - count(repl, True) == 7_047_424 - coefficients


def test_replaced_block_keeps_structure_and_owns_no_weights():
    repl = build(repl=dict(blocks={'layer2': [1], 2: [3]}))
    assert repl.repl_plan.to_dict() == {'layer1': [], 'layer2': [1], 'layer3': [3],
                                        'layer4': []}
    block = repl.layer2[1]
    assert is_replaced(block) and type(block).__name__ == 'Bottleneck'
    assert block.downsample is None and block.conv2.stride == (1, 1)
    assert [n for n, _ in block.named_parameters() if COEFFICIENTS not in n] == []
    assert block.conv1.weight.shape == (128, 512, 1, 1)  # from layer2[0]'s 128x256 via slice_pad
    assert set(dict(block.named_buffers())) == set(dict(ResNet(50).layer2[1].named_buffers()))
    torch.testing.assert_close(block.repl_coefficients['conv2_weight'],
                               torch.tensor([0.5, 0.5]))


def test_state_dict_keys_are_the_plain_backbones():
    plain_keys = set(ResNet(50).state_dict())
    repl = build()
    keys = set(repl.state_dict())
    coefficient_keys = {k for k in keys if f'.{COEFFICIENTS}.' in k}
    replaced_params = {f'{stage}.{i}.{name}' for stage, idx in DEFAULT_PLAN.items() for i in idx
                       for name, _ in ResNet(50).get_submodule(f'{stage}.{i}').named_parameters()}
    assert keys - coefficient_keys == plain_keys - replaced_params


@pytest.mark.parametrize('blocks, message', [
    ({'layer5': [1]}, r"unknown stage 'layer5'"),
    ({'layer3': [6]}, r'unknown block index 6; stage layer3 has blocks 0..5'),
    ({'layer3': [1, 2]}, r'layer3\[1\] and layer3\[2\] are adjacent'),
    ({'layer2': [0]}, r"layer2\[0\] cannot be replaced: its parameter 'downsample.0.weight' "
                      r'has no counterpart'),
])
def test_invalid_plan_fails_at_build_time(blocks, message):
    with pytest.raises(PlanError, match=message):
        build(repl=dict(blocks=blocks))


def test_frozen_stages_are_not_replaced_and_norm_eval_reaches_replaced_blocks():
    repl = build(frozen_stages=1, norm_eval=True)
    repl.train()
    assert repl.repl_plan.skipped == (('layer1', 1), )  # the default plan skips the frozen stage
    assert not is_replaced(repl.layer1[1])
    assert not any(p.requires_grad for p in repl.layer1.parameters())
    assert all(p.requires_grad for p in repl.layer2[1].repl_coefficients.values())
    assert not repl.layer2[1].bn1.training  # norm_eval reaches replaced blocks' BN


def test_with_cp_gives_the_same_gradients():
    torch.manual_seed(0)
    repl = build().double()  # float64: float32 reordering noise would hide small differences
    twin = copy.deepcopy(repl)
    for block in twin.modules():
        if hasattr(block, 'with_cp'):
            block.with_cp = True
    x = torch.randn(2, 3, 64, 64, requires_grad=True, dtype=torch.float64)
    grads = []
    for model in (repl, twin):
        sum(o.square().mean() for o in model(x)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], rtol=1e-7, atol=1e-12, msg=name)
    assert grads[1]['layer3.3.repl_coefficients.conv2_weight'].abs().sum() > 0


def test_coefficients_get_no_weight_decay():
    repl = build()
    wrapper = build_optim_wrapper(repl, dict(
        optimizer=dict(type='SGD', lr=0.01, weight_decay=1e-4),
        paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)})))
    coefficient_ids = {id(p) for n, p in repl.named_parameters() if COEFFICIENTS in n}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            expected = 0.0 if id(param) in coefficient_ids else 1e-4
            assert group['weight_decay'] == expected


@pytest.mark.parametrize('warm_start', ['weights', False])
def test_pretrained_plain_checkpoint_loads_and_names_ignored_blocks(tmp_path, warm_start):
    plain = ResNet(50)
    torch.save(plain.state_dict(), tmp_path / 'r50.pth')
    repl = build(init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'r50.pth')),
                 repl=dict(warm_start=warm_start))
    records = LogRecords()
    logger = MMLogger.get_current_instance()
    logger.addHandler(records)
    try:
        repl.init_weights()
    finally:
        logger.removeHandler(records)
    lines = [m for m in records.messages if 'RepL: ' in m and 'not loaded' in m]
    assert len(lines) == 1 and 'layer1.1, layer2.1, layer3.1, layer3.3, layer4.1' in lines[0]
    assert ('Warm start' in lines[0]) == bool(warm_start)
    torch.testing.assert_close(repl.layer1[0].conv1.weight, plain.layer1[0].conv1.weight)
    torch.testing.assert_close(repl.layer1[1].bn1.running_var, plain.layer1[1].bn1.running_var)
    a, b = repl.layer3[3].repl_coefficients['conv2_weight'].tolist()
    prev, nxt, own = (plain.layer3[i].conv2.weight for i in (2, 4, 3))
    torch.testing.assert_close(repl.layer3[3].conv2.weight, a * prev + b * nxt)
    if warm_start:  # least squares: the residual is orthogonal to both neighbours
        residual = (a * prev + b * nxt - own).flatten().double()
        assert abs(residual @ prev.flatten().double()) < 1e-3 * residual.norm() * prev.norm()
        assert abs(residual @ nxt.flatten().double()) < 1e-3 * residual.norm() * nxt.norm()
    else:
        assert (a, b) == (0.5, 0.5)


def test_ema_copy_synthesises_from_its_own_neighbours():
    from mmdet.models.layers import ExpMomentumEMA
    repl = build(repl=dict(blocks={'layer1': [1]}))
    ema = ExpMomentumEMA(repl, momentum=0.5)
    with torch.no_grad():
        for p in repl.parameters():
            p.add_(1.0)
    ema.update_parameters(repl)
    blocks = ema.module.layer1
    assert blocks[1].conv2.parametrizations.weight[0].neighbours == (blocks[0].conv2,
                                                                     blocks[2].conv2)
    a, b = blocks[1].repl_coefficients['conv2_weight'].tolist()
    torch.testing.assert_close(blocks[1].conv2.weight,
                               a * blocks[0].conv2.weight + b * blocks[2].conv2.weight)
    torch.testing.assert_close(blocks[0].conv2.weight, repl.layer1[0].conv2.weight)
    ema.update_parameters(repl)  # the EMA copy moves on its own
    with torch.no_grad():
        for p in repl.parameters():
            p.add_(1.0)
    ema.update_parameters(repl)
    assert not torch.allclose(blocks[0].conv2.weight, repl.layer1[0].conv2.weight)
    a, b = blocks[1].repl_coefficients['conv2_weight'].tolist()
    torch.testing.assert_close(blocks[1].conv2.weight,
                               a * blocks[0].conv2.weight + b * blocks[2].conv2.weight)
