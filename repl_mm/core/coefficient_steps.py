"""How any optimizer steps the RepL coefficients: in groups of their own, without weight decay,
at their own learning rate.

**No weight decay.** Decay pulls a parameter towards zero; on ``(a, b)`` it pulls every
synthesised tensor towards zero with them, whatever the loss says. OpenMMLab configs as they ship
decay every parameter (AdamW with 0.05 for Swin, 0.3 for ViT), and a user who only swaps the
backbone type writes no line for the coefficients.

**A learning-rate multiplier** (``repl.coefficient_lr_mult``). A coefficient weighs a whole
tensor: its gradient is ``<dL/dP, P_prev>``, summed over the tensor, and before a batch norm it
only sees the direction of the mix (the norm cancels its scale). Under Adam every parameter moves
by about ``lr`` a step, so a coefficient changes its tensor by ``lr`` relative to it, where the
tensor's own weights would change it by ``lr / rms(P)``, tens of times more.

**The contract.** Whatever group an optimizer was given the coefficients in, they step exactly as
they would in groups of their own built by mmengine's
``paramwise_cfg=dict(custom_keys={'repl_coefficients': dict(decay_mult=0., lr_mult=M)})``, with
``M = repl.coefficient_lr_mult``: the optimizer's own update, with its own kernels, no decay and
``lr * M``. No code ever sees a coefficient value other than its true one.

**The mechanism: a view of the param groups for the length of each step.** Optimizers are built
where repl-mm has no say (a user's ``torch.optim.AdamW(model.parameters())``, mmengine's
constructor with the config as it ships), so the groups are arranged where every optimizer passes:
its step. Global step pre- and post-hooks swap ``optimizer.param_groups`` for a view while the
step runs: each group that holds coefficients needing other settings (its weight decay is not 0,
or their ``lr_mult`` is not 1) shows up as the group without them and, per multiplier, a copy of
it holding only them, with ``weight_decay=0.`` and ``lr = group['lr'] * M``. The real list and
its dicts are never changed; the optimizer state is keyed by parameter, so it is the same state;
the values and gradients are untouched. Outside a step, schedulers, ``state_dict()``, checkpoints
and resume see the groups as they were built. A step that raises leaves the view in place until
the optimizer's next step, ``state_dict()`` or ``load_state_dict()``, each of which puts the real
groups back first.

Consequences, each tested (tests/core/test_coefficient_steps.py):

* with ``M = 1`` (the default) the update is bit for bit the ``paramwise_cfg`` one under any
  learning-rate schedule; with ``M != 1`` the coefficients' rate is ``M`` times their group's
  scheduled rate at every step: bit for bit the ``paramwise_cfg`` one without a schedule, or with
  a multiplicative one (warm-up, steps) and ``M`` a power of two; a schedule with an absolute
  floor (``eta_min``) keeps ``M`` times the group's floor where ``paramwise_cfg`` keeps the floor
  itself (write ``lr_mult`` there, and leave ``coefficient_lr_mult=1``, for that);
* an optimizer that steps through another one (``ZeroRedundancyOptimizer``: ``.optim``) is left
  alone and its inner optimizer gets the view, so nothing applies twice; one that shares its
  groups with an inner one (SAM, Lookahead) gets a view of its own, the inner one too;
* ``LBFGS`` takes one group and steps the parameters it was built with: it has no decay, and
  ``lr_mult != 1`` is refused with an error; ``SparseAdam`` (sparse gradients only) and ``Muon``
  (2-D weight matrices only) cannot step coefficients: refused with the fix, a second optimizer.
"""
import itertools
import logging
import weakref
from typing import Callable, List, Optional

import torch
from torch.optim import Optimizer
from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                   register_optimizer_step_pre_hook)

from .coefficients import coefficient_lr_mult, is_coefficient
from .errors import ReplError

#: ``log(message, level)`` with a ``logging`` level
Log = Callable[[str, int], None]

