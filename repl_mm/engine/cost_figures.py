"""The cost figures ``TrainingCostHook`` logs besides memory: parameter counts, gradient and
optimizer-state bytes, and every replaced block's mean coefficients."""
from typing import Dict, Iterable, List, Sequence, Tuple

import torch
from torch import nn

from repl_core import COEFFICIENTS, replaced_blocks, synthesised_numel


def torch_optimizers(optim_wrapper) -> List[torch.optim.Optimizer]:
    """The torch optimizers behind an mmengine optim wrapper (each of an ``OptimWrapperDict``)."""
    from mmengine.optim import OptimWrapperDict
    wrappers = (optim_wrapper.optim_wrappers.values()
                if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper])
    return [wrapper.optimizer for wrapper in wrappers]


def structure_costs(model: nn.Module) -> Dict[str, int]:
    """``params_synthesised`` (values computed from neighbours, not stored) and
    ``replaced_blocks``: fixed once the model is built."""
    return {'params_synthesised': synthesised_numel(model),
            'replaced_blocks': len(replaced_blocks(model))}


def state_costs(model: nn.Module, optimizers: Iterable[torch.optim.Optimizer] = ()
                ) -> Dict[str, int]:
    """Trainable and frozen parameter values, gradient and optimizer-state bytes: they change
    when parameters are frozen or unfrozen and after the first optimizer step.

    ``grad_bytes`` is what backward allocates for the ``.grad`` of every trainable parameter
    (numel x element size), computed from the parameters: mmengine's optimizer wrapper frees the
    gradients (``zero_grad``) before any hook sees them. ``optimizer_state_bytes`` sums the tensors
    the optimizers hold (momentum, Adam moments, ...), 0 before the first step.
    """
    trainable = frozen = grad_bytes = 0
    for param in model.parameters():
        if param.requires_grad:
            trainable += param.numel()
            grad_bytes += param.numel() * param.element_size()
        else:
            frozen += param.numel()
    state_bytes = sum(value.numel() * value.element_size()
                      for optimizer in optimizers for state in optimizer.state.values()
                      for value in state.values() if isinstance(value, torch.Tensor))
    return {'params_trainable': trainable, 'params_frozen': frozen, 'grad_bytes': grad_bytes,
            'optimizer_state_bytes': state_bytes}


def coefficient_means(blocks: Sequence[Tuple[str, nn.Module]]) -> Dict[str, Tuple[float, float]]:
    """``{block path: (mean of a, mean of b)}`` over all coefficient values of each block.

    Args:
        blocks: ``replaced_blocks(model)``; one device-to-host copy for all of them.
    """
    if not blocks:
        return {}
    with torch.no_grad():
        means = torch.stack([
            torch.stack([torch.cat([c[row].reshape(-1).float()
                                    for c in getattr(block, COEFFICIENTS).values()]).mean()
                         for row in (0, 1)]) for _, block in blocks]).tolist()
    return {path: (a, b) for (path, _), (a, b) in zip(blocks, means)}
