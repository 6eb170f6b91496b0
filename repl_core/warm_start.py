"""Where a replaced block's coefficients start when a plain (pretrained) network is loaded.

The only place a start is computed. Loading a plain checkpoint fills every ordinary block; the
replaced blocks' own weights have no place to go. How their coefficients then start
(``repl.warm_start``, resolved by ``settings``):

* ``'weights'``: ``(a, b)`` fitted by least squares so that ``a * P_prev + b * P_next`` is closest
  to the block's own ``P`` (``fit_to_weights``). Close weights are not close functions: a conv
  before a batch norm is scale-free, and the norm's statistics were measured for the block's own
  weights. A light surrogate computes another function than the block, so it keeps ``repl.init``;
* ``'identity'``: the coefficients of the tensors that end the block's residual branch (a ResNet
  block's last norm, a transformer block's output projections; a light surrogate's norm or
  linear map) are zero (``start_as_shortcut``), so the block starts as its shortcut and the
  converted network computes exactly the network with those blocks deleted; training can only
  add to it;
* ``'activations'``: fitted on batches of training data so that the replaced block reproduces
  the plain network's activation after that block (``fit_to_activations``), its batch-norm
  statistics re-estimated for its synthesised weights. Needs data, so it runs in
  ``convert_from_plain`` (``tools/convert.py``); a plain state dict loaded directly starts as
  ``'identity'``.

``start_from_plain_state_dict`` is what the load guard (``state_dict_guard``) calls for a plain
state dict; ``convert_from_plain`` is what ``tools/convert.py`` calls with data.
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


def start_as_shortcut(module: nn.Module, state_dict: Dict[str, Tensor], prefix: str) -> None:
    """``'identity'``: write zeros into ``state_dict`` for the coefficients that end each replaced
    block's residual branch (``residual_keys``), so the load starts every block as its shortcut."""
    for path, block in replaced_blocks(module):
        coefficients = getattr(block, COEFFICIENTS)
        for key in residual_keys(block):
            state_dict[f'{prefix}{path}.{COEFFICIENTS}.{key}'] = torch.zeros_like(
                coefficients[key])


