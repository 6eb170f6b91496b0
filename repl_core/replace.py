"""Replace blocks of a backbone in place, following a plan.

``replace_blocks(backbone, stages, config)`` is the one entry point the framework classes call.
For a fused replaced block (``kind='fused'``), every parameter tensor ``P`` of the block (conv
kernels, norm weights and biases, ...) becomes ``a * P_prev + b * P_next`` of the same-named tensors
of its neighbours (``synthesis.NeighbourSynthesis``); the block keeps its structure and buffers.

State dict of a backbone after replacement (a contract checkpoints and tools rely on):

* every key of an ordinary block, and every buffer of a replaced block, is the key the plain
  backbone uses; the neighbours' weights appear once;
* a replaced block adds ``<block>.repl_coefficients.<key>`` (shape ``(2,)``, or ``(2, C_out)`` per
  channel; ``[0]`` is ``a``, ``[1]`` is ``b``), ``<block>.repl_coefficients._extra_state`` (the
  settings they belong to, ``coefficients``) and, for learnable adapters,
  ``<block>.repl_adapters.*``.

A coefficient trains where at least one tensor it weighs comes from a trainable neighbour
tensor: norm affines a config freezes (``norm_cfg.requires_grad=False``) stay frozen in replaced
blocks too. Loading a state dict passes ``state_dict_guard.StateDictGuard``. Once a replaced
block exists, optimizers step coefficients without weight decay and at their own learning-rate
multiplier (``coefficient_steps``).
"""
import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from . import coefficient_steps
from .adapters import build_adapter
from .coefficients import (ADAPTER_MODULES, COEFFICIENTS, CoefficientSpec, ReplCoefficients)
from .errors import PlanError, ReplError
from .light import LightSpec, build_light_surrogate
from .norm_rebuild import install_rebuild_hook
from .plan import BlockRef, ReplacementPlan, resolve_plan
from .settings import ReplacementConfig
from .state_dict_guard import StateDictGuard
from .synthesis import NeighbourSynthesis, attach, coefficient_key
from .synthesis_batching import BackboneSynthesis, BlockSynthesis, block_syntheses

Log = Callable[[str], None]
_default_log: Log = logging.getLogger(__name__).info


def replace_blocks(backbone: nn.Module, stages: Sequence[Tuple[str, str]],
                   config: ReplacementConfig, log: Log = _default_log,
                   light_spec: Optional[Callable[[nn.Module], LightSpec]] = None,
                   own_tensors: Sequence[str] = (), chunked_tensors: Mapping[str, int] = {},
                   frozen: Sequence[BlockRef] = (),
                   residual_ends: Optional[Callable[[nn.Module], Sequence[str]]] = None
                   ) -> ReplacementPlan:
    """Replace blocks of ``backbone`` in place and install the state-dict guard.

    Args:
        backbone: the module whose state dict the guard checks.
        stages: ``(stage name, path of its block container in backbone)``, in forward order,
            e.g. ``[('layer1', 'layer1'), ...]`` or ``[('stage0', 'stages.0.blocks'), ...]``.
        config: what to replace and how, checked and resolved (``settings``).
        log: where to write the one-line summaries.
        light_spec: for ``kind='light'``, gives the ``LightSpec`` of a block (raising
            ``PlanError`` for a block that has no light surrogate, e.g. one that changes shape).
        own_tensors: name suffixes of tensors a fused replaced block keeps as its own
            parameters (e.g. Swin's ``'relative_position_bias_table'``).
        chunked_tensors: name suffix -> number of equal parts along dim 0 that adapters must
            treat separately (fused q, k, v projections: 3).
        frozen: ``(stage name, index)`` of blocks that do not train (``plan``).
        residual_ends: the paths, in a block, of the tensors that end its residual branch
            (``repl.warm_start='identity'`` zeroes their coefficients; ``warm_start``).

    Returns:
        The validated plan.
    """
    if config.blocks == 'auto':
        raise PlanError("repl.blocks='auto' is chosen from a pretrained model and training "
                        'data: run tools/convert.py CONFIG PLAIN_CHECKPOINT OUT_DIR, which writes '
                        'a config with the chosen plan (and the converted checkpoint).')
    containers = {name: backbone.get_submodule(path) for name, path in stages}
    plan = resolve_plan([(name, len(containers[name])) for name, _ in stages], config.blocks,
                        frozen)
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
            ends = tuple(residual_ends(args[0])) if residual_ends else ()
            getattr(args[0], COEFFICIENTS).residual_ends = ends
        elif config.kind == 'light':
            containers[stage][index] = _replace_light(*args, light_spec(args[0]))
        else:
            light_spec(args[0])  # raises for a block that changes its input's shape
            containers[stage][index] = RemovedBlock()
    if plan.replaced:
        paths = dict(stages)
        backbone.register_load_state_dict_pre_hook(StateDictGuard(
            [f'{paths[stage]}.{index}' for stage, index in plan.replaced],
            [f'{paths[stage]}.{index}' for stage, index in plan.chain], config.kind,
            config.warm_start, log))
        if config.kind != 'removed':
            coefficient_steps.install()
            install_rebuild_hook()
            BackboneSynthesis(backbone, block_syntheses(backbone))
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
        targets.append(_Target(owner_path, tensor_name, path, param, sources, tensor_name,
                               None))
    if not targets:
        raise PlanError(f'{name} has no parameters to synthesise; there is nothing to replace.')
    _install_synthesis(block, name, targets, config, (prev_name, next_name), chunked_tensors)


