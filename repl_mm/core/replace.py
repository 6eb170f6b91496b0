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
from .plan import ReplacementPlan, resolve_plan
from .synthesis import GRANULARITIES, NeighbourSynthesis, coefficient_key

COEFFICIENTS = 'repl_coefficients'
ADAPTER_MODULES = 'repl_adapters'
KINDS = ('fused', )

Log = Callable[[str], None]
_default_log: Log = logging.getLogger('repl_mm').info


@dataclass(frozen=True)
class ReplacementConfig:
    """The ``repl=dict(...)`` argument of a RepL backbone.

    Attributes:
        blocks: ``None`` for the default plan, else ``{stage name or index: [block indices]}``
            (see ``plan``).
        kind: ``'fused'``: the whole block runs with synthesised parameters.
        granularity: one ``(a, b)`` pair per parameter tensor (``'tensor'``), per output channel
            of each tensor (``'channel'``), or per top-level child module of the block
            (``'submodule'``, e.g. one for attention and one for the MLP).
        init: initial ``(a, b)``; ``(0.5, 0.5)`` averages the neighbours.
        adapter: how neighbour tensors of another shape are brought to shape (``adapters``).
        detach_neighbours: if true, gradients through synthesised weights reach only the
            coefficients, not the neighbours' weights.
    """

    blocks: Optional[Mapping] = None
    kind: str = 'fused'
    granularity: str = 'tensor'
    init: Tuple[float, float] = (0.5, 0.5)
    adapter: str = 'slice_pad'
    detach_neighbours: bool = False

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
                   config: ReplacementConfig, log: Log = _default_log) -> ReplacementPlan:
    """Replace blocks of ``backbone`` in place and install the state-dict guard.

    Args:
        backbone: the module whose state dict the guard checks.
        stages: ``(stage name, path of its block container in backbone)``, in forward order,
            e.g. ``[('layer1', 'layer1'), ...]`` or ``[('stage0', 'stages.0.blocks'), ...]``.
        config: what to replace and how.
        log: where to write the one-line summaries.

    Returns:
        The validated plan.
    """
    containers = {name: backbone.get_submodule(path) for name, path in stages}
    plan = resolve_plan([(name, len(containers[name])) for name, _ in stages], config.blocks)
    for stage, index in plan.replaced:
        (prev_stage, prev_index), (next_stage, next_index) = plan.neighbours((stage, index))
        _replace_fused(containers[stage][index], f'{stage}[{index}]',
                       containers[prev_stage][prev_index], f'{prev_stage}[{prev_index}]',
                       containers[next_stage][next_index], f'{next_stage}[{next_index}]',
                       config)
    if plan.replaced:
        backbone.register_load_state_dict_pre_hook(_StateDictGuard(log))
    return plan


def _replace_fused(block: nn.Module, name: str, prev_block: nn.Module, prev_name: str,
                   next_block: nn.Module, next_name: str, config: ReplacementConfig) -> None:
    if isinstance(block, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        raise PlanError(f'{name} is a {type(block).__name__}; a replaced block must be a module '
                        f'with its own forward (its coefficients are added as a child).')
    targets = list(block.named_parameters())
    if not targets:
        raise PlanError(f'{name} has no parameters to synthesise; there is nothing to replace.')
    coefficients = nn.ParameterDict()
    adapters = nn.ModuleDict()
    block.add_module(COEFFICIENTS, coefficients)
    block.add_module(ADAPTER_MODULES, adapters)
    a, b = (float(v) for v in config.init)
    for path, param in targets:
        owner_path, _, tensor_name = path.rpartition('.')
        owners, sides = [], []
        for side, neighbour, neighbour_name in (('prev', prev_block, prev_name),
                                                ('next', next_block, next_name)):
            owner = _counterpart(neighbour, owner_path, tensor_name)
            if owner is None:
                raise PlanError(f'{name} cannot be replaced: its parameter {path!r} has no '
                                f'counterpart in its neighbour {neighbour_name}, so there is '
                                f'nothing to synthesise it from (blocks with a projection '
                                f'shortcut, e.g. a stage\'s first block, stay ordinary).')
            adapter = build_adapter(config.adapter, getattr(owner, tensor_name).shape,
                                    param.shape,
                                    what=f'{name}.{path} from {neighbour_name}.{path}')
            if adapter is not None:
                adapters[f'{side}_{path.replace(".", "_")}'] = adapter
            owners.append(owner)
            sides.append(adapter)
        key = coefficient_key(path, config.granularity)
        if key not in coefficients:
            shape = (param.shape[0], ) if config.granularity == 'channel' else ()
            init = torch.stack([torch.full(shape, a), torch.full(shape, b)])
            coefficients[key] = nn.Parameter(init.to(param.dtype))
        synthesis = NeighbourSynthesis(owners[0], owners[1], tensor_name, param.shape,
                                       coefficients, key,
                                       (sides[0], sides[1]), config.detach_neighbours)
        parametrize.register_parametrization(
            block.get_submodule(owner_path), tensor_name, synthesis, unsafe=True)


def _counterpart(neighbour: nn.Module, owner_path: str, tensor_name: str) -> Optional[nn.Module]:
    try:
        owner = neighbour.get_submodule(owner_path)
    except AttributeError:
        return None
    return owner if isinstance(getattr(owner, tensor_name, None), torch.Tensor) else None


class _StateDictGuard:
    """Load-state-dict pre-hook of a replaced backbone; see the module docstring."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def __call__(self, module: nn.Module, state_dict: Dict[str, torch.Tensor], prefix: str,
                 *args) -> None:
        incoming = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
        ours = [path for path, _ in replaced_blocks(module)]
        marker = f'.{COEFFICIENTS}.'
        theirs = sorted({k.split(marker)[0] for k in incoming if marker in k})
        if theirs:
            self._check_same_plan(module, ours, theirs, incoming, state_dict, prefix)
            return
        own_keys = set(module.state_dict().keys())
        dropped = [k for k in incoming if k not in own_keys
                   and any(k.startswith(f'{path}.') for path in ours)]
        for key in dropped:
            del state_dict[incoming[key]]
        if dropped:
            blocks = sorted({k for k in ours if any(d.startswith(f'{k}.') for d in dropped)})
            self.log(f'RepL: ignored {len(dropped)} tensors of replaced blocks '
                     f'{", ".join(prefix + b for b in blocks)} in the loaded state dict: their '
                     f'parameters are synthesised from their neighbours.')

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
