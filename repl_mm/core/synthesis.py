"""Synthesis of one parameter tensor of a replaced block from its neighbours' tensors.

``P = a * adapt_prev(P_prev) + b * adapt_next(P_next)``, evaluated every time the block reads the
tensor. It is installed with ``torch.nn.utils.parametrize`` (``unsafe=True``, and ``right_inverse``
returns no tensors), which gives exactly what a replaced block needs:

* the block keeps its module structure, stride, shortcut and norm layers, and its norm layers keep
  their running statistics as their own buffers;
* the block owns no parameter of its own: ``P`` is a property computed from tensors that live
  elsewhere, so the state dict, the optimizer and DDP see each neighbour tensor once;
* the synthesis runs wherever the block reads ``P``, also inside activation checkpointing's
  recomputation, so ``with_cp`` gives the same gradients; ``deepcopy`` (EMA) and ``model.to()``
  keep the references to the neighbours consistent (they are plain attributes resolved by name).

The coefficients ``(a, b)`` are stored in the replaced block as ``repl_coefficients[key]``
(shape ``(2,)`` or ``(2, C_out)``) and the adapters as ``repl_adapters[...]``; this module only
points at them, so nothing is registered twice.
"""
import math
from typing import Optional, Sequence, Tuple

from torch import Tensor, nn

GRANULARITIES = ('tensor', 'channel', 'submodule')


class NeighbourSynthesis(nn.Module):
    """Parametrization computing ``a * adapt_prev(P_prev) + b * adapt_next(P_next)``.

    Args:
        prev_owner, next_owner: the neighbours' modules that own ``P_prev`` / ``P_next`` as
            attribute ``tensor_name`` (e.g. ``layer1[0].conv1`` and ``'weight'``).
        tensor_name: the attribute name of the tensor in its owner.
        shape: the shape of the synthesised tensor (the replaced block's own).
        coefficients: the replaced block's ``repl_coefficients``; ``coefficients[key]`` has shape
            ``(2,)`` or ``(2, C_out)`` (per output channel, broadcast over the other dims).
        adapters: ``(adapt_prev, adapt_next)``, each a module or ``None`` for equal shapes.
        detach_neighbours: if true, gradients reach the coefficients only, not the neighbours.
    """

    def __init__(self, prev_owner: nn.Module, next_owner: nn.Module, tensor_name: str,
                 shape: Sequence[int], coefficients: nn.ParameterDict, key: str,
                 adapters: Tuple[Optional[nn.Module], Optional[nn.Module]],
                 detach_neighbours: bool = False) -> None:
        super().__init__()
        # A tuple is a plain attribute: nn.Module does not register its contents.
        self._sources = (prev_owner, next_owner, coefficients, adapters)
        self.tensor_name = tensor_name
        self.shape = tuple(shape)
        self.key = key
        self.detach_neighbours = detach_neighbours

    @property
    def neighbours(self) -> Tuple[nn.Module, nn.Module]:
        """The modules owning ``P_prev`` and ``P_next``."""
        return self._sources[0], self._sources[1]

    def adapt(self, p_prev: Tensor, p_next: Tensor) -> Tuple[Tensor, Tensor]:
        """Bring neighbour tensors to the replaced tensor's shape."""
        adapters = self._sources[3]
        return tuple(t if adapter is None else adapter(t)
                     for t, adapter in zip((p_prev, p_next), adapters))

    def neighbour_tensors(self) -> Tuple[Tensor, Tensor]:
        """``P_prev`` and ``P_next`` adapted to the replaced tensor's shape."""
        tensors = [getattr(owner, self.tensor_name) for owner in self.neighbours]
        if self.detach_neighbours:
            tensors = [t.detach() for t in tensors]
        return self.adapt(*tensors)

    def coefficients(self) -> Tensor:
        """The ``(2,)`` or ``(2, C_out)`` coefficient tensor of this parameter."""
        return self._sources[2][self.key]

    def forward(self) -> Tensor:
        p_prev, p_next = self.neighbour_tensors()
        coefficients = self.coefficients()
        a, b = coefficients[0], coefficients[1]
        if a.dim() == 1:  # per output channel: broadcast over the remaining dims
            a = a.view(-1, *([1] * (p_prev.dim() - 1)))
            b = b.view(-1, *([1] * (p_prev.dim() - 1)))
        return a * p_prev + b * p_next

    def right_inverse(self, value: Tensor) -> tuple:
        """Owns no tensors: the replaced block's own values are discarded."""
        return ()

    def extra_repr(self) -> str:
        return (f'{self.tensor_name}, shape={self.shape}, key={self.key}, '
                f'detach_neighbours={self.detach_neighbours}')


def synthesised_numel(model: nn.Module) -> int:
    """Number of parameter values in ``model`` that are synthesised rather than owned."""
    return sum(math.prod(m.shape) for m in model.modules() if isinstance(m, NeighbourSynthesis))


def coefficient_key(tensor_path: str, granularity: str) -> str:
    """The ``repl_coefficients`` key of a tensor, e.g. ``'conv1.weight'`` -> ``'conv1_weight'``.

    ``'submodule'`` shares one pair among all tensors of a top-level child of the block
    (``'attn.qkv.weight'`` and ``'attn.proj.bias'`` -> ``'attn'``).
    """
    if granularity == 'submodule':
        return tensor_path.split('.')[0]
    return tensor_path.replace('.', '_')