def steps_through_another(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` updates its parameters through an inner optimizer (``.optim``:
    ``ZeroRedundancyOptimizer``, ``PostLocalSGDOptimizer``), whose own step gets the view."""
    return isinstance(getattr(optimizer, 'optim', None), Optimizer)


def coefficient_view(param_groups: List[dict]) -> Optional[List[dict]]:
    """The param groups as the optimizer sees them during a step, or ``None`` if the
    coefficients need nothing (no decay reaches them and every ``lr_mult`` is 1).

    Each group holding coefficients that need other settings is cut into runs of consecutive
    parameters: runs of other parameters keep the group's settings, runs of coefficients (of one
    ``lr_mult``) get ``weight_decay=0.`` and ``lr * lr_mult``. The parameters keep their order
    across the groups, so an optimizer that reduces over all of them (SAM's gradient norm) sums
    in the same order. Every other group is the real dict itself.
    """
    view: List[dict] = []
    changed = False
    for group in param_groups:
        mults = [coefficient_lr_mult(p) if is_coefficient(p) else None for p in group['params']]
        decay = group.get('weight_decay') or 0
        if all(m is None or (m == 1.0 and not decay) for m in mults):
            view.append(group)
            continue
        changed = True
        for mult, run in itertools.groupby(zip(mults, group['params']), key=lambda x: x[0]):
            settings = dict(group, params=[p for _, p in run])
            if mult is not None:
                if 'weight_decay' in group:
                    settings['weight_decay'] = 0.
                if mult != 1.0:
                    settings['lr'] = group['lr'] * mult
            view.append(settings)
    return view if changed else None


class CoefficientGroups:
    """The global step pre- and post-hooks; ``install()`` registers them for the process."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self._real: 'weakref.WeakKeyDictionary[Optimizer, List[dict]]' = \
            weakref.WeakKeyDictionary()
        self._told: 'weakref.WeakSet[Optimizer]' = weakref.WeakSet()

    def before_step(self, optimizer: Optimizer, args, kwargs) -> None:
        self.restore(optimizer)  # a step that raised left its view
        if steps_through_another(optimizer):
            return
        refuse_unsteppable(optimizer)
        view = coefficient_view(optimizer.param_groups)
        if view is None:
            return
        if optimizer not in self._told:
            self._told.add(optimizer)
            optimizer.register_state_dict_pre_hook(self.restore)
            optimizer.register_load_state_dict_pre_hook(lambda o, state: self.restore(o))
            self._say(optimizer)
        self._real[optimizer] = optimizer.param_groups
        optimizer.param_groups = view

    def after_step(self, optimizer: Optimizer, args, kwargs) -> None:
        self.restore(optimizer)

    def restore(self, optimizer: Optimizer) -> None:
        """Put the real param groups back, if a view is in place."""
        real = self._real.pop(optimizer, None)
        if real is not None:
            optimizer.param_groups = real

    def _say(self, optimizer: Optimizer) -> None:
        count, decays, mults = 0, set(), set()
        for group in optimizer.param_groups:
            for p in group['params']:
                if is_coefficient(p):
                    count += 1
                    decays.add(float(group.get('weight_decay') or 0))
                    mults.add(coefficient_lr_mult(p))
        decays.discard(0.)
        what = [f'without its weight decay {sorted(decays)}'] if decays else []
        what += [f'at {m:g}x their group\'s learning rate' for m in sorted(mults) if m != 1.0]
        self.log(f'RepL: {type(optimizer).__name__} steps the {count} RepL coefficient tensors '
                 f'{" and ".join(what)}, in groups of their own for each step, as mmengine\'s '
                 f'paramwise_cfg would (repl_mm.core.coefficient_steps).', logging.INFO)


def refuse_unsteppable(optimizer: Optimizer) -> None:
    """Raise for an optimizer that cannot step the coefficients it holds as the contract says."""
    if isinstance(optimizer, torch.optim.LBFGS):
        mults = {coefficient_lr_mult(p) for p in optimizer.param_groups[0]['params']
                 if is_coefficient(p)}
        if mults - {1.0}:
            raise ReplError(
                f'LBFGS takes one parameter group and steps the parameters it was built with, so '
                f'repl.coefficient_lr_mult={sorted(mults - {1.0})[0]:g} cannot apply to the '
                f'coefficients: set repl.coefficient_lr_mult=1 (LBFGS has no weight decay to '
                f'keep off them), or step them with another optimizer.')
        return
    muon = getattr(torch.optim, 'Muon', None)
    for kind, reason in ((torch.optim.SparseAdam, 'takes sparse gradients only (embeddings); '
                          'the coefficients\' gradients are dense'),
                         (muon, 'orthogonalises the updates of 2-D weight matrices; '
                          'a (2, C_out) coefficient is not one')):
        if kind is None or not isinstance(optimizer, kind):
            continue
        count = sum(is_coefficient(p) for g in optimizer.param_groups for p in g['params'])
        if count:
            raise ReplError(
                f'{type(optimizer).__name__} {reason}, and it holds {count} RepL coefficient '
                f'tensors. Give them to a second optimizer, e.g. torch.optim.AdamW([p for n, p in '
                f'model.named_parameters() if \'repl_coefficients\' in n], weight_decay=0.), '
                f'and the other parameters to {type(optimizer).__name__}.')


_groups: Optional[CoefficientGroups] = None


def _log_to_python(message: str, level: int) -> None:
    logging.getLogger('repl_mm').log(level, message)


def install(log: Log = _log_to_python) -> CoefficientGroups:
    """Register the hooks for every optimizer of this process (once); a later call only
    changes where they log."""
    global _groups
    if _groups is None:
        _groups = CoefficientGroups(log)
        register_optimizer_step_pre_hook(_groups.before_step)
        register_optimizer_step_post_hook(_groups.after_step)
    _groups.log = log
    return _groups
