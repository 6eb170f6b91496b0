"""The memory ledger of one training step, in plain PyTorch (no OpenMMLab).

While a step runs inside ``StepLedger``, every tensor storage of the step's device is followed from
the moment it first appears (an operator's output, an operator's input that already existed, a
parameter, a buffer, an optimizer state tensor) until it is freed (a weak reference to the storage:
torch keeps one Python object per storage alive exactly as long as the storage). The live bytes are
summed after every operator; at the step's peak, the live storages are kept (a snapshot), and each
is counted once, in exactly one category, by what it turned out to be:

``parameters``, ``gradients`` (a parameter's ``.grad``), ``optimizer_state``,
``synthesised_weights`` (outputs of RepL's synthesis, ``BlockSynthesis.values``, and the neighbour
tensors that its adapters bring to another shape, which the synthesis saves),
``autocast_weight_copies`` (low-precision copies that autocast makes of parameters and synthesised
weights), ``gradient_buckets`` (DDP's reducer buckets, which gradients are copied into),
``activations`` (storages that autograd saved for the backward pass through
``torch.autograd.graph.saved_tensors_hooks``; a parameter or a synthesised weight that autograd
saves stays in its own category; so do the tensors that a checkpoint without reentry
recomputes and keeps in the backward pass), ``gradients_in_flight`` (made in the backward pass
and neither saved nor a parameter's ``.grad``: gradients flowing between operators or waiting in
autograd's input buffers for a node's other inputs, and the backward pass's temporaries),
``optimizer_temporaries`` (made by the optimizer step and not its state: e.g. a gradient plus
weight decay), and ``other``, named by where it came from: ``buffers``, ``inputs`` (existed
before the step: the batch, caches), ``forward`` (made in the forward pass, not saved by autograd
but still referenced, e.g. by a ``ctx`` attribute or the caller).

Each storage also gets the module it belongs to: a parameter's, gradient's or optimizer state's
owner, the module whose forward saved an activation or made a tensor (the innermost one running).
The same walk counts, per module and for forward and backward separately, FLOPs with
``torch.utils.flop_counter``'s formulas (those of ``FlopCounterMode``: a multiply-add is 2 FLOPs;
``FLOP_FORMULAS`` corrects its weight gradient of grouped convolutions) and the bytes read and
written by elementwise (``torch.Tag.pointwise``, ``_foreach_*``) and normalisation operators,
which FLOP counters leave out and which bound their time on a GPU.

What the ledger cannot see: memory an operator allocates and frees inside itself (workspaces,
reorders), and tensors that exist but are not touched by the step. The measured peak it is compared
with (``allocator_peak``) sees both; the difference is reported, not hidden.
"""
import math
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import conv_flop_count, flop_registry, shape_wrapper

from repl_core import ADAPTER_MODULES, block_syntheses, in_backward

#: the categories, in the order of every table (``other`` last)
CATEGORIES = ('parameters', 'gradients', 'optimizer_state', 'synthesised_weights',
              'autocast_weight_copies', 'gradient_buckets', 'activations', 'gradients_in_flight',
              'optimizer_temporaries', 'other')
#: where an ``other`` storage came from
OTHER_KINDS = ('buffers', 'inputs', 'forward')
PHASES = ('forward', 'backward', 'optimizer')

# a storage with several roles (a parameter that autograd saves) keeps the first of these
_ROLE_ORDER = {role: rank for rank, role in enumerate(
    ('parameters', 'buffers', 'gradients', 'gradient_buckets', 'optimizer_state',
     'autocast_weight_copies', 'synthesised_weights', 'activations'))}
_WEIGHT_ROLES = ('parameters', 'synthesised_weights')
_NORM_OPS = ('batch_norm', 'layer_norm', 'group_norm', 'instance_norm')


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation,
                        transposed, _output_padding, _groups, output_mask, out_shape=None,
                        **kwargs) -> int:
    """``aten.convolution_backward``: the input gradient as torch counts it; the weight
    gradient as 2 x batch x output positions x weight elements. torch 2.14's formula computes
    the latter as a convolution over transposed shapes that drops ``groups``, which counts a
    depthwise convolution's weight gradient ``channels`` times over (the light surrogate's)."""
    flops = 0
    if output_mask[0]:
        flops += conv_flop_count(grad_out_shape, w_shape, out_shape[0], not transposed)
    if output_mask[1]:
        positions = math.prod((x_shape if transposed else grad_out_shape)[2:])
        flops += 2 * x_shape[0] * positions * math.prod(w_shape)
    return flops


