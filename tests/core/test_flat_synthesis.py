"""Tests of repl_core.flat_synthesis. One flat buffer for many synthesised tensors (CUDA's path):
values, memory order, gradients."""
import copy

import pytest
import torch

import repl_mm  # noqa: F401
from repl_core import block_syntheses, flat_synthesis, replaced_blocks, synthesis_kernels

from conftest import loss_and_grads
from cuda_cases import build_mmpretrain, needs_cuda


def tensors(dtype=torch.float64):
    torch.manual_seed(0)
    shapes = [(8, 4, 3, 3), (8, ), (6, 8, 1, 1), (5, 7)]
    prevs = [torch.randn(s, dtype=dtype) for s in shapes]
    nexts = [torch.randn(s, dtype=dtype) for s in shapes]
    prevs[0] = prevs[0].to(memory_format=torch.channels_last)  # a channels-last conv weight
    nexts[0] = nexts[0].to(memory_format=torch.channels_last)
    coefficients = [torch.randn(2, 8, dtype=dtype), torch.randn(2, dtype=dtype),
                    torch.randn(2, 6, dtype=dtype), torch.randn(2, dtype=dtype)]
    for t in (*prevs, *nexts, *coefficients):
        t.requires_grad_(True)
    return coefficients, prevs, nexts


def reference(coefficients, prevs, nexts):
    values = []
    for c, p, n in zip(coefficients, prevs, nexts):
        a, b = (c[i].view(-1, *[1] * (p.dim() - 1)) if c.dim() == 2 else c[i] for i in (0, 1))
        values.append(a * p + b * n)
    return values


def test_flat_values_keep_shape_and_memory_order():
    coefficients, prevs, nexts = tensors()
    with torch.no_grad():
        values = flat_synthesis.synthesise(coefficients, prevs, nexts)
        expected = reference(coefficients, prevs, nexts)
    for value, want, prev in zip(values, expected, prevs):
        assert value.shape == prev.shape and value.stride() == prev.stride()
        torch.testing.assert_close(value, want, rtol=1e-12, atol=1e-12)
    # one buffer: the values are views of it
    assert len({v.untyped_storage().data_ptr() for v in values}) == 1


def test_flat_gradients_equal_autograd_of_the_formula():
    coefficients, prevs, nexts = tensors()
    inputs = [*coefficients, *prevs, *nexts]
    weights = [torch.randn(p.shape, dtype=p.dtype) for p in prevs]
    weights[1] = torch.zeros_like(weights[1])
    loss = sum((v * w).sum() for v, w in zip(reference(coefficients, prevs, nexts), weights))
    expected = torch.autograd.grad(loss, inputs)
    grads = [w.clone() for w in weights]
    grads[1] = None  # an unused output counts as zero
    needs = [True] * len(inputs)
    needs[3] = False  # a frozen coefficient
    got = flat_synthesis.backward(grads, coefficients, prevs, nexts, needs)
    for index, (g, want) in enumerate(zip(got, expected)):
        if not needs[index]:
            assert g is None
            continue
        # each gradient has its input's layout (no copy when autograd accumulates it)
        assert g.shape == want.shape and g.stride() == inputs[index].stride(), index
        torch.testing.assert_close(g, want, rtol=1e-10, atol=1e-12, msg=str(index))


@needs_cuda
@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'channels_last'])
@pytest.mark.parametrize('repl', [dict(kind='fused'), dict(kind='fused', granularity='channel'),
                                  dict(kind='light')], ids=['fused', 'channel', 'light'])
def test_cuda_flat_synthesis_equals_per_tensor_reference(repl, channels_last):
    """On CUDA a backbone's replaced tensors are one flat buffer, and a tensor synthesised on its
    own (folding, warm start) takes the same kernels: the loss equals the per-tensor reference's
    bit for bit, the gradients to float64 rounding; the values keep the neighbours' layout."""
    assert synthesis_kernels.FLAT_SYNTHESIS['cuda']
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = build_mmpretrain(dict(type='RepLResNet', depth=50, repl=repl)).double()
    model = model.to('cuda', memory_format=memory_format)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    per_tensor = copy.deepcopy(model)
    for group in block_syntheses(per_tensor):
        group.remove()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, device='cuda').to(
        memory_format=memory_format)
    loss, grads = loss_and_grads(model, x)
    ref_loss, ref_grads = loss_and_grads(per_tensor, x)
    assert torch.equal(loss, ref_loss)
    assert grads.keys() == ref_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-9, atol=1e-15, msg=name)
    block = replaced_blocks(model)[0][1]
    if repl['kind'] == 'fused':
        prev = block.conv2.parametrizations.weight[0].neighbours[0]
        assert block.conv2.weight.stride() == prev.weight.stride()
