"""Shape adapters: bring a neighbour's tensor to the shape of the replaced block's tensor.

Neighbours often differ in shape: a stage's first block reads the previous stage's channels
(ResNet-50 ``layer2[0].conv1.weight`` is 128x256x1x1, ``layer2[1].conv1.weight`` 128x512x1x1), and a
successor in the next stage has other widths. Dimensions 0 and 1 of a tensor are channel dims
(output, input channels of a conv or linear weight; the channels of a norm's weight or a bias);
dimensions 2 and up are spatial (kernel) dims. Adapters, chosen with ``repl.adapter``
(``settings.ADAPTERS``):

* ``'slice_pad'`` (default, no parameters): channel dims keep their leading entries or are
  zero-padded at the end; spatial dims are cropped or zero-padded around the centre. Exact
  identity on equal shapes, and the neighbour's contribution to extra channels is zero.
* ``'average'`` (no parameters): channel dims are resampled: shrinking averages groups of
  neighbouring channels, growing repeats each channel; a grown input-channel dim (dim 1) is divided
  by the growth factor so a conv's response to channel-replicated input is preserved. Spatial dims
  as in ``'slice_pad'``.
* ``'projection'`` (learnable): each differing channel dim is mapped by a learnable matrix
  (``target x source``), initialised to the ``'slice_pad'`` map; spatial dims as in ``'slice_pad'``.
  Its parameters are trainable (they are counted, and decayed like weights).

Tensors whose numbers of dimensions differ cannot be bridged: ``build_adapter`` raises.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import AdapterError


def _crop_or_pad(tensor: Tensor, dim: int, size: int, centred: bool) -> Tensor:
    have = tensor.shape[dim]
    if have == size:
        return tensor
    if have > size:
        start = (have - size) // 2 if centred else 0
        return tensor.narrow(dim, start, size)
    before = (size - have) // 2 if centred else 0
    pad = [0, 0] * (tensor.dim() - dim - 1) + [before, size - have - before]
    return F.pad(tensor, pad)


def _resample_channels(tensor: Tensor, dim: int, size: int) -> Tensor:
    have = tensor.shape[dim]
    if have == size:
        return tensor
    moved = tensor.movedim(dim, -1)
    flat = moved.reshape(-1, 1, have)
    if size < have:
        flat = F.adaptive_avg_pool1d(flat, size)
    else:
        flat = F.interpolate(flat, size=size, mode='nearest')
        if dim == 1:
            flat = flat * (have / size)
    return flat.reshape(*moved.shape[:-1], size).movedim(-1, dim)


class SlicePadAdapter(nn.Module):
    """Crop / zero-pad to ``target_shape``; see the module docstring."""

    def __init__(self, target_shape: Sequence[int]) -> None:
        super().__init__()
        self.target_shape = tuple(target_shape)

    def forward(self, tensor: Tensor) -> Tensor:
        for dim, size in enumerate(self.target_shape):
            tensor = _crop_or_pad(tensor, dim, size, centred=dim >= 2)
        return tensor


class AverageAdapter(SlicePadAdapter):
    """Average / repeat channel dims, crop / pad spatial dims; see the module docstring."""

    def forward(self, tensor: Tensor) -> Tensor:
        for dim, size in enumerate(self.target_shape):
            if dim < 2:
                tensor = _resample_channels(tensor, dim, size)
            else:
                tensor = _crop_or_pad(tensor, dim, size, centred=True)
        return tensor


class ProjectionAdapter(SlicePadAdapter):
    """Learnable channel projections (``out_proj``: dim 0, ``in_proj``: dim 1).

    A ``source_shape`` tensor of shape ``(C_out, C_in, *k)`` becomes
    ``out_proj @ T @ in_proj^T`` over its channel dims, shape ``(C_out', C_in', *k')``.
    """

    def __init__(self, source_shape: Sequence[int], target_shape: Sequence[int]) -> None:
        super().__init__(target_shape)
        self.out_proj = self._identity(source_shape, target_shape, 0)
        self.in_proj = self._identity(source_shape, target_shape, 1)

    @staticmethod
    def _identity(source_shape: Sequence[int], target_shape: Sequence[int],
                  dim: int) -> Optional[nn.Parameter]:
        if len(target_shape) <= dim or source_shape[dim] == target_shape[dim]:
            return None
        return nn.Parameter(torch.eye(target_shape[dim], source_shape[dim]))

    def forward(self, tensor: Tensor) -> Tensor:
        if self.out_proj is not None:
            tensor = torch.tensordot(self.out_proj, tensor, dims=([1], [0]))
        if self.in_proj is not None:
            tensor = torch.tensordot(self.in_proj, tensor.movedim(1, 0), dims=([1], [0]))
            tensor = tensor.movedim(0, 1)
        for dim in range(2, len(self.target_shape)):
            tensor = _crop_or_pad(tensor, dim, self.target_shape[dim], centred=True)
        return tensor


class ChunkedAdapter(nn.Module):
    """Adapt a tensor made of ``chunks`` equal parts along dim 0 part by part.

    A fused attention input projection stacks the q, k and v weights (``(3C, C)``): bringing a
    ``(6C, 2C)`` neighbour to ``(3C, C)`` must shrink q, k and v each, not keep q and half of k.
    """

    def __init__(self, inner: nn.Module, chunks: int) -> None:
        super().__init__()
        self.inner = inner
        self.chunks = chunks

    def forward(self, tensor: Tensor) -> Tensor:
        return torch.cat([self.inner(part) for part in tensor.chunk(self.chunks, dim=0)], dim=0)


def build_adapter(kind: str, source_shape: Sequence[int], target_shape: Sequence[int],
                  what: str = 'tensor', chunks: int = 1) -> Optional[nn.Module]:
    """An adapter from ``source_shape`` to ``target_shape``, or ``None`` when they are equal.

    Args:
        kind: one of ``settings.ADAPTERS`` (checked there).
        what: how to name the tensor pair in an error message.
        chunks: the tensors are ``chunks`` equal parts along dim 0 (3 for fused q, k, v),
            adapted part by part.
    """
    if chunks > 1 and tuple(source_shape) != tuple(target_shape):
        if source_shape[0] % chunks or target_shape[0] % chunks:
            raise AdapterError(f'{what}: dim 0 of {tuple(source_shape)} and '
                               f'{tuple(target_shape)} must split into {chunks} equal parts.')
        part = build_adapter(kind, (source_shape[0] // chunks, *source_shape[1:]),
                             (target_shape[0] // chunks, *target_shape[1:]), what)
        return None if part is None else ChunkedAdapter(part, chunks)
    source_shape, target_shape = tuple(source_shape), tuple(target_shape)
    if source_shape == target_shape:
        return None
    if len(source_shape) != len(target_shape):
        raise AdapterError(
            f'{what}: no adapter can bridge a {len(source_shape)}-d tensor of shape '
            f'{source_shape} to a {len(target_shape)}-d tensor of shape {target_shape}; '
            f'adapters change sizes, not the number of dimensions. Choose another block to '
            f'replace.')
    if kind == 'projection':
        return ProjectionAdapter(source_shape, target_shape)
    if kind == 'average':
        return AverageAdapter(target_shape)
    if kind == 'slice_pad':
        return SlicePadAdapter(target_shape)
    raise AdapterError(f'{what}: no adapter is called {kind!r} (repl.adapter: '
                       f'repl_core.settings.ADAPTERS).')