#: FlopCounterMode's formulas, the grouped convolution's weight gradient corrected
FLOP_FORMULAS = {**flop_registry,
                 torch.ops.aten.convolution_backward: shape_wrapper(_conv_backward_flop)}


class _Storage:
    """One live storage: its size, what it is (``role``), where from (``born``), whose (``path``).

    ``role`` is ``None`` until the storage is found to be a parameter, a gradient, ... ; the
    category is decided by the role the storage has at the end of the step (a gradient in flight
    that becomes a ``.grad`` is a gradient)."""

    __slots__ = ('nbytes', 'role', 'born', 'path')

    def __init__(self, nbytes: int, born: str, path: str) -> None:
        self.nbytes = nbytes
        self.role: Optional[str] = None
        self.born = born
        self.path = path

    @property
    def category(self) -> Tuple[str, str]:
        """``(category, other kind)``; the kind is ``''`` outside ``other``."""
        if self.role is None:
            if self.born == 'backward':
                return 'gradients_in_flight', ''
            if self.born == 'recompute':  # kept by a checkpoint for its backward
                return 'activations', ''
            if self.born == 'optimizer':
                return 'optimizer_temporaries', ''
            return 'other', self.born
        if self.role == 'buffers':
            return 'other', 'buffers'
        return self.role, ''


@dataclass
class Moment:
    """The live storages at one moment of the step, summed by category and module.

    ``bytes`` maps ``(category, other kind, module path)`` to bytes (the kind is ``''`` outside
    ``other``; the path is ``''`` for storages of no module). ``phase`` is where the step was
    (``forward``, ``backward`` or ``optimizer``) and ``op_index`` the number of operators run by
    then.
    """

    total: int
    phase: str
    op_index: int
    bytes: Dict[Tuple[str, str, str], int]

    def by_category(self) -> Dict[str, int]:
        """Bytes per category, every category present (0 where none)."""
        totals = dict.fromkeys(CATEGORIES, 0)
        for (category, _, _), value in self.bytes.items():
            totals[category] += value
        return totals

    def other_kinds(self) -> Dict[str, int]:
        """Bytes of ``other`` by where they came from."""
        totals = dict.fromkeys(OTHER_KINDS, 0)
        for (category, kind, _), value in self.bytes.items():
            if category == 'other':
                totals[kind] += value
        return totals

    def to_dict(self) -> Dict[str, Any]:
        return dict(total=self.total, phase=self.phase, op_index=self.op_index,
                    by_category=self.by_category(), other_kinds=self.other_kinds(),
                    bytes=[[c, k, p, v] for (c, k, p), v in sorted(self.bytes.items())])


