"""Tests of repl_core.synthesis_batching (BlockSynthesis, BackboneSynthesis). Batched synthesis (all
replaced blocks of a backbone in one node, or each block on its own): the same values and gradients
as tensor-by-tensor synthesis, fewer operators, and values that are never read once stale."""
import copy
from collections import Counter

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401
from repl_core import (backbone_syntheses, block_syntheses, replaced_blocks, synthesis_batching,
                       synthesis_kernels)

from conftest import loss_and_grads
from mm_cases import SMALL_RESNETS, backbone_outputs, build_backbone

VIT = dict(type='RepLVisionTransformer', img_size=32, patch_size=8,
           arch=dict(embed_dims=32, num_layers=5, num_heads=2, feedforward_channels=64))
# ResNet-50's layer3[1] reads layer3[0] through slice/pad adapters; the ViT shares one (a, b)
# among the tensors of a sub-module; light adds the diagonal-kernel adapter
CASES = [
    (dict(type='RepLResNet', depth=50), dict(kind='fused'), 64),
    (dict(type='RepLResNet', depth=50), dict(kind='fused', granularity='channel'), 64),
    (dict(type='RepLResNet', depth=50), dict(kind='light'), 64),
    (dict(type='RepLResNet', depth=50), dict(kind='light', light_norm='weight'), 64),
    (dict(type='RepLResNet', depth=50), dict(kind='fused', detach_neighbours=True), 64),
    (VIT, dict(kind='fused', granularity='submodule'), 32),
    (VIT, dict(kind='light'), 32),
]


def build(cfg, repl):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg, repl=repl))
    with torch.no_grad():  # coefficients away from their init, distinct per tensor
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize('flat', [False, True], ids=['foreach', 'flat'])
@pytest.mark.parametrize('cfg, repl, size', CASES)
def test_batched_equals_per_tensor_synthesis(cfg, repl, size, flat, monkeypatch):
    """The backbone's one node and the blocks' own nodes give the per-tensor reference's loss bit
    for bit, and its gradients, on either path (``foreach``: the CPU's; one flat buffer:
    CUDA's)."""
    monkeypatch.setitem(synthesis_kernels.FLAT_SYNTHESIS, 'cpu', flat)
    batched = build(cfg, repl).double()
    per_block = copy.deepcopy(batched)
    per_tensor = copy.deepcopy(batched)
    assert len(backbone_syntheses(batched)) == 1
    for batch in backbone_syntheses(per_block):
        batch.remove()
    assert not backbone_syntheses(per_block) and block_syntheses(per_block)
    groups = block_syntheses(per_tensor)
    assert len(groups) == len(replaced_blocks(per_tensor)) > 0
    for group in groups:
        group.remove()
    assert not block_syntheses(per_tensor) and not backbone_syntheses(per_tensor)
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    ref_loss, ref_grads = loss_and_grads(per_tensor, x)
    for model in (batched, per_block):
        loss, grads = loss_and_grads(model, x)
        assert torch.equal(loss, ref_loss)
        assert grads.keys() == ref_grads.keys()
        assert any('repl_coefficients' in name for name in grads)
        for name, grad in grads.items():
            torch.testing.assert_close(grad, ref_grads[name], rtol=1e-9, atol=1e-15, msg=name)
            assert grad.is_contiguous(), name


def test_one_synthesis_node_per_backbone_forward(monkeypatch):
    """A backbone forward synthesises every replaced tensor in one node; a block called on its
    own (after the backbone's forward, or with the batching removed) makes its own."""
    nodes = []
    apply = synthesis_kernels.SynthesiseTensors.apply

    def counted(owners, n, *tensors):
        nodes.append(n)
        return apply(owners, n, *tensors)

    monkeypatch.setattr(synthesis_kernels.SynthesiseTensors, 'apply', staticmethod(counted))
    model = build(dict(type='RepLResNet', depth=50), dict(kind='fused'))
    x = torch.randn(2, 3, 64, 64)
    loss_and_grads(model, x)
    assert nodes == [45]  # 5 blocks, 45 tensors
    path, block = replaced_blocks(model)[0]
    [group] = block_syntheses(block)
    block(torch.randn(1, 256, 8, 8))
    assert nodes == [45, len(group.syntheses)] and not group.prefetched
    nodes.clear()
    for batch in backbone_syntheses(model):
        batch.remove()
    loss_and_grads(model, x)
    assert sorted(nodes) == sorted(len(g.syntheses) for g in block_syntheses(model))
    assert not any(m._forward_pre_hooks for m in (model, ))


