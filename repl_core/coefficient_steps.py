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

**The mechanism: the step runs on a view of the optimizer.** Optimizers are built where repl-mm
has no say (a user's ``torch.optim.AdamW(model.parameters())``, mmengine's constructor with the
config as it ships), so the groups are arranged where every optimizer passes: its step. A global
step pre-hook hands the step, in place of the optimizer, its *view*: a second Python object of
the optimizer's class (a subclass of it, so ``super()`` and ``isinstance`` hold) that shares the
optimizer's instance dictionary (its state, defaults, hooks and every attribute the step writes),
and differs in one attribute, ``param_groups``. Each group that holds coefficients needing other
settings (its weight decay is not 0, or their ``lr_mult`` is not 1) shows up there as runs of
consecutive parameters: the runs of coefficients with ``weight_decay=0.`` and ``lr = group['lr']
* M``, the others with the group's settings. The view's groups are made when the step first reads
them (after every other pre-hook has run). Nothing is swapped on the optimizer itself: a closure,
other hooks, ``state_dict()`` and a scheduler see the real groups at every moment, and a step that
raises leaves nothing behind. The values, gradients and optimizer state (keyed by parameter) are
the same tensors. What the step writes into a group (a counter, an estimate) is written back to the
real group by the post-hook when every run of that group wrote the same; where the runs disagree
(an optimizer that keeps per-group estimates, as D-Adaptation does) the step is refused after the
fact, naming ``paramwise_cfg`` as the way to give it the coefficients' groups for good.

Consequences, each tested (tests/core/test_coefficient_steps.py):

* with ``M = 1`` (the default) the update is bit for bit the ``paramwise_cfg`` one under any
  learning-rate schedule; with ``M != 1`` the coefficients' rate is ``M`` times their group's
  scheduled rate at every step: bit for bit the ``paramwise_cfg`` one without a schedule, or with
  a multiplicative one (warm-up, steps) and ``M`` a power of two; a schedule with an absolute
  floor (``eta_min``) keeps ``M`` times the group's floor where ``paramwise_cfg`` keeps the floor
  itself (write ``lr_mult`` there, and leave ``coefficient_lr_mult=1``, for that);
* an optimizer that steps through another one (``ZeroRedundancyOptimizer``: ``.optim``) is left
  alone and its inner optimizer gets the view, so nothing applies twice; one that shares its
  groups with an inner one (SAM) gets a view of its own, the inner one too;
* a step that raises leaves nothing behind (nothing was swapped on the optimizer);
* ``LBFGS`` takes one group and steps the parameters it was built with: it has no decay, and
  ``lr_mult != 1`` is refused with an error; ``SparseAdam`` (sparse gradients only) and ``Muon``
  (2-D weight matrices only) cannot step coefficients: refused with the fix, a second optimizer.
"""
import itertools
import logging
import weakref
from typing import Dict, List, Optional, Tuple

import torch
from torch.optim import Optimizer
from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                   register_optimizer_step_pre_hook)

from .coefficients import coefficient_lr_mult, is_coefficient
from .errors import ReplError

logger = logging.getLogger(__name__)
#: a group made for a step: (the real group it comes from, the group, its contents as made)
Made = Tuple[dict, dict, dict]

def steps_through_another(optimizer: Optimizer) -> bool:
    """Whether ``optimizer`` updates its parameters through an inner optimizer (``.optim``:
    ``ZeroRedundancyOptimizer``, ``PostLocalSGDOptimizer``), whose own step gets the view."""
    return isinstance(getattr(optimizer, 'optim', None), Optimizer)


def needs_view(param_groups: List[dict]) -> bool:
    """Whether a group holds coefficients that need other settings than the group's."""
    return any(is_coefficient(p) and ((group.get('weight_decay') or 0)
                                      or coefficient_lr_mult(p) != 1.0)
               for group in param_groups for p in group['params'])


def coefficient_view(param_groups: List[dict]) -> Tuple[List[dict], List[Made]]:
    """The param groups as the step sees them, and ``(real group, view group, its contents as
    made)`` of every group made for it.

    Each group holding coefficients that need other settings is cut into runs of consecutive
    parameters: runs of other parameters keep the group's settings, runs of coefficients (of one
    ``lr_mult``) get ``weight_decay=0.`` and ``lr * lr_mult``. The parameters keep their order
    across the groups, so an optimizer that reduces over all of them (SAM's gradient norm) sums
    in the same order. Every other group is the real dict itself.
    """
    view: List[dict] = []
    made: List[Made] = []
    for group in param_groups:
        mults = [coefficient_lr_mult(p) if is_coefficient(p) else None for p in group['params']]
        decay = group.get('weight_decay') or 0
        if all(m is None or (m == 1.0 and not decay) for m in mults):
            view.append(group)
            continue
        for mult, run in itertools.groupby(zip(mults, group['params']), key=lambda x: x[0]):
            settings = dict(group, params=[p for _, p in run])
            if mult is not None:
                if 'weight_decay' in group:
                    settings['weight_decay'] = 0.
                if mult != 1.0:
                    settings['lr'] = _scaled_lr(group['lr'], mult)
            view.append(settings)
            made.append((group, settings, dict(settings)))
    return view, made


