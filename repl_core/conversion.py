"""Start a RepL backbone from a pretrained plain one, keeping what the plain one computes.

Loading a plain checkpoint fills every ordinary block; the replaced blocks' own weights have no
place to go. How their coefficients then start (``repl.warm_start``):

* ``'weights'``: ``(a, b)`` fitted by least squares so that ``a * P_prev + b * P_next`` is closest
  to the block's own ``P`` (``state_dict_guard.warm_start_coefficients``). Close weights are not
  close functions: a conv before a batch norm is scale-free, and the norm's statistics were
  measured for the block's own weights;
* ``'identity'``: the coefficients of the tensors that end the block's residual branch (a ResNet
  block's last norm, a transformer block's output projections; a light surrogate's norm or
  linear map) are zero, so the block starts as its shortcut and the converted network computes
  exactly the network with those blocks deleted; training can only add to it;
* ``'activations'``: fitted on batches of training data so that the replaced block reproduces
  the plain network's activation after that block (``fit_to_activations``), its batch-norm
  statistics re-estimated for its synthesised weights. Needs data, so it runs in
  ``tools/convert.py``, not when a state dict is loaded.
"""
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

from .coefficients import COEFFICIENTS, replaced_blocks
from .errors import ReplError

#: captured ``(args, kwargs)`` of a block's forward
Call = Tuple[tuple, dict]


def residual_keys(block: nn.Module) -> List[str]:
    """The coefficient keys that, zero, make ``block`` its shortcut: those of the tensors that
    end its residual branches (``ReplCoefficients.residual_ends``).

    With ``'submodule'`` granularity such a key also weighs the tensors inside its branch (one
    pair for attention's ``qkv`` and output projection): zero, the whole branch is zero, still
    exactly the shortcut. The branch's output is then ``c * bias + O(c^2)`` in the key's
    coefficients ``c`` (every other term multiplies two synthesised tensors), so the bias that
    ends it gives the key a first-order gradient and training moves it off zero.

    Raises:
        ReplError: a key that also weighs tensors inside its branch ends it with no bias: zero,
            it would get no gradient and the block would stay its shortcut.
    """
    coefficients = getattr(block, COEFFICIENTS)
    ends = set(coefficients.residual_ends)
    keys: Dict[str, List[str]] = {}
    for owner_path, owner in block.named_modules():
        if not parametrize.is_parametrized(owner):
            continue
        for name, parametrizations in owner.parametrizations.items():
            path = f'{owner_path}.{name}' if owner_path else name
            keys.setdefault(parametrizations[0].key, []).append(path)
    chosen = sorted(k for k, paths in keys.items() if set(paths) & ends)
    stuck = sorted(k for k in chosen if not set(keys[k]) <= ends
                   and not any(p.endswith('bias') for p in set(keys[k]) & ends))
    if stuck:
        raise ReplError(
            f"repl.warm_start='identity' starts each replaced block as its shortcut by zeroing the "
            f'coefficients that end its residual branch ({", ".join(sorted(ends))}), but '
            f'{stuck} also weigh tensors inside it and no bias ends it: zero, they would get no '
            f'gradient and the block would stay its shortcut. Ways out: '
            f"granularity='tensor' or 'channel' (the branch ends get coefficients of their own); "
            f"warm_start='weights' (least squares on the pretrained weights); "
            f"warm_start='activations' (fitted to the pretrained network's activations by "
            f"tools/convert.py); or warm_start=False (keep repl.init).")
    if not chosen:
        raise ReplError(f'none of the branch ends {sorted(ends)} is synthesised in this block.')
    return chosen


def zero_residual_branch(block: nn.Module) -> List[str]:
    """Make ``block`` its shortcut (``'identity'``); returns the coefficient keys zeroed."""
    keys = residual_keys(block)
    coefficients = getattr(block, COEFFICIENTS)
    with torch.no_grad():
        for key in keys:
            coefficients[key].zero_()
    return keys


def _first_tensor(output) -> Tensor:
    return output if torch.is_tensor(output) else output[0]


