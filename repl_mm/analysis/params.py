"""Parameter counts of a model: total, trainable, synthesised, for the model and its backbone."""
import copy
from dataclasses import asdict, dataclass
from typing import Dict

from torch import nn

from repl_mm.core import COEFFICIENTS, ReplError, synthesised_numel


@dataclass
class ParameterCount:
    """Counts of one module. ``synthesised`` values are computed from neighbours, not stored."""

    parameters: int
    trainable: int
    synthesised: int
    coefficients: int

    @classmethod
    def of(cls, module: nn.Module) -> 'ParameterCount':
        params = list(module.named_parameters())
        return cls(parameters=sum(p.numel() for _, p in params),
                   trainable=sum(p.numel() for _, p in params if p.requires_grad),
                   synthesised=synthesised_numel(module),
                   coefficients=sum(p.numel() for n, p in params if COEFFICIENTS in n))

    def to_dict(self) -> Dict[str, int]:
        return asdict(self)


def count_parameters(model: nn.Module) -> Dict[str, ParameterCount]:
    """``{'model': ..., 'backbone': ...}`` (the backbone entry only where the model has one)."""
    counts = {'model': ParameterCount.of(model)}
    if isinstance(getattr(model, 'backbone', None), nn.Module):
        counts['backbone'] = ParameterCount.of(model.backbone)
    return counts


def plain_model_cfg(model_cfg: dict) -> dict:
    """The same model with its RepL backbone swapped for the upstream class it extends.

    ``RepLResNet`` -> ``ResNet``, ``mmpretrain.RepLResNet`` -> ``mmpretrain.ResNet``; the
    ``repl`` argument is dropped, every other argument kept.
    """
    cfg = copy.deepcopy(model_cfg)
    backbone = cfg.get('backbone')
    if not backbone or 'RepL' not in str(backbone.get('type', '')):
        raise ReplError(f'The model has no RepL backbone (backbone type '
                        f'{backbone.get("type") if backbone else None!r}).')
    scope, _, name = str(backbone['type']).rpartition('.')
    backbone['type'] = (f'{scope}.' if scope else '') + name.replace('RepL', '', 1)
    backbone.pop('repl', None)
    return cfg
