"""Per-block (batched) synthesis: the same values and gradients as tensor-by-tensor synthesis,
fewer operators, and values that are never read once stale."""
import copy
from collections import Counter

import pytest
import torch
from mmengine.registry import MODELS, init_default_scope

import repl_mm  # noqa: F401
from repl_mm.core import block_syntheses, fold_replaced_blocks, replaced_blocks

VIT = dict(type='RepLVisionTransformer', img_size=32, patch_size=8,
           arch=dict(embed_dims=32, num_layers=5, num_heads=2, feedforward_channels=64))
# ResNet-50's layer3[1] reads layer3[0] through slice/pad adapters; the ViT shares one (a, b)
# among the tensors of a sub-module; light adds the diagonal-kernel adapter
CASES = [
    (dict(type='RepLResNet', depth=50), dict(kind='fused'), 64),
    (dict(type='RepLResNet', depth=50), dict(kind='fused', granularity='channel'), 64),
    (dict(type='RepLResNet', depth=50), dict(kind='light'), 64),
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


def loss_and_grads(model, x):
    model.zero_grad(set_to_none=True)
    out = model(x)
    loss = sum(o.square().mean() for o in (out if isinstance(out, tuple) else (out, )))
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize('cfg, repl, size', CASES)
def test_batched_equals_per_tensor_synthesis(cfg, repl, size):
    batched = build(cfg, repl).double()
    per_tensor = copy.deepcopy(batched)
    groups = block_syntheses(per_tensor)
    assert len(groups) == len(replaced_blocks(per_tensor)) > 0
    for group in groups:
        group.remove()
    assert not block_syntheses(per_tensor)
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    loss, grads = loss_and_grads(batched, x)
    ref_loss, ref_grads = loss_and_grads(per_tensor, x)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    assert grads.keys() == ref_grads.keys()
    assert any('repl_coefficients' in name for name in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-9, atol=1e-15, msg=name)


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


def test_folding_unhooks_the_block():
    model = build(dict(type='RepLResNet', depth=50), dict(kind='fused'))
    fold_replaced_blocks(model)
    assert not block_syntheses(model)
    for module in model.modules():
        assert not module._forward_pre_hooks and not module._forward_hooks


# operators that launch no kernel: views and allocations
NO_KERNEL = {'as_strided', 'view', 'reshape', 'select', 'unbind', 'slice', 'narrow', 'unsqueeze',
             'expand', 'empty', 'empty_like', 'empty_strided', 'new_empty', 'detach', 'alias',
             'to', 'transpose', 't', 'permute', 'resize_', 'split', 'split_with_sizes'}


def operator_counts(model, x):
    loss_and_grads(model, x)
    with torch.profiler.profile() as prof:
        loss_and_grads(model, x)
    return Counter(event.name for event in prof.events() if event.name.startswith('aten::')
                   and event.name[len('aten::'):] not in NO_KERNEL)


def test_batching_cuts_the_synthesis_operators():
    """The extra operators a fused step runs over the plain step: under half of what
    tensor-by-tensor synthesis runs (ResNet-50, 45 replaced tensors)."""
    x = torch.randn(2, 3, 64, 64)
    init_default_scope('mmpretrain')
    plain = sum(operator_counts(MODELS.build(dict(type='ResNet', depth=50)), x).values())
    batched = build(dict(type='RepLResNet', depth=50), dict(kind='fused'))
    per_tensor = copy.deepcopy(batched)
    for group in block_syntheses(per_tensor):
        group.remove()
    extra = sum(operator_counts(batched, x).values()) - plain
    extra_per_tensor = sum(operator_counts(per_tensor, x).values()) - plain
    assert 0 < extra < extra_per_tensor / 2, (extra, extra_per_tensor)