def test_each_block_keeps_its_node_in_a_distributed_run(monkeypatch):
    """With several processes (DDP all-reduces its buckets in order) a neighbour's gradient must
    be ready once its block's backward has run, not at the end of the backward pass."""
    nodes = []
    apply = synthesis_kernels.SynthesiseTensors.apply
    monkeypatch.setattr(synthesis_kernels.SynthesiseTensors, 'apply',
                        staticmethod(lambda owners, n, *t: nodes.append(n) or apply(owners, n, *t)))
    monkeypatch.setattr(synthesis_batching, '_distributed', lambda: True)
    model = build(dict(type='RepLResNet', depth=50), dict(kind='fused'))
    loss_and_grads(model, torch.randn(2, 3, 64, 64))
    assert sorted(nodes) == sorted(len(g.syntheses) for g in block_syntheses(model))


def test_values_are_never_stale():
    """Values live from a block's forward to their backward (a checkpoint's recomputation reads
    them), and only while current: an optimizer step, a device/dtype move or another grad mode
    make a read synthesise afresh; deepcopy (EMA) works with values held. Outside the forward and
    the backward a read always synthesises afresh (a ``.data`` write changes no version)."""
    model = build(dict(type='RepLResNet', depth=50), dict(kind='fused'))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path, block = replaced_blocks(model)[0]
    [group] = block_syntheses(block)
    synthesis = block.conv2.parametrizations.weight[0]
    loss = sum(o.square().mean() for o in model(torch.randn(2, 3, 64, 64)))
    assert not group.inside_forward and group.values is not None
    held = group.values[synthesis.index]
    assert block.conv2.weight is not held and torch.equal(block.conv2.weight, held)
    copy.deepcopy(model)
    loss.backward()
    assert group.values is None  # dropped by their backward
    model(torch.randn(2, 3, 64, 64))  # a forward without its backward: values held
    optimizer.step()
    prev, nxt = synthesis.neighbours
    a, b = block.repl_coefficients['conv2_weight']
    torch.testing.assert_close(block.conv2.weight, a * prev.weight + b * nxt.weight)
    assert group.values is None  # found stale and freed
    model(torch.randn(2, 3, 64, 64))
    with torch.no_grad():
        assert not block.conv2.weight.requires_grad  # not the grad-mode values of the forward
        model(torch.randn(2, 3, 64, 64))
    assert group.values is None  # a no-grad forward keeps nothing
    model(torch.randn(2, 3, 64, 64))
    model.double()
    assert block.conv2.weight.dtype == torch.float64
    with pytest.raises(RuntimeError):
        block(torch.randn(2, 7, 16, 16, dtype=torch.float64))  # raises inside the block
    assert not group.inside_forward


def test_non_reentrant_checkpoint_inside_the_block(monkeypatch):
    """A block that checkpoints its own body with ``use_reentrant=False`` recomputes it from the
    same values in the backward pass (torch checks that it saves the same tensors)."""
    import functools

    import mmpretrain.models.backbones.resnet as resnet_module
    from torch.utils import checkpoint
    model = build(dict(type='RepLResNet', depth=50), dict(kind='fused')).double()
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if hasattr(module, 'with_cp'):
            module.with_cp = True
    monkeypatch.setattr(resnet_module, 'cp', type('cp', (), dict(checkpoint=staticmethod(
        functools.partial(checkpoint.checkpoint, use_reentrant=False)))))
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, requires_grad=True)
    _, grads = loss_and_grads(model, x)
    _, cp_grads = loss_and_grads(twin, x)
    for name, grad in grads.items():
        torch.testing.assert_close(cp_grads[name], grad, rtol=1e-9, atol=1e-15, msg=name)


# operators that launch no kernel: views and allocations
NO_KERNEL = {'as_strided', 'view', 'reshape', 'select', 'unbind', 'slice', 'narrow', 'unsqueeze',
             'expand', 'empty', 'empty_like', 'empty_strided', 'new_empty', 'detach', 'alias',
             'to', 'transpose', 't', 'permute', 'resize_', 'split', 'split_with_sizes'}