@dataclass
class LedgerResult:
    """What ``StepLedger`` found for one step.

    ``peak``: the live storages at the step's peak (the largest sum of live bytes after any
    operator); ``optimizer_step``: when the (first) optimizer step began, every gradient made
    (``None`` if no optimizer stepped). ``saved_in_forward`` maps ``(category, module path)`` to
    the bytes of every storage autograd saved during the forward pass, each counted once,
    whenever it was freed (what checkpointing and freezing cut). ``flops`` and
    ``elementwise_bytes`` map
    ``(module path, phase)`` to FLOPs and to ``[bytes read, bytes written]``. ``ops`` counts the
    operators of each phase.
    """

    device: str
    peak: Moment
    optimizer_step: Optional[Moment]
    saved_in_forward: Dict[Tuple[str, str], int] = field(default_factory=dict)
    flops: Dict[Tuple[str, str], int] = field(default_factory=dict)
    elementwise_bytes: Dict[Tuple[str, str], List[int]] = field(default_factory=dict)
    ops: Dict[str, int] = field(default_factory=dict)

    def saved_by_category(self) -> Dict[str, int]:
        """Bytes saved for backward in the forward pass, per category (every category)."""
        totals = dict.fromkeys(CATEGORIES, 0)
        for (category, _), value in self.saved_in_forward.items():
            totals[category] += value
        return totals

    def total_flops(self, phase: Optional[str] = None) -> int:
        return sum(v for (_, p), v in self.flops.items() if phase is None or p == phase)

    def total_elementwise_bytes(self, phase: Optional[str] = None) -> int:
        return sum(sum(v) for (_, p), v in self.elementwise_bytes.items()
                   if phase is None or p == phase)

    def to_dict(self) -> Dict[str, Any]:
        return dict(device=self.device, peak=self.peak.to_dict(),
                    optimizer_step=self.optimizer_step.to_dict() if self.optimizer_step else None,
                    saved_in_forward=[[c, p, v] for (c, p), v in
                                      sorted(self.saved_in_forward.items())],
                    flops=[[p, ph, v] for (p, ph), v in sorted(self.flops.items())],
                    elementwise_bytes=[[p, ph, *v] for (p, ph), v in
                                       sorted(self.elementwise_bytes.items())],
                    ops=self.ops)


class _ModulePaths:
    """Which modules of the model are running, in forward and in backward.

    Forward: a stack kept by global module hooks. Backward: as torch's ``ModuleTracker`` does it,
    a module's backward begins when the gradients of all its outputs are ready and ends when those
    of its inputs are (``register_multi_grad_hook``). ``current()`` is the innermost module's
    path (``''`` outside the model's modules).
    """

    def __init__(self, model: nn.Module) -> None:
        self.paths = {module: path for path, module in model.named_modules()}
        self.forward: List[str] = []
        self.backward: List[str] = []
        self._handles: list = []
        self._grad_handles: list = []

    def __enter__(self) -> '_ModulePaths':
        from torch.nn.modules.module import (register_module_forward_hook,
                                             register_module_forward_pre_hook)
        self._handles = [register_module_forward_pre_hook(self._enter),
                         register_module_forward_hook(self._leave, always_call=True)]
        return self

    def __exit__(self, *args) -> None:
        for handle in self._handles + self._grad_handles:
            handle.remove()
        self._handles, self._grad_handles = [], []

    def current(self) -> str:
        if self.forward:  # in the forward pass, or a checkpoint's recomputation in backward
            return self.forward[-1]
        if in_backward() and self.backward:
            return self.backward[-1]
        return ''

    @staticmethod
    def _needing_grad(values) -> List[Tensor]:
        return [t for t in tree_leaves(values) if isinstance(t, Tensor) and t.requires_grad]

    def _enter(self, module: nn.Module, args) -> None:
        path = self.paths.get(module)
        if path is None:
            return
        self.forward.append(path)
        inputs = self._needing_grad(args)
        if inputs and torch.is_grad_enabled():
            self._grad_handles.append(torch.autograd.graph.register_multi_grad_hook(
                inputs, lambda grads, p=path: self._backward_leave(p)))

    def _leave(self, module: nn.Module, args, output) -> None:
        path = self.paths.get(module)
        if path is None:
            return
        if self.forward and self.forward[-1] == path:
            self.forward.pop()
        outputs = self._needing_grad(output)
        if outputs and torch.is_grad_enabled():
            self._grad_handles.append(torch.autograd.graph.register_multi_grad_hook(
                outputs, lambda grads, p=path: self.backward.append(p)))

    def _backward_leave(self, path: str) -> None:
        if path in self.backward:
            del self.backward[len(self.backward) - 1 - self.backward[::-1].index(path)]


def _unique_bytes(tensor: Tensor) -> int:
    """Bytes of the elements a tensor addresses (a broadcast dimension, stride 0, counts once)."""
    count = 1
    for size, stride in zip(tensor.shape, tensor.stride()):
        if stride != 0:
            count *= size
    return count * tensor.element_size()