def fit_to_weights(module: nn.Module, blocks: List[Tuple[str, nn.Module]],
                   incoming: Dict[str, str], state_dict: Dict[str, torch.Tensor],
                   prefix: str) -> Dict[str, float]:
    """Fit every ``(a, b)`` of ``blocks`` to the blocks' own weights found in ``state_dict``.

    Solves ``min ||a * adapt(P_prev) + b * adapt(P_next) - P||^2`` over the tensors sharing a
    coefficient (per output channel for ``'channel'`` granularity) with the neighbours' tensors
    from the same state dict, and writes the result into ``state_dict`` as the coefficients'
    entries. Returns ``{block path: ||residual|| / ||P||}`` for the blocks it fitted.
    """
    # neighbours by tensor identity, not module identity: SyncBN <-> BN converters put new
    # modules in the tree around the same parameter tensors
    names = {id(t): n for n, t in module.named_parameters(remove_duplicate=False)}
    names.update((id(t), n) for n, t in module.named_buffers(remove_duplicate=False))
    errors = {}
    for block_path, block in blocks:
        groups: Dict[str, List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        for owner_path, owner in block.named_modules():
            if not parametrize.is_parametrized(owner):
                continue
            for tensor_name, parametrizations in owner.parametrizations.items():
                synthesis = parametrizations[0]
                keys = [f'{block_path}.{owner_path}.{tensor_name}'] + [
                    names.get(id(getattr(n, synthesis.tensor_name)), '')
                    for n in synthesis.neighbours]
                if not all(k in incoming for k in keys):
                    continue
                own, p_prev, p_next = (state_dict[incoming[k]].detach().double() for k in keys)
                with torch.no_grad():
                    u, v = (t.double() for t in synthesis.adapt(p_prev.float(), p_next.float()))
                groups.setdefault(synthesis.key, []).append((own, u, v))
        if not groups:
            continue
        residual = total = 0.0
        for key, tensors in groups.items():
            coefficients = block.get_parameter(f'{COEFFICIENTS}.{key}')
            per_channel = coefficients.dim() == 2
            columns = [torch.cat([t.reshape(t.shape[0], -1) if per_channel else t.reshape(1, -1)
                                  for t in part], dim=1) for part in zip(*tensors)]
            own, u, v = columns
            system = torch.stack([u, v], dim=-1)  # (groups, N, 2)
            solution = torch.linalg.lstsq(system, own.unsqueeze(-1), driver='gelsd').solution
            fitted = solution.squeeze(-1).T  # (2, groups)
            residual += (system @ solution).squeeze(-1).sub(own).square().sum().item()
            total += own.square().sum().item()
            value = fitted if per_channel else fitted[:, 0]
            state_dict[f'{prefix}{block_path}.{COEFFICIENTS}.{key}'] = value.to(
                coefficients.dtype)
        errors[block_path] = (residual / max(total, 1e-30)) ** 0.5
    return errors


def start_from_plain_state_dict(module: nn.Module, warm_start: Optional[str], kind: str,
                                incoming: Dict[str, str], state_dict: Dict[str, Tensor],
                                prefix: str) -> str:
    """Start the coefficients of ``module``'s replaced blocks from a plain state dict being
    loaded: write them into ``state_dict`` as ``warm_start`` says. ``incoming`` maps the keys
    relative to ``module`` to those of ``state_dict``. Returns the sentence that says how they
    start (empty where they keep ``repl.init`` and there is nothing to say)."""
    if warm_start in ('identity', 'activations'):
        start_as_shortcut(module, state_dict, prefix)
        return (' Warm start: each replaced block starts as its shortcut (the coefficients that '
                'end its residual branch are zero)'
                + (", as repl.warm_start='activations' does without data (the fit runs in "
                   "tools/convert.py)." if warm_start == 'activations' else '.'))
    if warm_start == 'weights' and kind == 'light':
        return (' A light surrogate computes another function than the block it replaces, so '
                'their weights cannot initialise it: its coefficients keep repl.init and its '
                'norm starts with fresh statistics.')
    if warm_start == 'weights':
        errors = fit_to_weights(module, replaced_blocks(module), incoming, state_dict, prefix)
        if errors:
            return (' Warm start: (a, b) fitted to them by least squares; relative fit error '
                    + ', '.join(f'{prefix}{p} {e:.3f}' for p, e in errors.items()) + '.')
    return ''


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
                       steps: int = 150, *, warm_start: Optional[str]) -> List[BlockConversion]:
    """Load the plain backbone ``plain`` into its RepL twin ``repl`` and start the replaced
    blocks as ``warm_start`` (``repl``'s resolved ``repl.warm_start``) says; ``'activations'``
    fits them one after the other, in forward order, on ``images`` (batches of backbone inputs),
    so that each block also makes up for the blocks fitted before it.

    Returns:
        One ``BlockConversion`` per replaced block, in forward order.
    """
    if warm_start == 'activations' and not images:
        raise ReplError("repl.warm_start='activations' fits the replaced blocks to the plain "
                        'network\'s activations: it needs batches of training images.')
    repl.load_state_dict(plain.state_dict(), strict=False)
    plain_modules = dict(plain.named_modules())
    report = []
    for path, block in replaced_blocks(repl):
        entry = BlockConversion(path, warm_start)
        if images:
            plain_block = plain_modules[path]
            calls, _ = backbone_calls(repl, images, [block])[id(block)]
            _, targets = backbone_calls(plain, images, [plain_block])[id(plain_block)]
            if warm_start == 'activations':
                entry.fit = fit_to_activations(block, calls, targets, steps)
            entry.output_error = relative_error(block, calls, targets)
        report.append(entry)
    return report
