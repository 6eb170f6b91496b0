"""Fold replaced blocks into ordinary blocks with materialised weights.

After training, a replaced block is a fixed function of trained tensors. Folding evaluates every
synthesised tensor once, stores it as an ordinary parameter of the block and removes the
coefficients, adapters and parametrizations:

* a fused block becomes exactly the plain block (same class, same state-dict keys), so a folded
  backbone loads into the plain framework class with ``strict=True`` and gives the same outputs;
* a light surrogate becomes a small ordinary module of repl-mm (its class is repl-mm's, so
  inference with it still needs repl-mm installed).
"""
from typing import List

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

from .coefficients import ADAPTER_MODULES, COEFFICIENTS, replaced_blocks
from .synthesis_batching import block_syntheses


def fold_replaced_blocks(model: nn.Module) -> List[str]:
    """Fold every replaced block of ``model`` in place; return the folded blocks' paths.

    Folded parameters are trainable (``requires_grad=True``), as in a plain block.
    """
    folded = []
    for path, block in replaced_blocks(model):
        for group in block_syntheses(block):
            group.reattach()  # onto norms a SyncBN converter rebuilt
            group.remove()
        for module in list(block.modules()):
            if not parametrize.is_parametrized(module):
                continue
            for name in list(module.parametrizations.keys()):
                with torch.no_grad():
                    value = getattr(module, name).detach().clone()
                _remove(module, name)
                module.register_parameter(name, nn.Parameter(value))
            if isinstance(module, _BatchNorm):
                module.affine = True  # it owns its affine parameters again
        delattr(block, COEFFICIENTS)
        delattr(block, ADAPTER_MODULES)
        folded.append(path)
    return folded


def _remove(module: nn.Module, name: str) -> None:
    """Drop the parametrization of ``module.<name>`` and whatever tensor it left behind."""
    parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    delattr(module, name)
