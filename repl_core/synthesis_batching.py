"""Synthesis of all tensors of a replaced block, or of a backbone, at once, per forward.

A backbone synthesises the tensors of all its replaced blocks at once, when its forward starts
(``BackboneSynthesis``, a forward pre-hook on the backbone: one autograd node,
``synthesis_kernels.SynthesiseTensors``; on the CPU ``torch._foreach_*`` products, on CUDA one
flat buffer, ``flat_synthesis``), which saves the per-tensor and per-block kernel launches that
dominate a small-batch GPU step (docs/benchmarks.md counts them). A replaced block called on its
own (outside its backbone's forward: folding checks, warm-start fits) synthesises its own tensors
the same way (``BlockSynthesis``, a forward pre-hook on the block). The parametrizations
(``synthesis.NeighbourSynthesis``) return those values inside the block's forward, and, during a
backward pass, while every tensor they were made from is unchanged (a checkpointed block's
recomputation); read anywhere else (folding, warm start, user code, after a ``.data`` write) a
tensor is synthesised on its own, with the same result, bit for bit (the same kernels). Under
``torch.compile`` the block is traced tensor by tensor: the compiler fuses those kernels itself.
"""
import weakref
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .backward_pass import in_backward, outside_recomputation
from .synthesis import NeighbourSynthesis, attach, is_attached
from .synthesis_kernels import SynthesiseTensors


class BlockSynthesis:
    """Synthesises all tensors of one replaced block (or light surrogate) at once, per forward.

    Registered on the block as a forward pre-hook, which evaluates every ``NeighbourSynthesis``
    of the block in one ``SynthesiseTensors`` call, and a forward hook. Inside the block's
    forward the parametrizations return those values. A forward with gradients keeps them until
    their backward has run, for a checkpointed block's recomputation in the backward pass (which
    must save the same tensors as the forward did), and serves them there only while every
    tensor they were made from is unchanged (same storage, same version counter) and the grad
    mode is the same. Outside the block's forward and outside a backward pass the tensors are
    synthesised afresh: a ``.data`` write (mmengine's EMA swap, some fused optimizers) changes a
    tensor without a version change. ``deepcopy`` and pickling drop the values.
    """

    def __init__(self, holder: nn.Module, syntheses: List[NeighbourSynthesis]) -> None:
        self.holder = holder
        self.syntheses = syntheses
        self.values: Optional[Tuple[Tensor, ...]] = None
        self.inside_forward = False
        self.generation = 0  # which forward made ``values``; their backward drops only those
        self._stamp: tuple = ()
        #: ``values`` were made by the backbone's forward that is running now (``prefetch``)
        self.prefetched = False
        self.batch: Optional['BackboneSynthesis'] = None
        for index, synthesis in enumerate(syntheses):
            synthesis.group, synthesis.index = self, index
        # only batch norms are rebuilt by converters (SyncBN <-> BN)
        self._norm_syntheses = [s for s in syntheses
                                if isinstance(holder.get_submodule(s.owner_path), _BatchNorm)]
        self.handles = (holder.register_forward_pre_hook(self.synthesise),
                        holder.register_forward_hook(self.leave, always_call=True))

    def reattach(self) -> None:
        """Attach the synthesis to norms that a converter has rebuilt since it was installed."""
        for synthesis in self._norm_syntheses:
            owner = self.holder.get_submodule(synthesis.owner_path)
            if not is_attached(owner, synthesis):
                attach(owner, synthesis)

    def synthesise(self, module: nn.Module, args: tuple) -> None:
        if torch.compiler.is_compiling():
            return  # traced tensor by tensor: the compiler fuses those kernels itself
        self.reattach()
        # made by the backbone's forward that is running now, or by the forward whose backward
        # is running now (a checkpointed block's recomputation): the same values, if current
        reusable = self.values is not None and (self.prefetched or in_backward())
        self.prefetched = False
        if not (reusable and self.stamp() == self._stamp):
            with outside_recomputation():
                synthesise_together([self])
        self.inside_forward = True

    def leave(self, module: nn.Module, args: tuple, output) -> None:
        self.inside_forward = False
        self.drop_values_without_graph()

    def drop_values_without_graph(self) -> None:
        """Drop values made with no graph (no_grad, frozen): no backward will recompute them."""
        if self.values is not None and not self.values[0].requires_grad:
            self.values = None

    def backward_done(self, generation: int) -> None:
        """The values of forward ``generation`` have had their backward: drop them."""
        if generation == self.generation:
            self.values = None

    def value(self, index: int) -> Optional[Tensor]:
        """The block's synthesised tensor ``index`` where it may be served, else ``None``."""
        if self.values is None or torch.compiler.is_compiling():
            return None
        if self.inside_forward:
            return self.values[index]
        if self.stamp() != self._stamp:
            self.values = None  # stale: free it
            return None
        return self.values[index] if in_backward() else None

    def stamp(self) -> tuple:
        """Storage and version of every tensor the values depend on, and the grad mode."""
        sources = []
        for synthesis in self.syntheses:
            sources += [getattr(owner, synthesis.tensor_name) for owner in synthesis.neighbours]
            sources.append(synthesis.coefficients())
            sources += [p for adapter in synthesis.adapters if adapter is not None
                        for p in adapter.parameters()]
        return (torch.is_grad_enabled(), *((t.data_ptr(), t._version) for t in sources))

    def remove(self) -> None:
        """Unhook from the block; its tensors are then synthesised one by one (e.g. folding)."""
        for handle in self.handles:
            handle.remove()
        for synthesis in self.syntheses:
            synthesis.group = None
        self.values = None
        if self.batch is not None:
            self.batch.discard(self)
            self.batch = None

    def __getstate__(self) -> dict:
        # the values are graph outputs (not deep-copyable) and belong to this model's tensors
        return dict(self.__dict__, values=None, inside_forward=False, _stamp=(),
                    prefetched=False)


