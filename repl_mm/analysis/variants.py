"""A config's model as plain, RepL of each kind, and with the peers a user would pick instead.

Given a config whose backbone is a RepL backbone, or a plain one with a registered RepL twin (an
upstream config with ``custom_imports``), a variant is a backbone *kind* and a set of *peers*:

* kinds: ``plain`` (the upstream class, ``plain_model_cfg``), ``fused``, ``light`` (the config's own
  ``light_norm``), ``light-batch`` / ``light-weight`` (``light_norm`` set), ``removed`` (the same
  plan's blocks deleted: the cost floor), each with the config's ``repl`` (default plan for a plain
  config);
* peers, only where the backbone class takes the argument: ``frozen`` (``frozen_stages``, see
  ``default_frozen_stages``), ``cp`` (``with_cp=True``), ``drop-path`` (``drop_path_rate``),
  ``amp`` (mmengine's ``AmpOptimWrapper`` fp16 with a dynamic loss scale on CUDA, repl-mm's
  ``CPUAutocastOptimWrapper`` bf16 on CPU); ``recompute``: the RepL plan's blocks keep only their
  inputs for the backward pass (RepL kinds: ``repl.recompute=True``; plain: the same blocks
  checkpointed the same way, listed in the config's ``recompute_blocks``, which the builder of
  the model applies with ``apply_recompute_blocks``).

``benchmarks/cost_benchmark.py`` and the memory ledger (``ledger_report``) name their variants
their own way and build them here.
"""
import copy
import inspect
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from torch import nn

from repl_core import (KINDS as REPL_KINDS, LIGHT_NORMS, ReplError, checkpoint_without_reentry,
                       recompute_in_backward, replaced_blocks)
from repl_mm.models import plain_model_cfg
from .synthetic import framework_of

#: the plain backbone, each ``repl.kind``, and ``light-<light_norm>`` for each light norm
KINDS = ('plain', *(kind for kind in REPL_KINDS if kind != 'removed'),
         *(f'light-{norm}' for norm in LIGHT_NORMS), 'removed')
PEERS = ('frozen', 'cp', 'drop-path', 'amp', 'recompute')


