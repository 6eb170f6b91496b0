"""Keep the random generators' states in the checkpoint, so that a resumed run continues exactly.

mmengine's checkpoint holds the seed, the weights, the optimizer, the schedulers and the iteration,
but not the states of the random generators. A resumed run therefore draws other random numbers
than the run it continues: other augmentations (numpy / ``random`` in the data pipelines), another
Mixup pairing and drop-path masks (torch), other RoIs from mmdet's samplers (``torch.randperm`` on
the global generator). The data order is not the issue: mmengine's ``InfiniteSampler`` and
``DefaultSampler`` own seeded generators, and ``IterBasedTrainLoop`` replays the first ``iter``
batches on resume, so the sampler is where it was (see ``docs/reliability.md``).

``RNGStateHook`` saves the states of torch's, numpy's and Python's global generators (and CUDA's
when CUDA is in use) into ``checkpoint['rng_states']`` and, when a run resumes, restores them
exactly where the interrupted run stood: after ``IterBasedTrainLoop`` has replayed the skipped
batches (whose pipelines draw random numbers too), just before the first new batch is loaded.
It also keeps validation out of the training stream (each validation's DataLoader draws its base
seed from torch's generator), so the stream is the same whether or not a run validated, or
resumed, at a given iteration.

The states are tensors, strings, ints and lists only: ``torch.load(weights_only=True)`` reads them
without any allow-list entry.
"""
import logging
import random
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info, is_distributed
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

RNG_STATES = 'rng_states'

RNGStates = Dict[str, Any]


def capture_rng_states() -> RNGStates:
    """The states of torch's, numpy's and Python's global generators (and CUDA's, if in use).

    numpy's key (624 uint32) and Python's state (625 ints) are stored as lists of ints, torch's as
    its ``uint8`` state tensor, so the result pickles as primitive types and tensors only.
    """
    np_name, np_key, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    states = dict(
        torch=torch.get_rng_state(),
        numpy=dict(name=str(np_name), key=[int(v) for v in np_key], pos=int(np_pos),
                   has_gauss=int(np_has_gauss), gauss=float(np_gauss)),
        python=dict(version=int(py_version), internal=list(py_internal), gauss=py_gauss))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: RNGStates) -> None:
    """Set the global generators to ``states`` (from ``capture_rng_states``)."""
    torch.set_rng_state(states['torch'])
    numpy = states['numpy']
    np.random.set_state((numpy['name'], np.array(numpy['key'], dtype=np.uint32), numpy['pos'],
                         numpy['has_gauss'], numpy['gauss']))
    python = states['python']
    random.setstate((python['version'], tuple(python['internal']), python['gauss']))
    cuda = states.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            print_log(f'RNGStateHook: the checkpoint holds {len(cuda)} CUDA generator states, '
                      f'this machine has {torch.cuda.device_count()} devices; CUDA generators '
                      f'keep their seeded states.', logger='current', level=logging.WARNING)


class _RestoreAfterReplay:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` while the loop replays batches.

    On resume the loop calls ``next`` ``replay`` times to bring the sampler back to where it was;
    the pipelines of those batches draw random numbers. Just before the first new batch is loaded,
    the generators are set to the checkpoint's states and the loop gets its own iterator back.
    """

    def __init__(self, loop: IterBasedTrainLoop, replay: int, restore: Callable[[], None]):
        self.loop = loop
        self.iterator = loop.dataloader_iterator
        self.replay = replay
        self.restore = restore

    def __iter__(self) -> '_RestoreAfterReplay':
        return self

    def __next__(self) -> Any:
        if self.replay == 0:
            self.restore()
            self.loop.dataloader_iterator = self.iterator
        else:
            self.replay -= 1
        return next(self.iterator)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the random generators' states in checkpoints; restore them on resume.

    Args:
        isolate_validation (bool): restore the generators after each validation to their states
            before it, so that validating does not shift the training stream. Defaults to True.

    In distributed runs every process has its own states: they are gathered after each training
    iteration (one small ``all_gather_object``; checkpoints are written by rank 0 alone, so
    gathering at save time would deadlock) and saved as one entry per rank. A run resumed with
    another number of processes takes rank ``r``'s states from entry ``r % saved ranks`` and
    cannot reproduce the interrupted run anyway (each rank sees other samples); it says so.
    """

    priority = 'LOW'  # after_train_iter: before CheckpointHook (VERY_LOW) saves

    def __init__(self, isolate_validation: bool = True) -> None:
        self.isolate_validation = isolate_validation
        self._rank_states: Optional[List[RNGStates]] = None
        self._before_val: Optional[RNGStates] = None
        self._loaded: Optional[Dict[str, Any]] = None

    # saving -----------------------------------------------------------------------------
    def _gather(self) -> None:
        if is_distributed():
            self._rank_states = all_gather_object(capture_rng_states())

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        self._gather()

    def after_train_epoch(self, runner) -> None:
        self._gather()

    def before_save_checkpoint(self, runner, checkpoint: Dict[str, Any]) -> None:
        if is_distributed() and self._rank_states is not None:
            ranks = self._rank_states
        else:
            # inside validation (e.g. a best checkpoint) the training stream is the one saved
            # before validation began
            ranks = [self._before_val or capture_rng_states()]
        checkpoint[RNG_STATES] = dict(world_size=len(ranks), ranks=ranks)

    # validation -------------------------------------------------------------------------
    def before_val(self, runner) -> None:
        if self.isolate_validation:
            self._before_val = capture_rng_states()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_rng_states(self._before_val)
            self._before_val = None

    # resuming ---------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: Dict[str, Any]) -> None:
        # Runner.resume may reseed after loading, and the loop replays batches after that: the
        # states are applied in before_train, and only if this load was a resume
        self._loaded = checkpoint.get(RNG_STATES, {})

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is None or (runner.iter == 0 and runner.epoch == 0):
            return  # nothing loaded, or weights loaded to start a new training (load_from)
        if not loaded:
            print_log('RNGStateHook: the resumed checkpoint holds no generator states (saved '
                      'without this hook); random numbers after the resume differ from the '
                      'interrupted run.', logger='current', level=logging.WARNING)
            return
        rank, world_size = get_dist_info()
        ranks = loaded['ranks']
        states = ranks[rank % len(ranks)]
        if len(ranks) != world_size:
            print_log(f'RNGStateHook: the checkpoint was written by {len(ranks)} processes and '
                      f'is resumed by {world_size}; every process restarts from the states of '
                      f'rank {rank % len(ranks)}, and the run will not repeat the interrupted '
                      f'one (the processes see other samples).', logger='current',
                      level=logging.WARNING)

        def restore() -> None:
            restore_rng_states(states)
            print_log(f'RNGStateHook: random generators restored to their states at iteration '
                      f'{runner.iter}.', logger='current')

        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and runner.iter > 0:
            loop.dataloader_iterator = _RestoreAfterReplay(loop, runner.iter, restore)
        else:
            restore()
