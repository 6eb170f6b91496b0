"""No weight decay on RepL coefficients, whatever optimizer a config builds.

Decay pulls a parameter towards zero; on ``(a, b)`` it pulls every synthesised tensor towards zero
with them, whatever the loss says. OpenMMLab configs as they ship decay every parameter (AdamW
with 0.05 for Swin, 0.3 for ViT), and a user who only swaps the backbone type writes no line for
the coefficients. So once a RepL model exists, global optimizer step hooks keep the decay off the
coefficients: before the step, each coefficient that the optimizer will update is set aside and
replaced by zeros, so both forms of decay (``g + wd * p``, ``p * (1 - lr * wd)``) see ``p = 0``
and add nothing; after the step, the set-aside value is added back to what the step made of the
zeros, its update. The update itself is exactly the optimizer's: these optimizers read a
parameter's value only to decay it (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, NAdam,
RAdam).

Other parameters, the param groups, the optimizer state and the schedulers stay as they are, so
checkpoints and resume are unaffected. A group that already gives the coefficients no decay
(``paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)})``) needs nothing.
Any other optimizer is left alone, with a warning at its first step that names the coefficients
and that line.
"""
import logging
import weakref
from typing import Callable, Dict, Optional

import torch
from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                   register_optimizer_step_pre_hook)

from .coefficients import is_coefficient

#: ``log(message, level)`` with a ``logging`` level
Log = Callable[[str, int], None]

#: optimizers whose update reads a parameter's value only to decay it
DECAY_ONLY_READERS = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW,
                      torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adadelta,
                      torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam)


class CoefficientDecayGuard:
    """The global step pre- and post-hooks; ``install()`` registers them for the process."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self._seen: 'weakref.WeakSet[torch.optim.Optimizer]' = weakref.WeakSet()
        self._set_aside: 'weakref.WeakKeyDictionary[torch.optim.Optimizer, Dict[int, tuple]]' \
            = weakref.WeakKeyDictionary()

    def before_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        self._restore(optimizer, add=False)  # a step that raised left them aside
        decayed = [(group['weight_decay'], p) for group in optimizer.param_groups
                   if group.get('weight_decay') for p in group['params'] if is_coefficient(p)]
        first = optimizer not in self._seen
        self._seen.add(optimizer)
        if not decayed:
            return
        if not isinstance(optimizer, DECAY_ONLY_READERS):
            if first:
                self.log(f'RepL: {type(optimizer).__name__} applies weight decay to '
                         f'{len(decayed)} RepL coefficient tensors, and repl-mm does not know '
                         f'how it reads parameters, so it does not keep the decay off them: '
                         f'decay pulls (a, b), and the synthesised weights with them, towards '
                         f'zero. Add to optim_wrapper: paramwise_cfg=dict(custom_keys='
                         f"{{'repl_coefficients': dict(decay_mult=0.)}}).", logging.WARNING)
            return
        set_aside = {}
        with torch.no_grad():
            for _, p in decayed:
                if p.grad is not None:  # the optimizer skips the others
                    set_aside[id(p)] = (p, p.clone())
                    p.zero_()
        self._set_aside[optimizer] = set_aside
        if first:
            self.log(f'RepL: {type(optimizer).__name__} decays its parameters, but not the '
                     f'{len(decayed)} RepL coefficient tensors (weight decay '
                     f'{sorted({float(d) for d, _ in decayed})}): repl-mm keeps it off them. To '
                     f'say so in the config instead: paramwise_cfg=dict(custom_keys='
                     f"{{'repl_coefficients': dict(decay_mult=0.)}}).", logging.INFO)

    def after_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        self._restore(optimizer, add=True)

    def _restore(self, optimizer: torch.optim.Optimizer, add: bool) -> None:
        """Add the set-aside values to the steps' updates, or put them back as they were."""
        set_aside = self._set_aside.pop(optimizer, None)
        with torch.no_grad():
            for p, value in (set_aside or {}).values():
                p.add_(value) if add else p.copy_(value)


_guard: Optional[CoefficientDecayGuard] = None


def _log_to_python(message: str, level: int) -> None:
    logging.getLogger('repl_mm').log(level, message)


def install(log: Log = _log_to_python) -> CoefficientDecayGuard:
    """Register the guard for every optimizer of this process (once); a later call only
    changes where it logs."""
    global _guard
    if _guard is None:
        _guard = CoefficientDecayGuard(log)
        register_optimizer_step_pre_hook(_guard.before_step)
        register_optimizer_step_post_hook(_guard.after_step)
    _guard.log = log
    return _guard