def _distributed() -> bool:
    """Whether this process is one of several of a ``torch.distributed`` run."""
    return (torch.distributed.is_available() and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1)


def synthesise_together(groups: Sequence[BlockSynthesis]) -> None:
    """Synthesise every tensor of ``groups`` in one ``SynthesiseTensors`` node; each group gets
    its values, a new generation and the stamp of its sources."""
    coefficients, prevs, nexts, owners = [], [], [], []
    for group in groups:
        for synthesis in group.syntheses:
            p_prev, p_next = synthesis.neighbour_tensors()
            coefficients.append(synthesis.coefficients())
            prevs.append(p_prev)
            nexts.append(p_next)
        group.generation += 1
        owners.append((weakref.ref(group), group.generation))
    values = SynthesiseTensors.apply(tuple(owners), len(prevs), *coefficients, *prevs, *nexts)
    start = 0
    for group in groups:
        group.values = values[start:start + len(group.syntheses)]
        group._stamp = group.stamp()
        start += len(group.syntheses)


class BackboneSynthesis:
    """Synthesises the tensors of all replaced blocks of a backbone at once, per forward.

    A forward pre-hook on the backbone makes every block's values in one ``SynthesiseTensors``
    node; each block's own pre-hook (``BlockSynthesis.synthesise``) then serves them inside its
    forward, if every tensor they were made from is unchanged, and a forward hook withdraws them
    when the backbone's forward ends (a block called on its own afterwards synthesises afresh,
    see ``BlockSynthesis``). The node's backward runs once all replaced blocks' gradients have
    arrived, that is near the end of the backward pass, and so do the neighbours' gradients. In a
    distributed run that would stall DDP, which all-reduces its gradient buckets strictly in
    order (torch's ``Reducer::mark_bucket_ready``): the first bucket holding a neighbour would
    hold every later bucket until the backward ends. So with more than one process each block
    keeps its own node, and its neighbours' gradients are ready once its backward has run.
    """

    def __init__(self, backbone: nn.Module, groups: Sequence[BlockSynthesis]) -> None:
        self.groups = list(groups)
        for group in self.groups:
            group.batch = self
        self.handles = (backbone.register_forward_pre_hook(self.prefetch),
                        backbone.register_forward_hook(self.finish, always_call=True))

    def prefetch(self, module: nn.Module, args: tuple) -> None:
        if torch.compiler.is_compiling() or not self.groups or _distributed():
            return
        for group in self.groups:
            group.reattach()
        synthesise_together(self.groups)
        for group in self.groups:
            group.prefetched = True

    def finish(self, module: nn.Module, args: tuple, output) -> None:
        for group in self.groups:
            group.prefetched = False
            group.drop_values_without_graph()  # of a block this forward did not run

    def remove(self) -> None:
        """Unhook from the backbone: each block synthesises its own tensors again (same values;
        how ``benchmarks/profile_backbone.py --per-block`` measures what batching saves)."""
        for group in self.groups:
            group.batch = None
        self.groups = []
        self._unhook()

    def discard(self, group: BlockSynthesis) -> None:
        """``group`` no longer batches (folded, or timed per tensor); unhook when none is left."""
        self.groups = [g for g in self.groups if g is not group]
        if not self.groups:
            self._unhook()

    def _unhook(self) -> None:
        for handle in self.handles:
            handle.remove()


def block_syntheses(model: nn.Module) -> List[BlockSynthesis]:
    """The ``BlockSynthesis`` of every replaced block in ``model``, each once.

    ``for group in block_syntheses(model): group.remove()`` makes every tensor synthesise on its
    own again (same values; how ``benchmarks/profile_backbone.py --per-tensor`` measures
    what batching saves); it also unhooks the backbone's ``BackboneSynthesis``.
    """
    groups = {}
    for module in model.modules():
        if isinstance(module, NeighbourSynthesis) and module.group is not None:
            groups.setdefault(id(module.group), module.group)
    return list(groups.values())


def backbone_syntheses(model: nn.Module) -> List[BackboneSynthesis]:
    """The ``BackboneSynthesis`` of every backbone in ``model`` with replaced blocks."""
    batches = {id(group.batch): group.batch for group in block_syntheses(model)
               if group.batch is not None}
    return list(batches.values())