def operator_counts(model, x):
    """Operators called by a training step's Python and autograd code (not from inside another
    operator: a ``foreach`` operator's per-tensor loop on the CPU is one launch on CUDA)."""
    loss_and_grads(model, x)
    with torch.profiler.profile() as prof:
        loss_and_grads(model, x)
    counts = Counter()
    for event in prof.events():
        if not event.name.startswith('aten::') or event.name[len('aten::'):] in NO_KERNEL:
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith('aten::'):
            parent = parent.cpu_parent
        if parent is None:
            counts[event.name] += 1
    return counts


def test_batching_cuts_the_synthesis_operators(monkeypatch):
    """The extra operators of a fused ResNet-50 step over the plain step (45 replaced tensors),
    on CUDA's path (one flat buffer): tensor by tensor, block by block and the backbone's one
    node. What is left in the last are the neighbours' gradient accumulations (an ``add_``
    per use of a shared tensor, as any weight sharing costs) and the adapters' pads."""
    monkeypatch.setitem(synthesis_kernels.FLAT_SYNTHESIS, 'cpu', True)
    x = torch.randn(2, 3, 64, 64)
    init_default_scope('mmpretrain')
    plain = operator_counts(MODELS.build(dict(type='ResNet', depth=50)), x)
    batched = build(dict(type='RepLResNet', depth=50), dict(kind='fused'))
    per_block = copy.deepcopy(batched)
    for batch in backbone_syntheses(per_block):
        batch.remove()
    per_tensor = copy.deepcopy(batched)
    for group in block_syntheses(per_tensor):
        group.remove()
    extra = {name: operator_counts(model, x) - plain
             for name, model in (('backbone', batched), ('block', per_block),
                                 ('tensor', per_tensor))}
    synthesis_ops = {name: sum(n for op, n in counts.items()
                               if op not in ('aten::add_', 'aten::pad', 'aten::constant_pad_nd'))
                     for name, counts in extra.items()}
    assert extra['backbone']['aten::add_'] == 90
    assert synthesis_ops['backbone'] <= 30, extra['backbone']  # 23 at this writing
    assert synthesis_ops['block'] >= 4 * synthesis_ops['backbone'], extra['block']
    assert synthesis_ops['tensor'] >= 20 * synthesis_ops['backbone'], extra['tensor']


@pytest.mark.parametrize('repl, distributed, checkpointing', [
    (dict(kind='fused'), False, 'with_cp'), (dict(kind='fused'), True, 'with_cp'),
    (dict(kind='light'), False, 'with_cp'), (dict(kind='fused'), False, 'recompute'),
    (dict(kind='fused'), True, 'recompute')])
def test_two_forwards_before_one_backward_with_activation_checkpointing(repl, distributed,
                                                                         checkpointing,
                                                                         monkeypatch):
    """Multi-view training (two crops, BYOL / SimSiam-style) with ``with_cp=True`` or
    ``repl.recompute=True``: the second forward's backward must not free the values the first
    forward's recomputation needs (synthesised again inside the recomputation, they would raise
    ``CheckpointError`` with the fused kind)."""
    monkeypatch.setattr(synthesis_batching, '_distributed', lambda: distributed)
    init_default_scope('mmdet')
    views = [torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(i))
             for i in range(2)]
    grads = []
    for checkpointed in (False, True):
        torch.manual_seed(0)
        model = MODELS.build(dict(
            type='RepLResNet', depth=50, base_channels=16,
            with_cp=checkpointed and checkpointing == 'with_cp',
            repl=dict(repl, recompute=checkpointed and checkpointing == 'recompute')))
        outputs = [model(x) for x in views]
        sum(o.square().mean() for out in outputs for o in out).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[1].keys() == grads[0].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_synthesised_values_are_never_stale_after_a_data_write():
    """mmengine's EMA swap and fused optimizers write parameters through ``.data``, which leaves
    their version counters alone."""
    model = build_backbone('mmdet', SMALL_RESNETS['mmdet'])
    block = model.layer3[1]
    backbone_outputs(model, torch.randn(2, 3, 32, 32))  # a forward with grad: its values are held
    prev, nxt = block.conv2.parametrizations.weight[0].neighbours
    prev.weight.data.copy_(torch.randn_like(prev.weight))
    a, b = block.repl_coefficients['conv2_weight'].detach()
    torch.testing.assert_close(block.conv2.weight, a * prev.weight + b * nxt.weight,
                               rtol=0, atol=0)
