"""Synthesis of one parameter tensor of a replaced block from its neighbours' tensors.

``P = a * adapt_prev(P_prev) + b * adapt_next(P_next)``, evaluated on every forward of the block
(and wherever else the tensor is read). It is installed with ``torch.nn.utils.parametrize``
(``unsafe=True``, and ``right_inverse`` returns no tensors), which gives exactly what a replaced
block needs:

* the block keeps its module structure, stride, shortcut and norm layers, and its norm layers keep
  their running statistics as their own buffers;
* the block owns no parameter of its own: ``P`` is a property computed from tensors that live
  elsewhere, so the state dict, the optimizer and DDP see each neighbour tensor once;
* ``deepcopy`` (EMA) and ``model.to()`` keep the references to the neighbours consistent (they
  are plain attributes resolved by name).

A batch norm whose affine parameters are synthesised says ``affine=False`` (it owns no affine
parameters; its forward uses ``weight`` and ``bias`` all the same), so that converters rebuilding
norm layers (SyncBN <-> BN) carry the synthesis over (``norm_rebuild``).

The coefficients ``(a, b)`` are stored in the replaced block as ``repl_coefficients[key]``
(shape ``(2,)`` or ``(2, C_out)``) and the adapters as ``repl_adapters[...]``; this module only
points at them, so nothing is registered twice.

Inside its block's forward (and in a checkpointed block's recomputation) a parametrization
returns the value made together with the other tensors of its block or backbone
(``synthesis_batching``); read anywhere else (folding, warm start, user code, after a ``.data``
write) a tensor is synthesised on its own, with the same result, bit for bit (the same kernels,
``synthesis_kernels``). Imports go one way: ``synthesis_kernels`` <- ``synthesis`` <-
``synthesis_batching`` and ``norm_rebuild``; a parametrization reaches its ``BlockSynthesis``
through the attribute ``group``.
"""
import math
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

from .backward_pass import outside_recomputation
from .synthesis_kernels import synthesise_tensor

if TYPE_CHECKING:
    from .synthesis_batching import BlockSynthesis


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
        owner_path: path, inside the replaced block, of the module whose tensor this is.
        target_name: the tensor's attribute name in that module (default: ``tensor_name``).
    """

    def __init__(self, prev_owner: nn.Module, next_owner: nn.Module, tensor_name: str,
                 shape: Sequence[int], coefficients: nn.ParameterDict, key: str,
                 adapters: Tuple[Optional[nn.Module], Optional[nn.Module]],
                 detach_neighbours: bool = False, owner_path: str = '',
                 target_name: Optional[str] = None) -> None:
        super().__init__()
        # A tuple is a plain attribute: nn.Module does not register its contents.
        self._sources = (prev_owner, next_owner, coefficients, adapters)
        self.tensor_name = tensor_name
        self.owner_path = owner_path
        self.target_name = target_name or tensor_name
        self.shape = tuple(shape)
        self.key = key
        self.detach_neighbours = detach_neighbours
        self.group: Optional['BlockSynthesis'] = None  # set when the block's group is built
        self.index = 0

    @property
    def neighbours(self) -> Tuple[nn.Module, nn.Module]:
        """The modules owning ``P_prev`` and ``P_next``."""
        return self._sources[0], self._sources[1]

    @property
    def adapters(self) -> Tuple[Optional[nn.Module], Optional[nn.Module]]:
        """``(adapt_prev, adapt_next)``; ``None`` where the shapes are equal."""
        return self._sources[3]

    def adapt(self, p_prev: Tensor, p_next: Tensor) -> Tuple[Tensor, Tensor]:
        """Bring neighbour tensors to the replaced tensor's shape."""
        return tuple(t if adapter is None else adapter(t)
                     for t, adapter in zip((p_prev, p_next), self.adapters))

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
        value = None if self.group is None else self.group.value(self.index)
        if value is not None:  # made by the block's forward, still current
            return value
        with outside_recomputation():
            p_prev, p_next = self.neighbour_tensors()
            return synthesise_tensor(self.coefficients(), p_prev, p_next)

    def right_inverse(self, value: Tensor) -> tuple:
        """Owns no tensors: the replaced block's own values are discarded."""
        return ()

    def extra_repr(self) -> str:
        return (f'{self.tensor_name}, shape={self.shape}, key={self.key}, '
                f'detach_neighbours={self.detach_neighbours}')


def attach(owner: nn.Module, synthesis: NeighbourSynthesis) -> None:
    """Make ``owner.<synthesis.target_name>`` the output of ``synthesis``.

    ``owner`` holds a tensor of that name: the replaced block's own parameter, or, on a norm that
    a converter has rebuilt, the ``None`` slot of a norm without affine parameters, next to the
    ``parametrizations`` child carried over from the norm it replaced.
    """
    name = synthesis.target_name
    stale = owner._modules.get('parametrizations')
    if stale is not None and not any(isinstance(getattr(type(owner), n, None), property)
                                     for n in stale):
        del owner._modules['parametrizations']  # a rebuilt norm's class is not parametrized
    if name in owner._parameters and owner._parameters[name] is None:
        # parametrize needs a tensor in the slot (and drops it: right_inverse keeps nothing)
        owner._parameters[name] = nn.Parameter(torch.empty(0), requires_grad=False)
    parametrize.register_parametrization(owner, name, synthesis, unsafe=True)
    if isinstance(owner, _BatchNorm):
        owner.affine = False  # owns no affine parameters; see the module docstring


def is_attached(owner: nn.Module, synthesis: NeighbourSynthesis) -> bool:
    """Whether ``owner.<target_name>`` is (still) computed by ``synthesis``."""
    name = synthesis.target_name
    return (isinstance(getattr(type(owner), name, None), property)
            and parametrize.is_parametrized(owner, name)
            and owner.parametrizations[name][0] is synthesis)


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
