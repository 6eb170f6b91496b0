"""The coefficients of one replaced block, and the settings they were trained with.

``ReplCoefficients`` is a replaced block's ``repl_coefficients`` child: one parameter per key,
shape ``(2,)`` or ``(2, C_out)`` (``[0]`` is ``a``, ``[1]`` is ``b``). Its extra state (state-dict
key ``<block>.repl_coefficients._extra_state``, a small int64 tensor, so that every tool that
moves, broadcasts or saves state dicts handles it) records the kind, the granularity and the
adapter the coefficients belong to: the same keys can mean other functions under other settings
(``slice_pad`` and ``average`` adapters have no tensors at all), so a checkpoint is compared by
what it says it is, not only by its keys and shapes.

Every coefficient tensor is also recorded (weakly) with its container, which
``coefficient_steps`` reads: ``is_coefficient`` (no weight decay) and ``coefficient_lr_mult``.
"""
import weakref
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .errors import CheckpointMismatchError
from .settings import ADAPTERS, GRANULARITIES, KINDS

#: the child of a replaced block that holds its coefficients, and the one that holds its adapters
COEFFICIENTS = 'repl_coefficients'
ADAPTER_MODULES = 'repl_adapters'

_FORMAT = 1
# id -> weak references to the tensor and its container (a WeakSet would compare tensors with
# ``==``, element by element)
_COEFFICIENT_TENSORS: Dict[int, Tuple['weakref.ref[Tensor]', 'weakref.ref']] = {}


def _record(tensor: Tensor, container: 'ReplCoefficients') -> None:
    key = id(tensor)
    _COEFFICIENT_TENSORS[key] = (
        weakref.ref(tensor, lambda _: _COEFFICIENT_TENSORS.pop(key, None)),
        weakref.ref(container))


def is_coefficient(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a RepL coefficient parameter."""
    refs = _COEFFICIENT_TENSORS.get(id(tensor))
    return refs is not None and refs[0]() is tensor


def coefficient_lr_mult(tensor: Tensor) -> float:
    """The learning-rate multiplier of a coefficient (``repl.coefficient_lr_mult``)."""
    refs = _COEFFICIENT_TENSORS.get(id(tensor))
    container = refs[1]() if refs is not None and refs[0]() is tensor else None
    return 1.0 if container is None else container.lr_mult


@dataclass(frozen=True)
class CoefficientSpec:
    """What a replaced block's coefficients belong to.

    Attributes:
        kind: ``'fused'`` or ``'light'``.
        granularity: one of ``GRANULARITIES``.
        adapter: the ``repl.adapter`` the block uses, or ``None`` where none of its tensors
            needed one (then the adapter setting does not change the block's function).
    """

    kind: str
    granularity: str
    adapter: Optional[str]

    def encode(self) -> Tensor:
        adapter = -1 if self.adapter is None else ADAPTERS.index(self.adapter)
        return torch.tensor([_FORMAT, KINDS.index(self.kind),
                             GRANULARITIES.index(self.granularity), adapter])

    @classmethod
    def decode(cls, state: Tensor) -> 'CoefficientSpec':
        values = [int(v) for v in torch.as_tensor(state).flatten().tolist()]
        if len(values) != 4 or values[0] != _FORMAT:
            raise CheckpointMismatchError(
                f'repl_coefficients._extra_state {values} is not a RepL coefficient record of '
                f'format {_FORMAT}; the checkpoint was written by another version of repl-mm.')
        _, kind, granularity, adapter = values
        return cls(KINDS[kind], GRANULARITIES[granularity],
                   None if adapter < 0 else ADAPTERS[adapter])

    def differences(self, other: 'CoefficientSpec') -> str:
        """``"kind='light' (this model: 'fused')"``-style list of what differs, or ``''``."""
        return ', '.join(f'{name}={getattr(other, name)!r} (this model: {getattr(self, name)!r})'
                         for name in ('kind', 'granularity', 'adapter')
                         if getattr(self, name) != getattr(other, name))


class ReplCoefficients(nn.ParameterDict):
    """``{key: (2,) or (2, C_out) parameter}`` of one replaced block, with its ``spec``."""

    def __init__(self, spec: CoefficientSpec, lr_mult: float) -> None:
        super().__init__()
        self.spec = spec
        #: paths, in the block, of the tensors that end its residual branch (``warm_start``)
        self.residual_ends: Tuple[str, ...] = ()
        #: scales every optimizer update of these coefficients (``coefficient_steps``)
        self.lr_mult = float(lr_mult)

    def register_parameter(self, name: str, param: Optional[nn.Parameter]) -> None:
        super().register_parameter(name, param)
        if param is not None:
            _record(param, self)

    def __setstate__(self, state: dict) -> None:
        # deepcopy (e.g. an EMA model) and unpickling rebuild the parameters without
        # register_parameter
        super().__setstate__(state)
        for param in self._parameters.values():
            if param is not None:
                _record(param, self)

    def get_extra_state(self) -> Tensor:
        return self.spec.encode()

    def set_extra_state(self, state: Tensor) -> None:
        theirs = CoefficientSpec.decode(state)
        if theirs != self.spec:
            raise CheckpointMismatchError(
                f'The checkpoint\'s RepL coefficients were trained with '
                f'{self.spec.differences(theirs)}. Set repl to the checkpoint\'s settings.',
                checkpoint_spec=theirs, model_spec=self.spec)


def is_replaced(module: nn.Module) -> bool:
    """Whether ``module`` is a replaced block (or light surrogate)."""
    return isinstance(getattr(module, COEFFICIENTS, None), ReplCoefficients)


def replaced_blocks(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(path, block)`` of every replaced block in ``model``."""
    return [(path, m) for path, m in model.named_modules() if is_replaced(m)]