def _is_memory_bound(func) -> bool:
    """Elementwise (torch's ``pointwise`` tag, ``_foreach_*``) or normalisation operators."""
    name = func.__name__
    return (torch.Tag.pointwise in func.tags or name.startswith('_foreach_')
            or any(norm in name for norm in _NORM_OPS))


class _LedgerMode(TorchDispatchMode):
    """Sees every operator of the step: registers storages, counts FLOPs and bytes."""

    def __init__(self, ledger: 'StepLedger') -> None:
        super().__init__()
        self.ledger = ledger
        self._memory_bound: Dict[Any, bool] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        ledger = self.ledger
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor)]
        for tensor in inputs:
            ledger.record(tensor)
        out = func(*args, **kwargs)
        outputs = [t for t in tree_leaves(out) if isinstance(t, Tensor)]
        phase = ledger.phase()
        path = ledger.modules.current()
        born = 'recompute' if phase == 'backward' and ledger.recomputing() else phase
        for tensor in outputs:
            ledger.record(tensor, born=born, path=path)
        ledger.after_op(func, args, kwargs, outputs, phase)
        packet = func._overloadpacket
        if packet in FLOP_FORMULAS:
            ledger.flops[(path, phase)] += FLOP_FORMULAS[packet](*args, **kwargs, out_val=out)
        memory_bound = self._memory_bound.get(func)
        if memory_bound is None:
            memory_bound = self._memory_bound[func] = _is_memory_bound(func)
        if memory_bound:
            moved = ledger.elementwise_bytes[(path, phase)]
            moved[0] += sum(_unique_bytes(t) for t in inputs)
            moved[1] += sum(_unique_bytes(t) for t in outputs)
        ledger.ops[phase] += 1
        ledger.check_peak()
        return out