def _replace_light(block: nn.Module, name: str, prev_block: nn.Module, prev_name: str,
                   next_block: nn.Module, next_name: str, config: ReplacementConfig,
                   chunked_tensors: Dict[str, int], spec: LightSpec) -> nn.Module:
    """Build the light surrogate of ``block``; its tensors are synthesised from the neighbours."""
    weight_owner, _, weight_name = spec.weight.rpartition('.')
    own_weight = getattr(block.get_submodule(weight_owner), weight_name)
    surrogate = build_light_surrogate(spec, block.get_submodule(spec.norm), own_weight.shape,
                                      config.light_norm)
    neighbours = ((prev_block, prev_name), (next_block, next_name))
    targets = []
    for path, source_path, adapter in surrogate.sources(spec):
        owner_path, _, tensor_name = path.rpartition('.')
        source_owner, _, source_name = source_path.rpartition('.')
        owners = tuple(_counterpart(n, n_name, source_owner, source_name, name, source_path)
                       for n, n_name in neighbours)
        value = getattr(surrogate.get_submodule(owner_path), tensor_name)
        targets.append(_Target(owner_path, tensor_name, path, value, owners, source_name,
                               adapter))
    _install_synthesis(surrogate, name, targets, config, (prev_name, next_name), {})
    getattr(surrogate, COEFFICIENTS).residual_ends = tuple(surrogate.residual_ends)
    return surrogate


@dataclass
class _Target:
    """One tensor to synthesise: ``<owner_path>.<name>`` of the replaced block (or surrogate)
    from ``sources[i].<source_name>``."""

    owner_path: str
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
    coefficients = ReplCoefficients(CoefficientSpec(config.kind, config.granularity, None),
                                    config.coefficient_lr_mult)
    adapters = nn.ModuleDict()
    holder.add_module(COEFFICIENTS, coefficients)
    holder.add_module(ADAPTER_MODULES, adapters)
    a, b = (float(v) for v in config.init)
    uses_adapter = False
    trains: Dict[str, bool] = {}
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
                uses_adapter |= adapter is not None
            if adapter is not None:
                adapters[f'{side}_{target.path.replace(".", "_")}'] = adapter
            side_adapters.append(adapter)
        key = coefficient_key(target.path, config.granularity)
        if key not in coefficients:
            shape = (target.value.shape[0], ) if config.granularity == 'channel' else ()
            init = torch.stack([torch.full(shape, a), torch.full(shape, b)])
            coefficients[key] = nn.Parameter(init.to(target.value.dtype))
        trains[key] = trains.get(key, False) or any(
            getattr(source, target.source_name).requires_grad for source in target.sources)
        synthesis = NeighbourSynthesis(target.sources[0], target.sources[1], target.source_name,
                                       target.value.shape, coefficients, key,
                                       (side_adapters[0], side_adapters[1]),
                                       config.detach_neighbours, owner_path=target.owner_path,
                                       target_name=target.name)
        attach(holder.get_submodule(target.owner_path), synthesis)
        syntheses.append(synthesis)
    for key, trainable in trains.items():
        coefficients[key].requires_grad_(trainable)
    if uses_adapter:
        coefficients.spec = CoefficientSpec(config.kind, config.granularity, config.adapter)
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
