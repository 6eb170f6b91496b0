"""How any optimizer steps the RepL coefficients: without weight decay, at their own pace.

**No weight decay.** Decay pulls a parameter towards zero; on ``(a, b)`` it pulls every
synthesised tensor towards zero with them, whatever the loss says. OpenMMLab configs as they ship
decay every parameter (AdamW with 0.05 for Swin, 0.3 for ViT), and a user who only swaps the
backbone type writes no line for the coefficients.

**A learning-rate multiplier** (``repl.coefficient_lr_mult``). A coefficient weighs a whole
tensor: its gradient is ``<dL/dP, P_prev>``, summed over the tensor, and before a batch norm it
only sees the direction of the mix (the norm cancels its scale). Under Adam every parameter moves
by about ``lr`` a step, so a coefficient changes its tensor by ``lr`` relative to it, where the
tensor's own weights would change it by ``lr / rms(P)``, tens of times more; under SGD its step
follows the tensor's norm. The multiplier scales each coefficient's update.

So once a RepL model exists, global optimizer step hooks wrap every step: before it, each
coefficient that the optimizer will update is set aside, and replaced by zeros in a group that
decays (both forms of decay, ``g + wd * p`` and ``p * (1 - lr * wd)``, then see ``p = 0`` and add
nothing); after it, the coefficient is its set-aside value plus ``lr_mult`` times what the step
made of it, its update. The update itself is exactly the optimizer's: these optimizers read a
parameter's value only to decay it (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, NAdam,
RAdam). Other parameters, the param groups, the optimizer state and the schedulers stay as they
are, so checkpoints and resume are unaffected. A group that already gives the coefficients no
decay (``paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)})``) needs no
zeros. Another optimizer's decay is left alone, with a warning at its first step that names the
coefficients and that line; the multiplier still applies.
"""
import logging
import weakref
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                   register_optimizer_step_pre_hook)

from .coefficients import coefficient_lr_mult, is_coefficient

#: ``log(message, level)`` with a ``logging`` level
Log = Callable[[str, int], None]

#: optimizers whose update reads a parameter's value only to decay it
DECAY_ONLY_READERS = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW,
                      torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adadelta,
                      torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam)

#: a coefficient around one step: (tensor, value before the step, zeroed for the step, lr_mult)
_Aside = Tuple[Tensor, Tensor, bool, float]


class CoefficientSteps:
    """The global step pre- and post-hooks; ``install()`` registers them for the process."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self._seen: 'weakref.WeakSet[torch.optim.Optimizer]' = weakref.WeakSet()
        self._aside: 'weakref.WeakKeyDictionary[torch.optim.Optimizer, List[_Aside]]' = \
            weakref.WeakKeyDictionary()

    def before_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        self._finish(optimizer, completed=False)  # a step that raised left them aside
        first = optimizer not in self._seen
        self._seen.add(optimizer)
        known = isinstance(optimizer, DECAY_ONLY_READERS)
        aside: List[_Aside] = []
        decays: Dict[float, int] = {}
        with torch.no_grad():
            for group in optimizer.param_groups:
                decay = float(group.get('weight_decay') or 0)
                for p in group['params']:
                    if p.grad is None or not is_coefficient(p):
                        continue  # the optimizer skips parameters without a gradient
                    if decay:
                        decays[decay] = decays.get(decay, 0) + 1
                    zero = bool(decay) and known
                    mult = coefficient_lr_mult(p)
                    if zero or mult != 1.0:
                        aside.append((p, p.clone(), zero, mult))
                        if zero:
                            p.zero_()
        if aside:
            self._aside[optimizer] = aside
        if first and decays:
            self._say(optimizer, decays, known)

    def after_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        self._finish(optimizer, completed=True)

    def _finish(self, optimizer: torch.optim.Optimizer, completed: bool) -> None:
        """After a step: value before + lr_mult x update; after a failed one: the value back."""
        with torch.no_grad():
            for p, before, zeroed, mult in self._aside.pop(optimizer, ()):
                if not completed:
                    p.copy_(before)
                    continue
                update = p if zeroed else p - before
                p.copy_(before + mult * update)

    def _say(self, optimizer: torch.optim.Optimizer, decays: Dict[float, int],
             known: bool) -> None:
        count, name = sum(decays.values()), type(optimizer).__name__
        line = "paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0.)})"
        if known:
            self.log(f'RepL: {name} decays its parameters, but not the {count} RepL coefficient '
                     f'tensors (weight decay {sorted(decays)}): repl-mm keeps it off them. To '
                     f'say so in the config instead: {line}.', logging.INFO)
        else:
            self.log(f'RepL: {name} applies weight decay to {count} RepL coefficient tensors, '
                     f'and repl-mm does not know how it reads parameters, so it does not keep '
                     f'the decay off them: decay pulls (a, b), and the synthesised weights with '
                     f'them, towards zero. Add to optim_wrapper: {line}.', logging.WARNING)


_steps: Optional[CoefficientSteps] = None


def _log_to_python(message: str, level: int) -> None:
    logging.getLogger('repl_mm').log(level, message)


def install(log: Log = _log_to_python) -> CoefficientSteps:
    """Register the hooks for every optimizer of this process (once); a later call only
    changes where they log."""
    global _steps
    if _steps is None:
        _steps = CoefficientSteps(log)
        register_optimizer_step_pre_hook(_steps.before_step)
        register_optimizer_step_post_hook(_steps.after_step)
    _steps.log = log
    return _steps
