"""Stop on a non-finite RepL state before it reaches a checkpoint.

A RepL coefficient (or the loss) that turns NaN or infinite would go on training, and the next
checkpoint would hold the broken state. ``ReplNaNGuardHook`` checks after every training
iteration, before ``CheckpointHook`` saves, and stops training with a message naming the
coefficient, its block and the iteration. In distributed runs it can also check that the
processes' parameters are still identical.
"""
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.dist import all_gather_object, get_world_size, is_distributed
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from repl_core import COEFFICIENTS, replaced_blocks
from repl_mm.engine.checkpoint_files import last_complete_checkpoint
from repl_mm.engine.explain_errors import NonFiniteTrainingError, ReplicaDivergenceError


def _non_finite(value: Any) -> Optional[str]:
    """``'nan'`` / ``'inf'`` if ``value`` (a number or tensor) has such an entry, else None."""
    tensor = torch.as_tensor(value).detach()
    if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
        return None
    return 'nan' if bool(torch.isnan(tensor).any()) else 'inf'


def _listed(kinds: Dict[str, str]) -> str:
    return ', '.join(f'{name}={kind}' for name, kind in kinds.items())


def parameter_checksums(model: torch.nn.Module) -> List[int]:
    """One integer per parameter: the sum of its bit patterns.

    Bit patterns summed as integers do not depend on the order of summation (a float sum changes
    with the thread count): bitwise equal parameters give equal checksums, and any difference
    changes the checksum unless the sums happen to collide.
    """
    checksums = []
    for param in model.parameters():
        flat = param.detach().contiguous().reshape(-1)
        bits = flat.view(torch.int32) if flat.element_size() == 4 else flat.view(torch.uint8)
        checksums.append(int(bits.to(torch.int64).sum()))
    return checksums


def first_replica_mismatch(gathered: List[List[int]], names: List[str]
                           ) -> Optional[Tuple[str, int]]:
    """``(parameter name, rank)`` of the first parameter where a rank differs from rank 0."""
    for rank, checksums in enumerate(gathered[1:], start=1):
        for name, ours, theirs in zip(names, gathered[0], checksums):
            if ours != theirs:
                return name, rank
    return None


@HOOKS.register_module()
class ReplNaNGuardHook(Hook):
    """Stop training as soon as a RepL coefficient or the loss is NaN or infinite.

    Runs after every training iteration, after ``LoggerHook`` (the iteration's loss is in the log)
    and before ``CheckpointHook`` (the broken state is never saved; the last checkpoint stays as
    it was). It raises ``NonFiniteTrainingError``, which the tools print as one message (exit
    code 2), naming every non-finite coefficient with its block, the iteration and the last
    complete checkpoint.

    Args:
        replica_check_interval (int): in distributed runs, every this many iterations, compare
            the processes' parameters (one integer checksum per parameter, all-gathered) and
            stop with ``ReplicaDivergenceError`` if a process differs from rank 0. Buffers are not
            compared: each process updates its BN statistics from its own batch, and DDP
            broadcasts rank 0's at the next forward. 0 (default) disables the check.
    """

    priority = 'LOW'  # LoggerHook is BELOW_NORMAL, CheckpointHook VERY_LOW

    def __init__(self, replica_check_interval: int = 0) -> None:
        if replica_check_interval < 0:
            raise ValueError(f'ReplNaNGuardHook: replica_check_interval must be >= 0, got '
                             f'{replica_check_interval}.')
        self.replica_check_interval = replica_check_interval
        self.replica_checks = 0

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[Dict[str, Any]] = None) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        iteration = runner.iter + 1  # as the log counts
        broken = {}
        for path, block in replaced_blocks(model):
            keys = {key: kind for key, value in getattr(block, COEFFICIENTS).items()
                    if (kind := _non_finite(value)) is not None}
            if keys:
                broken[path] = keys
        losses = {name: kind for name, value in (outputs or {}).items()
                  if 'loss' in name and (kind := _non_finite(value)) is not None}
        if broken or losses:
            last = last_complete_checkpoint(runner.work_dir)
            what = []
            if broken:
                blocks = [f'{path} ({_listed(keys)})' for path, keys in broken.items()]
                more = f' and {len(blocks) - 3} more blocks' if len(blocks) > 3 else ''
                what.append(f'RepL coefficients became non-finite in '
                            f'{"; ".join(blocks[:3])}{more}')
            if losses:
                what.append(f'the loss is non-finite ({_listed(losses)})')
            raise NonFiniteTrainingError(
                f'Training stopped at iteration {iteration}: {"; ".join(what)}. Nothing was '
                f'saved after this; the last complete checkpoint is '
                f'{last or "none (no checkpoint was written yet)"}. Lower the learning rate '
                f'(or the coefficients\' lr_mult in paramwise_cfg), add '
                f'optim_wrapper.clip_grad, and resume from it with --resume.',
                iteration=iteration, non_finite_coefficients=broken,
                non_finite_losses=losses, last_checkpoint=last)
        if (self.replica_check_interval and is_distributed()
                and iteration % self.replica_check_interval == 0):
            self._check_replicas(model, iteration)

    def _check_replicas(self, model: torch.nn.Module, iteration: int) -> None:
        gathered = all_gather_object(parameter_checksums(model))
        mismatch = first_replica_mismatch(gathered, [n for n, _ in model.named_parameters()])
        if mismatch is not None:
            name, rank = mismatch
            raise ReplicaDivergenceError(
                f'At iteration {iteration}, parameter {name} of process {rank} differs from '
                f'process 0: the replicas of the distributed run diverged (a parameter that '
                f'DDP does not synchronise, or an update outside the optimizer step).',
                iteration=iteration, parameter=name, rank=rank)
        self.replica_checks += 1

    def after_train(self, runner) -> None:
        if self.replica_checks:
            print_log(f'ReplNaNGuardHook: parameters identical on all {get_world_size()} '
                      f'processes at {self.replica_checks} checks.', logger='current')
