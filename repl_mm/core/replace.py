"""Replace blocks of a backbone in place, following a plan; guard loading of state dicts.

``replace_blocks(backbone, stages, config)`` is the one entry point the framework classes call.
For a fused replaced block (``kind='fused'``), every parameter tensor ``P`` of the block (conv
kernels, norm weights and biases, ...) becomes ``a * P_prev + b * P_next`` of the same-named tensors
of its neighbours (``synthesis.NeighbourSynthesis``); the block keeps its structure and buffers.

State dict of a backbone after replacement (the contract later work relies on):

* every key of an ordinary block, and every buffer of a replaced block, is the key the plain
  backbone uses; the neighbours' weights appear once;
* a replaced block adds ``<block>.repl_coefficients.<key>`` (shape ``(2,)``, or ``(2, C_out)`` per
  channel; ``[0]`` is ``a``, ``[1]`` is ``b``) and, for learnable adapters,
  ``<block>.repl_adapters.*``. Configs exclude ``repl_coefficients`` from weight decay.

Loading a state dict into a replaced backbone (any path: ``load_state_dict``, mmengine's
``load_checkpoint``, ``init_cfg=Pretrained``) first passes ``guard_state_dict``:

* a RepL state dict with another plan or coefficient granularity is refused with a message naming
  the difference (mmengine loads with ``strict=False``, which would otherwise train silently wrong);
* a plain state dict (no coefficients) loads, and the weights it holds for replaced blocks are
  dropped, with one log line naming them.
"""
import logging
from dataclasses import dataclass, fields
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.utils import parametrize

from .adapters import ADAPTERS, build_adapter
from .errors import CheckpointMismatchError, PlanError, ReplError
from .light import DiagonalKernelAdapter, LightSpec, build_light_surrogate
from .plan import ReplacementPlan, resolve_plan
from .synthesis import GRANULARITIES, BlockSynthesis, NeighbourSynthesis, coefficient_key

COEFFICIENTS = 'repl_coefficients'
ADAPTER_MODULES = 'repl_adapters'
KINDS = ('fused', 'light', 'removed')

Log = Callable[[str], None]
_default_log: Log = logging.getLogger('repl_mm').info


