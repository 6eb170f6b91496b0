"""One flat buffer for many synthesised tensors (CUDA's path): values, memory order, gradients."""
import torch

from repl_core import flat_synthesis


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