def accepts(cls: type, argument: str) -> bool:
    """Whether ``cls(...)`` takes keyword ``argument``, following ``**kwargs`` up the MRO (e.g.
    ``CIFARResNet`` -> ``ResNet_CIFAR`` -> ``ResNet``)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        parameters = inspect.signature(init).parameters
        if argument in parameters:
            return True
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return False
    return False


def registered_class(type_name: str, scope: str) -> Optional[type]:
    """The class ``MODELS.build`` would build for ``type_name`` under default scope ``scope``."""
    from mmengine.registry import MODELS
    with MODELS.switch_scope_and_registry(scope) as registry:
        try:
            return registry.get(type_name)
        except KeyError:
            return None


def default_frozen_stages(backbone_cfg: dict) -> int:
    """``frozen_stages`` of the frozen-stages peer: 1 (the stem and the first stage), or one more
    than the config's own where it already freezes stages (mmdet's COCO configs freeze 1, so the
    peer freezes 2: stem, ``layer1``, ``layer2``); the last stage always trains."""
    own = int(backbone_cfg.get('frozen_stages', -1))
    return 1 if own < 1 else own + 1


def amp_optim_wrapper(optim_wrapper: dict, device: str) -> Tuple[dict, str]:
    """``optim_wrapper`` in mixed precision on ``device``, and what it is, in words."""
    optim_wrapper = copy.deepcopy(optim_wrapper)
    if device == 'cuda':
        optim_wrapper.update(type='AmpOptimWrapper', loss_scale='dynamic')
        return optim_wrapper, 'AmpOptimWrapper fp16, dynamic loss scale'
    optim_wrapper['type'] = 'CPUAutocastOptimWrapper'
    optim_wrapper.pop('loss_scale', None)
    return optim_wrapper, 'CPUAutocastOptimWrapper bf16'


@dataclass
class VariantSpec:
    """One variant: its config (``None`` where it does not apply) and what it is, in words."""

    name: str
    description: str
    cfg: Any = None
    skipped: Optional[str] = None  # why the variant does not apply


class VariantBuilder:
    """Builds variants of one config (see the module docstring).

    Raises:
        ReplError: the model has no backbone, or its plain class is not registered.
    """

    def __init__(self, cfg, device: str = 'cpu', frozen_stages: Optional[int] = None,
                 drop_path_rate: float = 0.1) -> None:
        self.cfg = cfg
        self.device = device
        backbone = cfg.model.get('backbone')
        if not backbone:
            raise ReplError(f'{cfg.model.get("type")} has no backbone to compare variants of.')
        if 'RepL' in str(backbone['type']):
            self.repl_model = copy.deepcopy(cfg.model)
            self.plain_model = plain_model_cfg(cfg.model)
        else:
            self.plain_model = copy.deepcopy(cfg.model)
            scope, _, name = str(backbone['type']).rpartition('.')
            self.repl_model = copy.deepcopy(cfg.model)
            self.repl_model['backbone']['type'] = (f'{scope}.' if scope else '') + f'RepL{name}'
            self.repl_model['backbone']['repl'] = {}
        self.plain_type = self.plain_model['backbone']['type']
        self.repl_type = self.repl_model['backbone']['type']
        scope = framework_of(cfg)
        self.plain_cls = registered_class(self.plain_type, scope)
        self.repl_cls = registered_class(self.repl_type, scope)
        if self.plain_cls is None:
            raise ReplError(f'{self.plain_type} is not registered under {scope}.')
        self.peer_values = dict(
            frozen=('frozen_stages', frozen_stages if frozen_stages is not None
                    else default_frozen_stages(self.plain_model['backbone'])),
            cp=('with_cp', True), **{'drop-path': ('drop_path_rate', drop_path_rate)})

    def build(self, name: str, kind: str, peers: Sequence[str] = (),
              amp_everywhere: bool = False) -> VariantSpec:
        """Variant ``name``: backbone ``kind`` with ``peers`` (``amp_everywhere``: in mixed
        precision whatever its peers)."""
        if kind not in KINDS or any(p not in PEERS for p in peers):
            raise ReplError(f'Unknown variant {name!r}: kinds {list(KINDS)}, peers '
                            f'{list(PEERS)}.')
        if kind == 'plain':
            model, cls = copy.deepcopy(self.plain_model), self.plain_cls
            words = [f'plain {self.plain_type}']
        else:
            repl_kind, _, light_norm = kind.partition('-')
            repl = dict(self.repl_model['backbone'].get('repl') or {}, kind=repl_kind)
            if light_norm:
                repl['light_norm'] = light_norm
            words = [f'{self.repl_type} ' + ', '.join(f'{k}={v}' for k, v in repl.items()
                                                     if k in ('kind', 'light_norm'))]
            if self.repl_cls is None:
                return VariantSpec(name, words[0],
                                   skipped=f'no RepL twin {self.repl_type} is registered')
            model, cls = copy.deepcopy(self.repl_model), self.repl_cls
            model['backbone']['repl'] = repl
        optim_wrapper, recompute_blocks = None, None
        for peer in peers:
            if peer == 'recompute':
                if kind == 'removed':
                    return VariantSpec(name, ', '.join(words),
                                       skipped='removed blocks have nothing to recompute')
                if kind == 'plain':
                    recompute_blocks = []  # the plan of this variant's backbone, below
                else:
                    model['backbone']['repl']['recompute'] = True
                    words.append('recompute=True')
                continue
            if peer == 'amp':
                optim_wrapper, what = amp_optim_wrapper(self.cfg.optim_wrapper, self.device)
                words.append(what)
                continue
            argument, value = self.peer_values[peer]
            words.append(f'{argument}={value}')
            if not accepts(cls, argument):
                return VariantSpec(name, ', '.join(words),
                                   skipped=f'{cls.__module__}.{cls.__name__} has no {argument}')
            model['backbone'][argument] = value
        if optim_wrapper is None and amp_everywhere:
            optim_wrapper = amp_optim_wrapper(self.cfg.optim_wrapper, self.device)[0]
        derived = copy.deepcopy(self.cfg)
        derived.model = model
        if optim_wrapper is not None:
            derived.optim_wrapper = optim_wrapper
        if recompute_blocks is not None:
            derived.recompute_blocks = self.planned_blocks(model['backbone'])
            words.append(f'{", ".join(derived.recompute_blocks)} checkpointed')
        return VariantSpec(name, ', '.join(words), derived)

    def planned_blocks(self, plain_backbone: dict) -> List[str]:
        """Paths of the blocks the RepL twin of ``plain_backbone`` (a plain variant's backbone
        config, its peers' arguments included: ``frozen_stages`` changes the plan) replaces."""
        from mmengine.registry import MODELS
        if self.repl_cls is None:
            raise ReplError(f'no RepL twin {self.repl_type} is registered: no plan to follow.')
        twin = dict(plain_backbone, type=self.repl_type, init_cfg=None,
                    repl=self.repl_model['backbone'].get('repl') or {})
        with MODELS.switch_scope_and_registry(framework_of(self.cfg)) as registry:
            backbone = registry.build(twin)
        return [name for name, _ in replaced_blocks(backbone)]


def apply_recompute_blocks(cfg, backbone: nn.Module) -> None:
    """Checkpoint the backbone blocks the config's ``recompute_blocks`` lists, as RepL's
    ``repl.recompute`` checkpoints its replaced blocks (the plain peer of that option)."""
    for path in cfg.get('recompute_blocks') or ():
        block = backbone.get_submodule(path)  # with_cp: switched, as RepL switches its blocks
        recompute_in_backward(block, checkpointed=checkpoint_without_reentry(block))
