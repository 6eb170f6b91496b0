"""The kernels of synthesis: many tensors as one autograd node, and one tensor on its own.

``P_i = a_i * prev_i + b_i * next_i`` for all ``i`` of one or more replaced blocks, with ``(2,)``
or ``(2, C_out)`` coefficients (per output channel, broadcast over the other dims), as one node
(``SynthesiseTensors``). Two paths, chosen by device type (``FLAT_SYNTHESIS``,
``uses_flat_synthesis``): on the CPU ``torch._foreach_*`` products over the tensors, on CUDA one
flat buffer (``flat_synthesis``: a handful of kernels for any number of tensors), which saves the
per-tensor kernel launches that dominate a small-batch GPU step (docs/benchmarks.md counts them).
A tensor synthesised on its own (``synthesise_tensor``: read outside its block's forward, in
folding, warm start or user code) goes through the same kernels, so both give the same bits.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import flat_synthesis

#: device type -> whether tensors are synthesised as one flat buffer (``flat_synthesis``: a
#: handful of kernels for any number of tensors) rather than with ``foreach`` operators over the
#: tensors (one kernel per tensor where shapes differ, as on CUDA; on the CPU the same loop as
#: synthesising each tensor on its own, so the CPU keeps that path)
FLAT_SYNTHESIS: Dict[str, bool] = {'cuda': True}


def uses_flat_synthesis(tensors: Sequence[Tensor]) -> bool:
    """Whether ``tensors`` (coefficients, previous and next tensors) are synthesised flat: their
    device type says so and they share one device and dtype."""
    first = tensors[0]
    return (FLAT_SYNTHESIS.get(first.device.type, False)
            and all(t.device == first.device and t.dtype == first.dtype for t in tensors))


def synthesise_tensor(coefficients: Tensor, p_prev: Tensor, p_next: Tensor) -> Tensor:
    """``a * p_prev + b * p_next`` of one tensor, with the kernels of ``SynthesiseTensors``, so
    both give the same bits (folding must not drift)."""
    if uses_flat_synthesis((coefficients, p_prev, p_next)):
        return flat_synthesis.synthesise([coefficients], [p_prev], [p_next])[0]
    a, b = _broadcast(coefficients, p_prev.dim())
    return torch.addcmul(p_prev * a, p_next, b)


class SynthesiseTensors(torch.autograd.Function):
    """``P_i = a_i * prev_i + b_i * next_i`` for all ``i`` of one or more blocks, as one node.

    Inputs: ``owners``, ``(weak reference to a BlockSynthesis, generation)`` of each block whose
    values these are (told when the backward has run: a strong reference would make a cycle
    through the graph), ``n``, then the ``n`` coefficient tensors (``(2,)`` or ``(2, C_out)``,
    one may repeat for shared keys), the ``n`` adapted previous and the ``n`` adapted next
    tensors. On the CPU: forward two ``foreach`` operators; backward two ``foreach`` products
    (neighbour gradients) and one dot product per tensor and side (coefficient gradients
    ``<g_i, prev_i>``, ``<g_i, next_i>``, per tensor or per output channel). On CUDA, one flat
    buffer (``flat_synthesis``). Nothing is saved but the inputs themselves.
    """

    @staticmethod
    def forward(ctx, owners: tuple, n: int, *tensors: Tensor) -> Tuple[Tensor, ...]:
        coefficients, prevs, nexts = tensors[:n], tensors[n:2 * n], tensors[2 * n:]
        ctx.flat = uses_flat_synthesis(tensors)
        if ctx.flat:
            values = flat_synthesis.synthesise(coefficients, prevs, nexts)
        else:
            a, b = zip(*(_broadcast(c, p.dim()) for c, p in zip(coefficients, prevs)))
            values = torch._foreach_mul(prevs, a)
            torch._foreach_addcmul_(values, nexts, b)
        ctx.owners, ctx.n = owners, n
        ctx.save_for_backward(*tensors)
        ctx.set_materialize_grads(False)
        return tuple(values)

    @staticmethod
    def backward(ctx, *grads: Optional[Tensor]) -> tuple:
        n = ctx.n
        tensors = ctx.saved_tensors
        coefficients, prevs, nexts = tensors[:n], tensors[n:2 * n], tensors[2 * n:]
        needs = ctx.needs_input_grad[2:]
        if ctx.flat:
            result = flat_synthesis.backward(grads, coefficients, prevs, nexts, needs)
        else:
            result = _foreach_backward(grads, coefficients, prevs, nexts, needs)
        for reference, generation in ctx.owners:
            group = reference()
            if group is not None:
                group.backward_done(generation)
        return (None, None, *result)


def _broadcast(coefficients: Tensor, dim: int) -> Tuple[Tensor, Tensor]:
    """``a, b`` of a ``(2,)`` or ``(2, C_out)`` coefficient tensor, broadcastable to a tensor of
    ``dim`` dims (per output channel: over the remaining dims)."""
    a, b = coefficients[0], coefficients[1]
    if a.dim() == 1:
        a = a.view(-1, *([1] * (dim - 1)))
        b = b.view(-1, *([1] * (dim - 1)))
    return a, b


def _foreach_backward(grads, coefficients, prevs, nexts, needs) -> List[Optional[Tensor]]:
    """``SynthesiseTensors``' input gradients with ``foreach`` products and dot products."""
    n = len(prevs)
    result: List[Optional[Tensor]] = [None] * (3 * n)
    used = [i for i, g in enumerate(grads) if g is not None]
    pairs = {i: _broadcast(coefficients[i], grads[i].dim()) for i in used}
    for offset, pick in ((n, 0), (2 * n, 1)):  # neighbour gradients: a_i * g_i, b_i * g_i
        wanted = [i for i in used if needs[offset + i]]
        if wanted:
            products = torch._foreach_mul([grads[i] for i in wanted],
                                          [pairs[i][pick] for i in wanted])
            for i, product in zip(wanted, products):
                result[offset + i] = product
    wanted = [i for i in used if needs[i]]
    if wanted:
        _coefficient_grads_by_dots(grads, coefficients, prevs, nexts, wanted, result)
    return result


def _coefficient_grads_by_dots(grads, coefficients, prevs, nexts, wanted, result) -> None:
    """``result[i] = [<g_i, prev_i>, <g_i, next_i>]`` (per channel for ``(2, C_out)``), one dot
    product per tensor and side; the ``(2,)`` ones stacked once."""
    per_tensor = [i for i in wanted if coefficients[i].dim() == 1]
    if per_tensor:
        dots = []
        for i in per_tensor:
            flat = grads[i].reshape(-1)
            dots += [torch.dot(flat, prevs[i].reshape(-1)),
                     torch.dot(flat, nexts[i].reshape(-1))]
        for i, row in zip(per_tensor, torch.stack(dots).view(-1, 2)):
            result[i] = row
    for i in wanted:  # (2, C_out) coefficients: per-channel dot products
        if coefficients[i].dim() == 2:
            flat = grads[i].reshape(grads[i].shape[0], -1)
            result[i] = torch.stack([
                torch.linalg.vecdot(flat, side.reshape(side.shape[0], -1))
                for side in (prevs[i], nexts[i])])