class StepLedger:
    """Follow every tensor storage of one training step; see the module docstring.

    Use as a context manager around one step (``with StepLedger(model, [optimizer]) as ledger:
    step()``, then ``ledger.result()``), or ``start()`` / ``stop()`` from two hooks. The model's
    parameters, buffers, gradients and the optimizers' state are registered at the start; a
    steady-state step starts with the optimizer state already there.

    Args:
        model: the model trained by the step (unwrapped: DDP's ``.module``).
        optimizers: torch optimizers stepped by the step (their state is ``optimizer_state``; a
            ``ZeroRedundancyOptimizer``'s local ``optim`` too).
        device: the device whose memory is counted; default the model's.
    """

    def __init__(self, model: nn.Module, optimizers: Sequence[torch.optim.Optimizer] = (),
                 device: Optional[torch.device] = None) -> None:
        self.model = model
        self.optimizers = list(optimizers)
        first = next(model.parameters(), None)
        self.device = torch.device(device if device is not None else
                                   first.device if first is not None else 'cpu')
        self.modules = _ModulePaths(model)
        self.live: Dict[int, _Storage] = {}
        self._refs: Dict[int, weakref.ref] = {}
        self.live_bytes = 0
        self.peak_bytes = 0
        self._pending_peak = False
        self._peak: Optional[tuple] = None
        self._optimizer_step: Optional[tuple] = None
        self.in_optimizer = False
        self.flops: Dict[Tuple[str, str], int] = defaultdict(int)
        self.elementwise_bytes: Dict[Tuple[str, str], List[int]] = defaultdict(lambda: [0, 0])
        self.ops: Dict[str, int] = dict.fromkeys(PHASES, 0)
        self._handles: list = []
        self._mode: Optional[_LedgerMode] = None
        self._saved_hooks = None
        self._param_paths: Dict[int, str] = {}
        self._saved_in_forward: Dict[int, _Storage] = {}

    # ------------------------------------------------------------------------------ storages
    def record(self, tensor: Tensor, born: str = 'inputs', path: str = '') -> Optional[_Storage]:
        """The entry of ``tensor``'s storage, registered (as born ``born`` in module ``path``)
        if new; ``None`` for tensors of another device or without a storage."""
        if tensor.device.type != self.device.type:
            return None
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse, nested, functional wrappers
            return None
        key = id(storage)
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = _Storage(storage.nbytes(), born, path)
            self._refs[key] = weakref.ref(storage, lambda _, k=key: self._freed(k))
            self.live_bytes += entry.nbytes
        return entry

    def mark(self, tensor: Tensor, role: str, path: str) -> None:
        """Give ``tensor``'s storage ``role`` (owned by module ``path``) unless it has a role that
        comes first (a parameter that autograd saves stays a parameter)."""
        entry = self.record(tensor, path=path)
        if entry is not None and (entry.role is None
                                  or _ROLE_ORDER[role] < _ROLE_ORDER[entry.role]):
            entry.role, entry.path = role, path

    def _freed(self, key: int) -> None:
        if self._pending_peak:
            self._take_peak()
        entry = self.live.pop(key, None)
        self._refs.pop(key, None)
        if entry is not None:
            self.live_bytes -= entry.nbytes

    def check_peak(self) -> None:
        """After an operator: a new peak is kept when the first storage is freed after it."""
        if self.live_bytes > self.peak_bytes:
            self.peak_bytes = self.live_bytes
            self._pending_peak = True

    def _take_peak(self) -> None:
        self._pending_peak = False
        self._peak = self._snapshot()

    def _snapshot(self) -> tuple:
        return (self.live_bytes, self.phase(), sum(self.ops.values()),
                list(self.live.values()))

    def recomputing(self) -> bool:
        """Whether a checkpoint without reentry is recomputing a forward (in the backward pass):
        its own saved-tensor hooks, not the ledger's, are then the innermost."""
        top = torch._C._autograd._top_saved_tensors_default_hooks(False)
        return top is not None and top[0] != self._saved

    def phase(self) -> str:
        if self.in_optimizer:
            return 'optimizer'
        return 'backward' if in_backward() else 'forward'

    # ---------------------------------------------------------------------------- what is what
    def _register_state(self) -> None:
        for path, module in self.model.named_modules():
            for name, param in module.named_parameters(recurse=False):
                self._param_paths.setdefault(id(param), path)
        for name, param in self.model.named_parameters():
            path = self._param_paths[id(param)]
            self.mark(param, 'parameters', path)
            if param.grad is not None:
                self.mark(param.grad, 'gradients', path)
        for path, module in self.model.named_modules():
            for buffer in module.buffers(recurse=False):
                self.mark(buffer, 'buffers', path)
        self._register_optimizer_state()

    def _register_optimizer_state(self) -> None:
        for optimizer in self._all_optimizers():
            for param, state in optimizer.state.items():
                path = self._param_paths.get(id(param), '')
                for value in tree_leaves(state):
                    if isinstance(value, Tensor):
                        self.mark(value, 'optimizer_state', path)

    def _all_optimizers(self) -> Iterable[torch.optim.Optimizer]:
        for optimizer in self.optimizers:
            yield optimizer
            inner = getattr(optimizer, 'optim', None)  # ZeroRedundancyOptimizer's local one
            if isinstance(inner, torch.optim.Optimizer):
                yield inner

    def _gradient_ready(self, param: Tensor) -> None:
        if param.grad is not None:
            self.mark(param.grad, 'gradients', self._param_paths.get(id(param), ''))

    def _synthesised(self, groups: list, holder_path: str):
        """A forward pre-hook for a replaced block (after its own, which synthesises): its
        values are synthesised weights."""
        def mark_values(module: nn.Module, args) -> None:
            for group in groups:
                for value in group.values or ():
                    self.mark(value, 'synthesised_weights', holder_path)

        return mark_values

    def _saved(self, tensor: Tensor) -> Tensor:
        path = self.modules.current()
        entry = self.record(tensor, path=path)
        if entry is not None:
            if entry.role is None and f'.{ADAPTER_MODULES}.' in entry.path:
                # a neighbour tensor brought to the replaced tensor's shape, saved by synthesis
                entry.role = 'synthesised_weights'
            elif entry.role is None:
                entry.role, entry.path = 'activations', path
            if not self.in_optimizer and not in_backward():
                self._saved_in_forward[id(entry)] = entry
        return tensor

    def after_op(self, func, args, kwargs, outputs: List[Tensor], phase: str) -> None:
        """Roles that an operator gives: autocast's weight copies, DDP's gradient buckets."""
        packet = func._overloadpacket
        if packet is torch.ops.aten._to_copy and outputs and isinstance(args[0], Tensor):
            source = self.record(args[0])
            if (source is not None and source.role in _WEIGHT_ROLES
                    and outputs[0].dtype != args[0].dtype):
                self.mark(outputs[0], 'autocast_weight_copies', source.path)
        elif phase == 'backward' and (packet is torch.ops.aten.copy_
                                      or (packet is torch.ops.aten.mul and 'out' in kwargs)):
            # DDP's reducer copies each ready gradient into its bucket (copy_, or mul out=)
            destination, source = ((args[0], args[1]) if packet is torch.ops.aten.copy_
                                   else (kwargs['out'], args[0]))
            source_entry = self.record(source)
            if source_entry is not None and source_entry.role == 'gradients':
                entry = self.record(destination)
                if entry is not None and entry.role is None:
                    entry.role, entry.path = 'gradient_buckets', ''

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> 'StepLedger':
        self._register_state()
        self.modules.__enter__()
        for param in self.model.parameters():
            if param.requires_grad:
                self._handles.append(param.register_post_accumulate_grad_hook(
                    self._gradient_ready))
        groups_by_holder: Dict[nn.Module, list] = defaultdict(list)
        for group in block_syntheses(self.model):
            groups_by_holder[group.holder].append(group)
        for holder, groups in groups_by_holder.items():
            self._handles.append(holder.register_forward_pre_hook(
                self._synthesised(groups, self.modules.paths.get(holder, ''))))
        from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                           register_optimizer_step_pre_hook)
        self._handles += [register_optimizer_step_pre_hook(self._optimizer_begins),
                          register_optimizer_step_post_hook(self._optimizer_ends)]
        self._saved_hooks = torch.autograd.graph.saved_tensors_hooks(self._saved, lambda t: t)
        self._saved_hooks.__enter__()
        self._mode = _LedgerMode(self)
        self._mode.__enter__()
        self.check_peak()
        return self

    def _optimizer_begins(self, optimizer, args, kwargs) -> None:
        if self._optimizer_step is None:
            self._optimizer_step = self._snapshot()
        self.in_optimizer = True

    def _optimizer_ends(self, optimizer, args, kwargs) -> None:
        self.in_optimizer = False
        self._register_optimizer_state()

    def stop(self) -> 'StepLedger':
        self._mode.__exit__(None, None, None)
        self._saved_hooks.__exit__(None, None, None)
        self.modules.__exit__()
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._pending_peak:
            self._take_peak()
        return self

    def __enter__(self) -> 'StepLedger':
        return self.start()

    def __exit__(self, *args) -> None:
        self.stop()

    def close(self) -> None:
        """Forget every storage (the weak references' callbacks stay harmless)."""
        self.live.clear()
        self._refs.clear()

    # --------------------------------------------------------------------------------- result
    @staticmethod
    def _moment(snapshot: tuple) -> Moment:
        total, phase, op_index, entries = snapshot
        counted: Dict[Tuple[str, str, str], int] = defaultdict(int)
        for entry in entries:
            category, kind = entry.category
            counted[(category, kind, entry.path)] += entry.nbytes
        return Moment(total=total, phase=phase, op_index=op_index, bytes=dict(counted))

    def result(self) -> LedgerResult:
        if self._peak is None:
            self._peak = self._snapshot()
        saved: Dict[Tuple[str, str], int] = defaultdict(int)
        for entry in self._saved_in_forward.values():
            saved[(entry.category[0], entry.path)] += entry.nbytes
        return LedgerResult(
            device=str(self.device), peak=self._moment(self._peak),
            optimizer_step=self._moment(self._optimizer_step) if self._optimizer_step else None,
            saved_in_forward=dict(saved), flops=dict(self.flops),
            elementwise_bytes={k: list(v) for k, v in self.elementwise_bytes.items()},
            ops=dict(self.ops))
