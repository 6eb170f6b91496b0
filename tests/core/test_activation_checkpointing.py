"""Tests of repl_core.activation_checkpointing: activation checkpointing of the blocks that take
part in synthesis, without reentry; DDP and SyncBN converters with it.

repl.recompute=True: replaced blocks keep only their inputs for the backward pass, and training
follows the same trajectory, bit for bit (parameters, coefficients, norm statistics)."""
import copy
import os

import pytest
import torch
import torch.distributed as dist
from mmdet.registry import MODELS
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import init_default_scope

import repl_mm  # noqa: F401
from repl_core import COEFFICIENTS, ReplError, replaced_blocks

from conftest import free_port, spawn
from mm_cases import SMALL_RESNETS, SMALL_SWIN, backbone_outputs, build_backbone

init_default_scope('mmdet')


def build(repl, **kwargs):
    torch.manual_seed(0)
    cfg = dict(type='RepLResNet', depth=34, frozen_stages=-1, norm_eval=False, repl=repl)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def saved_bytes(model, x):
    """Bytes of the distinct storages autograd saves in one forward pass (parameters too)."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = sum(o.square().mean() for o in model(x))
    loss.backward()
    return sum(storages.values())


def train(model, steps=3):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        x = torch.randn(2, 3, 64, 64, generator=generator)
        optimizer.zero_grad()
        sum(o.square().mean() for o in model(x)).backward()
        optimizer.step()
    return model.state_dict()


@pytest.mark.parametrize('with_cp', [False, True])
@pytest.mark.parametrize('repl', [dict(), dict(kind='light'),
                                  dict(kind='light', light_norm='weight')],
                         ids=['fused', 'light-batch', 'light-weight'])
def test_same_trajectory_bit_for_bit(repl, with_cp):
    reference = build(repl, with_cp=with_cp)
    recomputing = build(dict(repl, recompute=True), with_cp=with_cp)
    recomputing.load_state_dict(reference.state_dict())
    expected, got = train(reference), train(recomputing)
    assert expected.keys() == got.keys()
    blocks = replaced_blocks(recomputing)
    for name, value in expected.items():
        if with_cp and name.startswith(tuple(f'{b}.' for b, _ in blocks)) and (
                'running' in name or 'num_batches_tracked' in name):
            continue  # with_cp alone counts a batch again in its recomputation
        assert torch.equal(value, got[name]), name
    assert len(blocks) == 5
    for name, block in blocks:  # each batch counted once
        for module in block.modules():
            if hasattr(module, 'num_batches_tracked'):
                assert module.num_batches_tracked.item() == 3, name


@pytest.mark.parametrize('repl,ratio', [(dict(), 0.85), (dict(kind='light'), 1.0)],
                         ids=['fused', 'light-batch'])
def test_keeps_less_for_the_backward_pass(repl, ratio):
    """The fused blocks' activations go; a light surrogate keeps little more than its input."""
    x = torch.randn(2, 3, 64, 64)
    kept = saved_bytes(build(repl), x)
    recomputed = saved_bytes(build(dict(repl, recompute=True)), x)
    assert recomputed < ratio * kept


def test_removed_blocks_have_nothing_to_recompute():
    with pytest.raises(ReplError, match="nothing to recompute.*kind='fused'"):
        build(dict(kind='removed', recompute=True))


def test_a_copy_recomputes_too():
    model = build(dict(recompute=True))
    twin = copy.deepcopy(model)
    assert torch.equal(train(model)['layer2.1.bn1.running_mean'],
                       train(twin)['layer2.1.bn1.running_mean'])


def test_under_ddp(process_group):
    """DDP marks each parameter ready once per backward; a recomputation inside the backward
    pass must not mark the neighbours' weights a second time."""
    from torch.nn.parallel import DistributedDataParallel
    reference = build(dict())
    recomputing = build(dict(recompute=True))
    recomputing.load_state_dict(reference.state_dict())
    expected = train(DistributedDataParallel(reference), steps=2)
    got = train(DistributedDataParallel(recomputing), steps=2)
    for name, value in expected.items():
        assert torch.equal(value, got[name]), name


def test_norms_rebuilt_by_sync_bn_converters_count_each_batch_once():
    """mmengine's Runner reverts SyncBN to BatchNorm outside distributed training (new norm
    modules): the statistics are kept by the block's hooks, which survive that."""
    from mmengine.model import revert_sync_batchnorm
    model = revert_sync_batchnorm(build(dict(recompute=True), norm_cfg=dict(type='SyncBN')))
    train(model)
    for name, block in replaced_blocks(model):
        for module in block.modules():
            if hasattr(module, 'num_batches_tracked'):
                assert module.num_batches_tracked.item() == 3, name


def _ddp_steps(rank: int, port: int, scope: str, cfg: dict) -> None:
    """One process of a 2-process DDP run: mmengine's default wrapper, two backward passes."""
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = MMDistributedDataParallel(build_backbone(scope, cfg), device_ids=None)
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(rank))
        for _ in range(2):
            sum(o.square().mean() for o in backbone_outputs(model, x)).backward()
        coefficient = next(p for n, p in model.named_parameters() if COEFFICIENTS in n)
        grads = [torch.zeros_like(coefficient.grad) for _ in range(2)]
        dist.all_gather(grads, coefficient.grad)
        assert torch.equal(grads[0], grads[1]), 'gradients were not all-reduced'
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('scope, cfg', [
    ('mmdet', dict(SMALL_RESNETS['mmdet'], with_cp=True)),
    ('mmseg', dict(SMALL_SWIN, with_cp=True)),
    pytest.param('mmdet', dict(SMALL_RESNETS['mmdet'], with_cp=True, repl=dict(kind='light')),
                 marks=pytest.mark.slow),
])
def test_ddp_with_activation_checkpointing(scope, cfg):
    """A recomputation inside the backward pass must not mark a parameter ready a second time
    ("Expected to mark a variable ready only once" at the first backward)."""
    spawn(_ddp_steps, args=(free_port(), scope, cfg), nprocs=2)
