"""Parameter counts of a model: total, trainable, synthesised, for the model and its backbone."""
from dataclasses import asdict, dataclass
from typing import Dict

from torch import nn

from repl_core import COEFFICIENTS, synthesised_numel


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