def _scaled_lr(lr, mult: float):
    if lr is None:
        raise ReplError(f'An optimizer group has no learning rate (lr=None: a relative step '
                        f'size), so repl.coefficient_lr_mult={mult:g} cannot scale it: set '
                        f'repl.coefficient_lr_mult=1.')
    return lr * mult


class _StepView:
    """Mixed into a subclass of each optimizer class: its instances share an optimizer's
    ``__dict__`` and show ``param_groups`` as ``coefficient_view`` of the optimizer's, made at
    the first read."""

    __slots__ = ('made', '_groups')

    @property
    def param_groups(self) -> List[dict]:
        if self._groups is None:
            self._groups, self.made = coefficient_view(self.__dict__['param_groups'])
        return self._groups

    @param_groups.setter
    def param_groups(self, groups: List[dict]) -> None:
        self.__dict__['param_groups'] = groups
        self._groups = None


_VIEW_CLASSES: Dict[type, type] = {}


def step_view(optimizer: Optimizer) -> Optimizer:
    """A view of ``optimizer`` for one step (see the module docstring)."""
    cls = type(optimizer)
    if cls not in _VIEW_CLASSES:
        _VIEW_CLASSES[cls] = type(cls.__name__, (_StepView, cls),
                                  dict(__slots__=(), __module__=cls.__module__,
                                       __qualname__=cls.__qualname__))
    view = object.__new__(_VIEW_CLASSES[cls])
    view.__dict__ = optimizer.__dict__  # the same state, defaults, hooks and attributes
    view._groups, view.made = None, []
    return view


def _same(a, b) -> bool:
    if a is b:
        return True
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and torch.equal(a, b)
    return a == b


def write_back(optimizer: Optimizer, made: List[Made]) -> None:
    """Copy what the step wrote into the view's groups (``made`` by ``coefficient_view``) back
    into the real groups; refuse where the runs of one group wrote different values."""
    written: Dict[int, Dict[str, list]] = {}
    groups: Dict[int, dict] = {}
    for real, group, before in made:
        groups[id(real)] = real
        for key, value in group.items():
            if key != 'params' and (key not in before or value is not before[key]):
                written.setdefault(id(real), {}).setdefault(key, []).append(value)
    for real_id, keys in written.items():
        runs = sum(1 for real, _, _ in made if id(real) == real_id)
        for key, values in keys.items():
            if len(values) != runs or not all(_same(v, values[0]) for v in values):
                raise ReplError(
                    f'{type(optimizer).__name__} wrote {key!r} into its parameter groups during '
                    f'a step, differently for the RepL coefficients than for the other parameters '
                    f'of their group: it keeps state per group, and repl-mm gives the '
                    f'coefficients groups of their own only for the length of a step. Give them '
                    f'groups of their own when the optimizer is built: '
                    f"paramwise_cfg=dict(custom_keys={{'repl_coefficients': dict(decay_mult=0.)}})"
                    f' in optim_wrapper (in plain PyTorch, a param group of their own with '
                    f'weight_decay=0).')
            groups[real_id][key] = values[0]


class CoefficientGroups:
    """The global step pre- and post-hooks; ``install()`` registers them for the process."""

    def __init__(self) -> None:
        self._told: 'weakref.WeakSet[Optimizer]' = weakref.WeakSet()

    def before_step(self, optimizer: Optimizer, args, kwargs) -> Optional[tuple]:
        """Hand the step a view of ``optimizer`` in its place, where the coefficients need it."""
        if steps_through_another(optimizer) or isinstance(optimizer, _StepView):
            return None
        refuse_unsteppable(optimizer)
        if not needs_view(optimizer.param_groups):
            return None
        if optimizer not in self._told:
            self._told.add(optimizer)
            self._say(optimizer)
        return (step_view(optimizer), *args[1:]), kwargs

    def after_step(self, optimizer: Optimizer, args, kwargs) -> None:
        """Write back what the step wrote into the view's groups (not for a nested step of the
        view itself: ``super().step()`` in a subclass)."""
        view = args[0] if args else None
        if isinstance(view, _StepView) and not isinstance(optimizer, _StepView):
            write_back(optimizer, view.made)

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
        logger.info(f'RepL: {type(optimizer).__name__} steps the {count} RepL coefficient '
                    f'tensors {" and ".join(what)}, in groups of their own for each step, as '
                    f'mmengine\'s paramwise_cfg would (repl_core.coefficient_steps).')


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


def install() -> CoefficientGroups:
    """Register the hooks for every optimizer of this process, once: the one process-wide hook
    the contract needs (an optimizer built before or after the model, by any code, steps
    through it). Its one line per optimizer goes to the ``repl_core`` logger."""
    global _groups
    if _groups is None:
        _groups = CoefficientGroups()
        register_optimizer_step_pre_hook(_groups.before_step)
        register_optimizer_step_post_hook(_groups.after_step)
    return _groups