@dataclass(frozen=True)
class ReplacementConfig:
    """The ``repl=dict(...)`` argument of a RepL backbone.

    Attributes:
        blocks: ``None`` for the default plan, else ``{stage name or index: [block indices]}``
            (see ``plan``).
        kind: ``'fused'``: the whole block runs with synthesised parameters; ``'light'``: the
            block is replaced by one cheap synthesised operator inside its residual (``light``);
            ``'removed'``: not RepL but its baseline, the planned blocks are deleted (identity),
            the cost floor any surrogate must justify itself against.
        granularity: one ``(a, b)`` pair per parameter tensor (``'tensor'``), per output channel
            of each tensor (``'channel'``), or per top-level child module of the block
            (``'submodule'``, e.g. one for attention and one for the MLP).
        init: initial ``(a, b)``; ``(0.5, 0.5)`` averages the neighbours.
        adapter: how neighbour tensors of another shape are brought to shape (``adapters``).
        detach_neighbours: if true, gradients through synthesised weights reach only the
            coefficients, not the neighbours' weights.
        warm_start: when a plain state dict holding the replaced blocks' own weights is loaded
            (e.g. pretrained weights), set each ``(a, b)`` by least squares so that
            ``a * P_prev + b * P_next`` best fits the block's own ``P`` (fused kind), and log the
            fit error; if false, those weights are ignored and ``(a, b)`` keep their values.
    """

    blocks: Optional[Mapping] = None
    kind: str = 'fused'
    granularity: str = 'tensor'
    init: Tuple[float, float] = (0.5, 0.5)
    adapter: str = 'slice_pad'
    detach_neighbours: bool = False
    warm_start: bool = True

    @classmethod
    def from_dict(cls, cfg: Optional[Mapping]) -> 'ReplacementConfig':
        """Build from a config dict; ``None`` or ``{}`` gives the defaults."""
        cfg = dict(cfg or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise ReplError(f'repl: unknown option(s) {unknown}; valid options are {known}.')
        config = cls(**cfg)
        config.check()
        return config

    def check(self) -> None:
        for name, value, valid in (('kind', self.kind, KINDS),
                                   ('granularity', self.granularity, GRANULARITIES),
                                   ('adapter', self.adapter, ADAPTERS)):
            if value not in valid:
                raise ReplError(f'repl.{name}={value!r} is unknown; choose one of {valid}.')
        if len(tuple(self.init)) != 2:
            raise ReplError(f'repl.init must be a pair (a, b), got {self.init!r}.')


def is_replaced(module: nn.Module) -> bool:
    """Whether ``module`` is a replaced block."""
    return isinstance(getattr(module, COEFFICIENTS, None), nn.ParameterDict)


def replaced_blocks(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(path, block)`` of every replaced block in ``model``."""
    return [(path, m) for path, m in model.named_modules() if is_replaced(m)]


def replace_blocks(backbone: nn.Module, stages: Sequence[Tuple[str, str]],
                   config: ReplacementConfig, log: Log = _default_log,
                   light_spec: Optional[Callable[[nn.Module], LightSpec]] = None,
                   own_tensors: Sequence[str] = (), chunked_tensors: Mapping[str, int] = {}
                   ) -> ReplacementPlan:
    """Replace blocks of ``backbone`` in place and install the state-dict guard.

    Args:
        backbone: the module whose state dict the guard checks.
        stages: ``(stage name, path of its block container in backbone)``, in forward order,
            e.g. ``[('layer1', 'layer1'), ...]`` or ``[('stage0', 'stages.0.blocks'), ...]``.
        config: what to replace and how.
        log: where to write the one-line summaries.
        light_spec: for ``kind='light'``, gives the ``LightSpec`` of a block (raising
            ``PlanError`` for a block that has no light surrogate, e.g. one that changes shape).
        own_tensors: name suffixes of tensors a fused replaced block keeps as its own
            parameters (e.g. Swin's ``'relative_position_bias_table'``).
        chunked_tensors: name suffix -> number of equal parts along dim 0 that adapters must
            treat separately (fused q, k, v projections: 3).

    Returns:
        The validated plan.
    """
    containers = {name: backbone.get_submodule(path) for name, path in stages}
    plan = resolve_plan([(name, len(containers[name])) for name, _ in stages], config.blocks)
    if config.kind in ('light', 'removed') and light_spec is None:
        raise ReplError(f"repl.kind={config.kind!r}: {type(backbone).__name__} declares no "
                        f"light surrogate for its blocks; use kind='fused'.")
    for stage, index in plan.replaced:
        (prev_stage, prev_index), (next_stage, next_index) = plan.neighbours((stage, index))
        args = (containers[stage][index], f'{stage}[{index}]',
                containers[prev_stage][prev_index], f'{prev_stage}[{prev_index}]',
                containers[next_stage][next_index], f'{next_stage}[{next_index}]', config,
                dict(chunked_tensors))
        if config.kind == 'fused':
            _replace_fused(*args, tuple(own_tensors))
        elif config.kind == 'light':
            containers[stage][index] = _replace_light(*args, light_spec(args[0]))
        else:
            light_spec(args[0])  # raises for a block that changes its input's shape
            containers[stage][index] = RemovedBlock()
    if plan.replaced:
        backbone.register_load_state_dict_pre_hook(_StateDictGuard(log, config.warm_start))
    return plan


def _replace_fused(block: nn.Module, name: str, prev_block: nn.Module, prev_name: str,
                   next_block: nn.Module, next_name: str, config: ReplacementConfig,
                   chunked_tensors: Dict[str, int], own_tensors: Tuple[str, ...]) -> None:
    """Synthesise every parameter tensor of ``block`` (but ``own_tensors``) from the
    same-named neighbour tensors."""
    targets = []
    for path, param in block.named_parameters():
        if path.endswith(own_tensors):
            continue
        owner_path, _, tensor_name = path.rpartition('.')
        sources = tuple(_counterpart(neighbour, neighbour_name, owner_path, tensor_name, name,
                                     path)
                        for neighbour, neighbour_name in ((prev_block, prev_name),
                                                          (next_block, next_name)))
        targets.append(_Target(block.get_submodule(owner_path), tensor_name, path, param,
                               sources, tensor_name, None))
    if not targets:
        raise PlanError(f'{name} has no parameters to synthesise; there is nothing to replace.')
    _install_synthesis(block, name, targets, config, (prev_name, next_name), chunked_tensors)


def _replace_light(block: nn.Module, name: str, prev_block: nn.Module, prev_name: str,
                   next_block: nn.Module, next_name: str, config: ReplacementConfig,
                   chunked_tensors: Dict[str, int], spec: LightSpec) -> nn.Module:
    """Build the light surrogate of ``block``; its tensors are synthesised from the neighbours."""
    weight_owner, _, weight_name = spec.weight.rpartition('.')
    own_weight = getattr(block.get_submodule(weight_owner), weight_name)
    surrogate = build_light_surrogate(spec, block.get_submodule(spec.norm), own_weight.shape)
    neighbours = ((prev_block, prev_name), (next_block, next_name))
    operator = surrogate.conv if spec.operator == 'depthwise' else surrogate.linear
    operator_path = 'conv' if spec.operator == 'depthwise' else 'linear'
    adapter = (DiagonalKernelAdapter(operator.weight.shape[0])
               if spec.operator == 'depthwise' else None)
    sources = [(operator, 'weight', spec.weight, adapter)]
    if spec.bias is not None:
        sources.append((operator, 'bias', spec.bias, None))
    sources += [(surrogate.norm, t, f'{spec.norm}.{t}', None) for t in ('weight', 'bias')]
    targets = []
    for owner, tensor_name, source_path, adapter in sources:
        source_owner, _, source_name = source_path.rpartition('.')
        path = f'{operator_path if owner is operator else "norm"}.{tensor_name}'
        owners = tuple(_counterpart(n, n_name, source_owner, source_name, name, source_path)
                       for n, n_name in neighbours)
        targets.append(_Target(owner, tensor_name, path, getattr(owner, tensor_name), owners,
                               source_name, adapter))
    _install_synthesis(surrogate, name, targets, config, (prev_name, next_name), {})
    return surrogate


@dataclass
class _Target:
    """One tensor to synthesise: ``owner.<name>`` from ``sources[i].<source_name>``."""

    owner: nn.Module
    name: str
    path: str  # inside the replaced block: coefficient key and messages
    value: torch.Tensor  # the tensor being replaced: its shape and dtype
    sources: Tuple[nn.Module, nn.Module]
    source_name: str
    adapter: Optional[nn.Module]  # fixed adapter for both sources; None: config.adapter


def _install_synthesis(holder: nn.Module, name: str, targets: List['_Target'],
                       config: ReplacementConfig, neighbour_names: Tuple[str, str],
                       chunked_tensors: Dict[str, int]) -> None:
    if isinstance(holder, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        raise PlanError(f'{name} is a {type(holder).__name__}; a replaced block must be a '
                        f'module with its own forward (its coefficients are added as a child).')
    coefficients = nn.ParameterDict()
    adapters = nn.ModuleDict()
    holder.add_module(COEFFICIENTS, coefficients)
    holder.add_module(ADAPTER_MODULES, adapters)
    a, b = (float(v) for v in config.init)
    syntheses = []
    for target in targets:
        side_adapters = []
        for side, source, neighbour_name in zip(('prev', 'next'), target.sources,
                                                neighbour_names):
            adapter = target.adapter
            if adapter is None:
                chunks = next((n for suffix, n in chunked_tensors.items()
                               if target.path.endswith(suffix)), 1)
                adapter = build_adapter(
                    config.adapter, getattr(source, target.source_name).shape,
                    target.value.shape, what=f'{name}.{target.path} from {neighbour_name}',
                    chunks=chunks)
            if adapter is not None:
                adapters[f'{side}_{target.path.replace(".", "_")}'] = adapter
            side_adapters.append(adapter)
        key = coefficient_key(target.path, config.granularity)
        if key not in coefficients:
            shape = (target.value.shape[0], ) if config.granularity == 'channel' else ()
            init = torch.stack([torch.full(shape, a), torch.full(shape, b)])
            coefficients[key] = nn.Parameter(init.to(target.value.dtype))
        synthesis = NeighbourSynthesis(target.sources[0], target.sources[1], target.source_name,
                                       target.value.shape, coefficients, key,
                                       (side_adapters[0], side_adapters[1]),
                                       config.detach_neighbours)
        parametrize.register_parametrization(target.owner, target.name, synthesis, unsafe=True)
        syntheses.append(synthesis)
    BlockSynthesis(holder, syntheses)


class RemovedBlock(nn.Module):
    """A deleted block (``kind='removed'``): returns its input; extra block arguments ignored."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return x


def _counterpart(neighbour: nn.Module, neighbour_name: str, owner_path: str, tensor_name: str,
                 name: str, path: str) -> nn.Module:
    """The module of ``neighbour`` owning the tensor ``owner_path.tensor_name``."""
    try:
        owner = neighbour.get_submodule(owner_path)
    except AttributeError:
        owner = None
    if owner is None or not isinstance(getattr(owner, tensor_name, None), torch.Tensor):
        raise PlanError(f'{name} cannot be replaced: its parameter {path!r} has no counterpart '
                        f'in its neighbour {neighbour_name}, so there is nothing to synthesise '
                        f'it from (blocks with a projection shortcut, e.g. a stage\'s first '
                        f'block, stay ordinary).')
    return owner


class _StateDictGuard:
    """Load-state-dict pre-hook of a replaced backbone; see the module docstring."""

    def __init__(self, log: Log, warm_start: bool) -> None:
        self.log = log
        self.warm_start = warm_start

    def __call__(self, module: nn.Module, state_dict: Dict[str, torch.Tensor], prefix: str,
                 *args) -> None:
        incoming = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
        ours = replaced_blocks(module)
        marker = f'.{COEFFICIENTS}.'
        theirs = sorted({k.split(marker)[0] for k in incoming if marker in k})
        if theirs:
            self._check_same_plan(module, [p for p, _ in ours], theirs, incoming, state_dict,
                                  prefix)
            return
        own_keys = set(module.state_dict().keys())
        dropped = [k for k in incoming if k not in own_keys
                   and any(k.startswith(f'{path}.') for path, _ in ours)]
        if not dropped:
            return
        message = (f'RepL: {len(dropped)} tensors of replaced blocks in the loaded state dict '
                   f'were not loaded (their parameters are synthesised from their neighbours): '
                   f'{", ".join(prefix + p for p, _ in ours if any(d.startswith(p + ".") for d in dropped))}.')
        if self.warm_start:
            errors = warm_start_coefficients(module, ours, incoming, state_dict, prefix)
            if errors:
                message += (' Warm start: (a, b) fitted to them by least squares; relative '
                            'fit error ' + ', '.join(f'{prefix}{p} {e:.3f}'
                                                     for p, e in errors.items()) + '.')
        for key in dropped:
            del state_dict[incoming[key]]
        self.log(message)

    @staticmethod
    def _check_same_plan(module: nn.Module, ours: List[str], theirs: List[str],
                         incoming: Dict[str, str], state_dict: Dict[str, torch.Tensor],
                         prefix: str) -> None:
        if set(ours) != set(theirs):
            only_theirs = sorted(set(theirs) - set(ours))
            only_ours = sorted(set(ours) - set(theirs))
            raise CheckpointMismatchError(
                f'The checkpoint was made with another RepL replacement plan: it replaces '
                f'{", ".join(prefix + p for p in theirs)}; this model replaces '
                f'{", ".join(prefix + p for p in ours) or "nothing"} (only in the checkpoint: '
                f'{only_theirs or "-"}; only in the model: {only_ours or "-"}). Set the '
                f"backbone's repl.blocks to the checkpoint's plan, or fold the checkpoint "
                f'(tools/fold.py) and load it into the plain backbone.')
        for name, param in module.named_parameters():
            if f'.{COEFFICIENTS}.' not in f'.{name}':
                continue
            key = incoming.get(name)
            if key is not None and tuple(state_dict[key].shape) != tuple(param.shape):
                raise CheckpointMismatchError(
                    f'Checkpoint tensor {key} has shape {tuple(state_dict[key].shape)} but the '
                    f'model expects {tuple(param.shape)}: the checkpoint was trained with '
                    f'another repl.granularity. Set it to the checkpoint\'s.')


def warm_start_coefficients(module: nn.Module, blocks: List[Tuple[str, nn.Module]],
                            incoming: Dict[str, str], state_dict: Dict[str, torch.Tensor],
                            prefix: str) -> Dict[str, float]:
    """Fit every ``(a, b)`` of ``blocks`` to the blocks' own weights found in ``state_dict``.

    Solves ``min ||a * adapt(P_prev) + b * adapt(P_next) - P||^2`` over the tensors sharing a
    coefficient (per output channel for ``'channel'`` granularity) with the neighbours' tensors
    from the same state dict, and writes the result into ``state_dict`` as the coefficients'
    entries. Returns ``{block path: ||residual|| / ||P||}`` for the blocks it fitted.
    """
    # neighbours by tensor identity, not module identity: SyncBN -> BN conversion (mmengine's
    # revert_sync_batchnorm) puts new modules in the tree around the same parameter tensors
    names = {id(t): n for n, t in module.named_parameters(remove_duplicate=False)}
    names.update((id(t), n) for n, t in module.named_buffers(remove_duplicate=False))
    errors = {}
    for block_path, block in blocks:
        groups: Dict[str, List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        for owner_path, owner in block.named_modules():
            if not parametrize.is_parametrized(owner):
                continue
            for tensor_name, parametrizations in owner.parametrizations.items():
                synthesis = parametrizations[0]
                keys = [f'{block_path}.{owner_path}.{tensor_name}'] + [
                    names.get(id(getattr(n, synthesis.tensor_name)), '')
                    for n in synthesis.neighbours]
                if not all(k in incoming for k in keys):
                    continue
                own, p_prev, p_next = (state_dict[incoming[k]].detach().double() for k in keys)
                with torch.no_grad():
                    u, v = (t.double() for t in synthesis.adapt(p_prev.float(), p_next.float()))
                groups.setdefault(synthesis.key, []).append((own, u, v))
        if not groups:
            continue
        residual = total = 0.0
        for key, tensors in groups.items():
            coefficients = block.get_parameter(f'{COEFFICIENTS}.{key}')
            per_channel = coefficients.dim() == 2
            columns = [torch.cat([t.reshape(t.shape[0], -1) if per_channel else t.reshape(1, -1)
                                  for t in part], dim=1) for part in zip(*tensors)]
            own, u, v = columns
            system = torch.stack([u, v], dim=-1)  # (groups, N, 2)
            solution = torch.linalg.lstsq(system, own.unsqueeze(-1), driver='gelsd').solution
            fitted = solution.squeeze(-1).T  # (2, groups)
            residual += (system @ solution).squeeze(-1).sub(own).square().sum().item()
            total += own.square().sum().item()
            value = fitted if per_channel else fitted[:, 0]
            state_dict[f'{prefix}{block_path}.{COEFFICIENTS}.{key}'] = value.to(
                coefficients.dtype)
        errors[block_path] = (residual / max(total, 1e-30)) ** 0.5
    return errors