def reestimate_norm_statistics(block: nn.Module, calls: Sequence[Call]) -> int:
    """Re-measure the running statistics of the batch norms in ``block`` on ``calls`` (its
    inputs): a cumulative average over all of them, as for a freshly built norm. Returns how
    many norms were re-measured."""
    norms = [m for m in block.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    saved = [(m, m.momentum, m.training) for m in norms]
    was_training = block.training
    try:
        block.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative moving average
            norm.train()
        with torch.no_grad():
            for args, kwargs in calls:
                block(*args, **kwargs)
    finally:
        for norm, momentum, training in saved:
            norm.momentum = momentum
            norm.train(training)
        block.train(was_training)
    return len(norms)


def relative_error(block: nn.Module, calls: Sequence[Call], targets: Sequence) -> float:
    """``||block(x) - y|| / ||y||`` over ``calls`` and their ``targets``, in eval mode."""
    was_training = block.training
    block.eval()
    error = norm = 0.0
    with torch.no_grad():
        for (args, kwargs), target in zip(calls, targets):
            out, ref = _first_tensor(block(*args, **kwargs)), _first_tensor(target)
            error += (out - ref).float().square().sum().item()
            norm += ref.float().square().sum().item()
    block.train(was_training)
    return (error / max(norm, 1e-30)) ** 0.5


@dataclass
class ActivationFit:
    """What ``fit_to_activations`` did to one block."""

    error_before: float
    error_after: float
    steps: int
    norms_reestimated: int
    history: List[float] = field(default_factory=list)


def fit_to_activations(block: nn.Module, calls: Sequence[Call], targets: Sequence,
                       steps: int = 150, lr: float = 0.02, rounds: int = 3) -> ActivationFit:
    """Fit ``block``'s coefficients so that ``block(x)`` reproduces ``targets`` on ``calls``.

    ``rounds`` times: re-estimate the block's batch-norm statistics for its current synthesised
    weights, then take ``steps // rounds`` Adam steps on the mean squared error of its outputs
    (eval mode, so the norms use those statistics). After each round the statistics are
    re-estimated and the error measured; the block keeps the best of the start and the rounds.
    Only the coefficients and the block's norm statistics change: the neighbours, adapters and
    everything else stay.
    """
    coefficients = [p for p in getattr(block, COEFFICIENTS).parameters()]
    norms = reestimate_norm_statistics(block, calls)
    before = relative_error(block, calls, targets)
    if not coefficients or steps <= 0:
        return ActivationFit(before, before, 0, norms)
    originals = [p.requires_grad for p in coefficients]
    for p in coefficients:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(coefficients, lr=lr)
    history, was_training = [], block.training
    best = (before, _snapshot(block, coefficients))
    try:
        block.eval()
        per_round = max(steps // rounds, 1)
        for step in range(per_round * rounds):
            if step and step % per_round == 0:
                best = _keep_best(block, coefficients, calls, targets, best)
            (args, kwargs), target = calls[step % len(calls)], targets[step % len(calls)]
            out, ref = _first_tensor(block(*args, **kwargs)), _first_tensor(target)
            loss = (out - ref).float().square().mean() / ref.float().square().mean().clamp_min(
                1e-12)
            grads = torch.autograd.grad(loss, coefficients, allow_unused=True)
            for p, g in zip(coefficients, grads):
                p.grad = g
            optimizer.step()
            history.append(loss.item())
        best = _keep_best(block, coefficients, calls, targets, best)
        _restore(block, coefficients, best[1])
    finally:
        for p, trainable in zip(coefficients, originals):
            p.grad = None
            p.requires_grad_(trainable)
        block.train(was_training)
    return ActivationFit(before, best[0], per_round * rounds, norms, history)


def _snapshot(block: nn.Module, coefficients: List[Tensor]) -> tuple:
    """The coefficients and norm statistics of ``block``, copied."""
    norms = [m for m in block.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    return ([p.detach().clone() for p in coefficients],
            [(m.running_mean.clone(), m.running_var.clone()) for m in norms])


def _restore(block: nn.Module, coefficients: List[Tensor], snapshot: tuple) -> None:
    values, stats = snapshot
    norms = [m for m in block.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    with torch.no_grad():
        for p, value in zip(coefficients, values):
            p.copy_(value)
        for m, (mean, var) in zip(norms, stats):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)


def _keep_best(block: nn.Module, coefficients: List[Tensor], calls: Sequence[Call],
               targets: Sequence, best: tuple) -> tuple:
    """Re-measure the norms for the current coefficients; the better of that and ``best``."""
    reestimate_norm_statistics(block, calls)
    error = relative_error(block, calls, targets)
    block.eval()
    return (error, _snapshot(block, coefficients)) if error < best[0] else best


def backbone_calls(backbone: nn.Module, images: Iterable[Tensor],
                   blocks: Sequence[nn.Module]) -> Dict[int, Tuple[List[Call], list]]:
    """Inputs and outputs of each of ``blocks`` while ``backbone`` runs on ``images``, keyed by
    the blocks' ``id``."""
    captured = {id(block): ([], []) for block in blocks}
    handles = []
    for block in blocks:
        calls, outputs = captured[id(block)]

        def record(_, args, kwargs, output, calls=calls, outputs=outputs):
            calls.append((tuple(a.detach() if torch.is_tensor(a) else a for a in args), kwargs))
            outputs.append(output.detach() if torch.is_tensor(output) else output)

        handles.append(block.register_forward_hook(record, with_kwargs=True))
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            for batch in images:
                backbone(batch)
    finally:
        for handle in handles:
            handle.remove()
        backbone.train(was_training)
    return captured


@dataclass
class BlockConversion:
    """How one replaced block of a converted backbone starts.

    ``output_error``: ``||block(x) - y_plain|| / ||y_plain||`` on the conversion batches, ``x``
    the block's input in the converted network, ``y_plain`` the plain network's activation after
    the same block; ``None`` without batches.
    """

    path: str
    warm_start: Optional[str]
    output_error: Optional[float] = None
    fit: Optional[ActivationFit] = None


def convert_from_plain(plain: nn.Module, repl: nn.Module, images: Sequence[Tensor] = (),
                       steps: int = 150) -> List[BlockConversion]:
    """Load the plain backbone ``plain`` into its RepL twin ``repl`` and start the replaced
    blocks as ``repl``'s ``warm_start`` says; ``'activations'`` fits them one after the other, in
    forward order, on ``images`` (batches of backbone inputs), so that each block also makes up
    for the blocks fitted before it.

    Returns:
        One ``BlockConversion`` per replaced block, in forward order.
    """
    mode = getattr(repl, 'repl_config').warm_start_mode
    if mode == 'activations' and not images:
        raise ReplError("repl.warm_start='activations' fits the replaced blocks to the plain "
                        'network\'s activations: it needs batches of training images.')
    repl.load_state_dict(plain.state_dict(), strict=False)
    plain_modules = dict(plain.named_modules())
    report = []
    for path, block in replaced_blocks(repl):
        entry = BlockConversion(path, mode)
        if images:
            plain_block = plain_modules[path]
            calls, _ = backbone_calls(repl, images, [block])[id(block)]
            _, targets = backbone_calls(plain, images, [plain_block])[id(plain_block)]
            if mode == 'activations':
                entry.fit = fit_to_activations(block, calls, targets, steps)
            entry.output_error = relative_error(block, calls, targets)
        report.append(entry)
    return report
