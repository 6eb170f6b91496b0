"""Many synthesised tensors as one flat buffer: a handful of kernels, whatever their number.

``P_i = a_i * prev_i + b_i * next_i`` for ``n`` tensors of different shapes, with ``(2,)`` or
``(2, C_out)`` coefficients, computed on four flat vectors: ``prev`` and ``next`` concatenated
(each tensor in its own memory order, so that a channels-last conv weight stays channels-last),
and ``a`` and ``b`` expanded to one value per element (``repeat_interleave`` of the coefficients'
values). On CUDA, a ``foreach`` operator over tensors of different shapes, or over coefficients
broadcast against them, falls back to one kernel per tensor: hundreds of launches per training
step for a ResNet-50. This path makes about a dozen forward and twenty backward, for all replaced
tensors of a backbone at once; it costs temporaries of a few times the synthesised tensors' size
(freed within the forward and within the backward; the values themselves share one buffer).

The coefficient gradients ``<g_i, prev_i>`` and ``<g_i, next_i>`` (per tensor or per output
channel) are one segmented sum per side. A device that synthesises this way also synthesises a
single tensor this way (``NeighbourSynthesis``: folding, warm start), so both give the same bits:
the same elementwise kernels on the same values.
"""
import functools
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class FlatLayout:
    """Where each of ``n`` tensors lies in the flat buffer, and its coefficients' elements.

    Attributes:
        shapes: each tensor's shape.
        orders: each tensor's dims in memory order (outermost first; dim 0 always first).
        offsets: each tensor's first element in the buffer.
        columns: each tensor's coefficient count per side: 1 (``(2,)``) or ``C_out``.
        column_offsets: each tensor's first coefficient element among all of one side.
        total: elements in the buffer.
        lengths: ``(sum of columns,)`` int64: the elements each coefficient element weighs.
        interleave: ``(2 * sum of columns,)`` int64: picks, from ``[a-sums, b-sums]``, tensor
            by tensor its ``a`` then its ``b`` elements (each gradient a contiguous slice).
    """

    shapes: Tuple[Tuple[int, ...], ...]
    orders: Tuple[Tuple[int, ...], ...]
    offsets: Tuple[int, ...]
    columns: Tuple[int, ...]
    column_offsets: Tuple[int, ...]
    total: int
    lengths: Tensor
    interleave: Tensor

    def flatten(self, tensors: Sequence[Optional[Tensor]], like: Sequence[Tensor]) -> Tensor:
        """``(total,)``: the tensors in their layout order; ``None`` counts as zeros."""
        parts = []
        for tensor, order, template in zip(tensors, self.orders, like):
            if tensor is None:
                parts.append(template.new_zeros(template.numel()))
            else:
                parts.append(tensor.permute(order).reshape(-1))
        return torch.cat(parts)

    def unflatten(self, flat: Tensor) -> List[Tensor]:
        """Views of ``flat``, one per tensor, with its shape and memory order."""
        views = []
        for shape, order, offset in zip(self.shapes, self.orders, self.offsets):
            numel = math.prod(shape)
            permuted = flat[offset:offset + numel].view([shape[d] for d in order])
            views.append(permuted.permute(_inverse(order)))
        return views

    def expand(self, coefficients: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """``a`` and ``b`` per element, each ``(total,)``."""
        return tuple(torch.repeat_interleave(
            torch.cat([c[side].reshape(-1) for c in coefficients]), self.lengths,
            output_size=self.total) for side in (0, 1))


def layout_of(coefficients: Sequence[Tensor], tensors: Sequence[Tensor]) -> FlatLayout:
    """The (cached) layout of ``tensors`` with their ``coefficients``."""
    key = tuple((tuple(t.shape), tuple(t.stride()), tuple(c.shape))
                for c, t in zip(coefficients, tensors))
    return _layout(key, tensors[0].device)


@functools.lru_cache(maxsize=256)
def _layout(key: tuple, device: torch.device) -> FlatLayout:
    shapes, orders, offsets, columns, column_offsets, lengths = [], [], [], [], [], []
    offset = column = 0
    for shape, stride, coefficient_shape in key:
        count = coefficient_shape[1] if len(coefficient_shape) == 2 else 1
        numel = math.prod(shape)
        shapes.append(shape)
        orders.append(_memory_order(shape, stride))
        offsets.append(offset)
        columns.append(count)
        column_offsets.append(column)
        lengths += [numel // count] * count
        offset += numel
        column += count
    interleave = [j for start, count in zip(column_offsets, columns)
                  for j in (*range(start, start + count),
                            *range(column + start, column + start + count))]
    return FlatLayout(tuple(shapes), tuple(orders), tuple(offsets), tuple(columns),
                      tuple(column_offsets), offset,
                      torch.tensor(lengths, dtype=torch.int64, device=device),
                      torch.tensor(interleave, dtype=torch.int64, device=device))


def synthesise(coefficients: Sequence[Tensor], prevs: Sequence[Tensor],
               nexts: Sequence[Tensor]) -> List[Tensor]:
    """``[a_i * prev_i + b_i * next_i]``, views of one buffer (no autograd of its own)."""
    layout = layout_of(coefficients, prevs)
    a, b = layout.expand(coefficients)
    values = torch.addcmul(layout.flatten(prevs, prevs) * a, layout.flatten(nexts, prevs), b)
    return layout.unflatten(values)


def backward(grads: Sequence[Optional[Tensor]], coefficients: Sequence[Tensor],
             prevs: Sequence[Tensor], nexts: Sequence[Tensor],
             needs: Sequence[bool]) -> List[Optional[Tensor]]:
    """Gradients of ``synthesise``'s inputs (``coefficients``, ``prevs``, ``nexts``, as
    ``needs`` says) from those of its outputs (``None``: zero)."""
    n = len(prevs)
    layout = layout_of(coefficients, prevs)
    result: List[Optional[Tensor]] = [None] * (3 * n)
    g = layout.flatten(grads, prevs)
    a, b = layout.expand(coefficients)
    for offset, side in ((n, a), (2 * n, b)):  # neighbour gradients: a_i * g_i, b_i * g_i
        if any(needs[offset:offset + n]):
            for i, view in enumerate(layout.unflatten(g * side)):
                if needs[offset + i]:
                    result[offset + i] = view
    del a, b
    if any(needs[:n]):
        sums = [torch.segment_reduce(g * layout.flatten(side, prevs), 'sum',
                                     lengths=layout.lengths) for side in (prevs, nexts)]
        both = torch.cat(sums).index_select(0, layout.interleave)
        for i in range(n):
            if needs[i]:
                start, count = layout.column_offsets[i], layout.columns[i]
                result[i] = both[2 * start:2 * (start + count)].view(coefficients[i].shape)
    return result


def _memory_order(shape: Tuple[int, ...], stride: Tuple[int, ...]) -> Tuple[int, ...]:
    """The dims of a dense tensor from outermost to innermost in memory, dim 0 first; the
    identity where the tensor is not dense in such an order (it is then copied)."""
    order = tuple(sorted(range(len(shape)), key=lambda d: (-stride[d], d)))
    expected = 1
    for d in reversed(order):
        if shape[d] != 1 and stride[d] != expected:
            return tuple(range(len(shape)))
        expected *= shape[d]
    return order if not order or order[0] == 0 else tuple(range(len(shape)))


def _inverse(order: Tuple[int, ...]) -> Tuple[int, ...]:
    inverse = [0] * len(order)
    for position, d in enumerate(order):
        inverse[d] = position
    return tuple(inverse)
