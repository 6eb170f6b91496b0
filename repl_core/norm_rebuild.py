"""Synthesis carried over to a norm layer that a converter rebuilds (SyncBN <-> BN).

A batch norm whose affine parameters are synthesised says ``affine=False`` (``synthesis.attach``).
So converters that rebuild norm layers (``SyncBatchNorm.convert_sync_batchnorm``, mmengine's
``convert_sync_batchnorm`` and ``revert_sync_batchnorm``) build the new norm without affine
parameters, with the running statistics and the ``parametrizations`` child carried over, instead
of failing on the assignment of a computed tensor to a parameter. The new norm's class computes no
``weight`` and ``bias`` from that child: the synthesis must be attached to it again.

A converter is a function of the old norm that returns a new one; it calls no hook of the model
or of either norm, and the new norm exists only inside it. The one step of it that torch lets
anything see is the registration of the old norm's children in the new one (``add_module``), and
the only hook torch offers on that is process-wide
(``torch.nn.modules.module.register_module_module_registration_hook``: every module registration
in the process). So ``carry_synthesis_over`` is registered there, once (``install_rebuild_hook``,
when a backbone is replaced), and acts on nothing but a ``parametrizations`` dict of
``NeighbourSynthesis`` registered in a module whose class is not parametrized. Should a tool move
that child some other way, the block re-attaches its norms before its next forward, before its
backbone synthesises and before folding (``synthesis_batching.BlockSynthesis.reattach``).
"""
from typing import Optional

import torch
from torch import nn

from .synthesis import NeighbourSynthesis, attach


def carry_synthesis_over(module: nn.Module, name: str,
                         submodule: Optional[nn.Module]) -> Optional[nn.Module]:
    """Global module-registration hook: attach synthesis to a norm that a converter rebuilt.

    A converter builds the new norm, then registers the old norm's children in it; one of them
    is the old norm's ``parametrizations``. Returns the new norm's own ``parametrizations`` to
    register instead, or ``None`` (nothing to do) for every other registration.
    """
    if name != 'parametrizations' or not isinstance(submodule, nn.ModuleDict):
        return None
    syntheses = [entry[0] for entry in submodule.values()
                 if len(entry) and isinstance(entry[0], NeighbourSynthesis)]
    if not syntheses or any(isinstance(getattr(type(module), s.target_name, None), property)
                            for s in syntheses):
        return None  # parametrize building its own dict, or an already parametrized module
    for synthesis in syntheses:
        attach(module, synthesis)
    return module._modules['parametrizations']


_rebuild_hook = []


def install_rebuild_hook() -> None:
    """Register ``carry_synthesis_over`` for the process (once)."""
    if not _rebuild_hook:
        _rebuild_hook.append(
            torch.nn.modules.module.register_module_module_registration_hook(
                carry_synthesis_over))
