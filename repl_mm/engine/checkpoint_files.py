"""Checkpoint files: reading and loading them, and finding a work dir's last complete one.

Load mmengine checkpoints under torch >= 2.6 through a narrow allow-list.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls ``torch.load``
without the argument, so its own checkpoints (numpy arrays and ``HistoryBuffer`` in the message
hub) fail to load on resume and test. Rather than ``weights_only=False`` (which lets a checkpoint
run arbitrary code), repl-mm's tools run under ``trusted_checkpoint_globals()``: exactly the
globals an mmengine checkpoint holds are allowed, and any other pickled object is still refused.
"""
import contextlib
import os.path as osp
import pickle
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from repl_core import COEFFICIENTS, CheckpointMismatchError, ReplError

_multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray


class CorruptCheckpointError(ReplError):
    """A checkpoint file that is truncated or not a checkpoint."""


def corrupt_checkpoint(path: str, reason: str) -> CorruptCheckpointError:
    """The error for a checkpoint file that is cut short or not a checkpoint."""
    return CorruptCheckpointError(
        f'The checkpoint {path} cannot be read: it is truncated or not a checkpoint ({reason}). '
        f'A checkpoint written while the disk filled up or the process was killed is '
        f'incomplete; resume from an earlier one (or copy the file again).', path=path)


def checkpoint_globals() -> List:
    """What an mmengine Runner checkpoint pickles besides tensors and primitive types.

    ``getattr`` rebuilds ``HistoryBuffer.statistics_methods`` (a dict of its methods); the
    weights-only unpickler never calls what ``getattr`` returns, so it grants no code execution.
    """
    return [HistoryBuffer, np.ndarray, np.dtype, _multiarray._reconstruct, _multiarray.scalar,
            getattr] + [type(np.dtype(c)) for c in '?bBhHiIlLqQefdgFDG']


class UntrustedCheckpointError(ReplError):
    """A checkpoint that pickles an object outside the allow-list."""


@contextmanager
def trusted_checkpoint_globals() -> Iterator[None]:
    """Allow exactly ``checkpoint_globals()`` in ``torch.load`` inside the block.

    Re-entrant: torch's ``safe_globals`` removes its globals when it exits, even those an outer
    block allowed, so a nested block adds only those not allowed yet (a tool that reads a
    checkpoint inside the block around ``runner.test()`` would otherwise leave the Runner's own
    load without them).

    Raises:
        UntrustedCheckpointError: when a checkpoint holds any other pickled object.
    """
    safe_globals = getattr(torch.serialization, 'safe_globals', None)  # torch >= 2.5
    context = contextlib.nullcontext()
    if safe_globals:
        allowed = torch.serialization.get_safe_globals()
        missing = [g for g in checkpoint_globals() if g not in allowed]
        context = safe_globals(missing) if missing else context
    with context:
        try:
            yield
        except pickle.UnpicklingError as error:
            refused = [line.strip() for line in str(error).splitlines()
                       if 'GLOBAL' in line or 'Unsupported' in line]
            raise UntrustedCheckpointError(
                f'Refused to load a checkpoint: it holds a pickled object that is not on '
                f"repl-mm's allow-list of mmengine checkpoint contents, and unpickling it could "
                f'run arbitrary code. torch says: '
                f'{" ".join(refused) or str(error).splitlines()[0]} If you trust the file, '
                f'load it yourself with torch.load(..., weights_only=False) and save its '
                f'state_dict.') from error


def check_checkpoint_file(path: str) -> bytes:
    """Fail clearly unless ``path`` is a file that starts as ``torch.save`` writes one (a zip
    archive, or a legacy pickle); return its first two bytes. Cheap, for paths that mmengine
    loads later."""
    if not osp.exists(path):
        raise ReplError(f'checkpoint {path}: no such file.', path=path)
    if osp.isdir(path):
        raise ReplError(f'checkpoint {path} is a directory; give the checkpoint file in it (e.g. '
                        f'{osp.join(path, "iter_1000.pth")}).', path=path)
    with open(path, 'rb') as f:
        head = f.read(2)
    if not head:
        raise corrupt_checkpoint(path, 'the file is empty')
    if head != b'PK' and head[:1] != b'\x80':
        raise ReplError(f'{path} is not a PyTorch checkpoint (it starts with {head!r}; '
                        f'torch.save writes zip archives): give the .pth file a training wrote.',
                        path=path)
    return head


def read_checkpoint(path: str) -> Any:
    """What ``torch.load`` reads from ``path`` (under ``trusted_checkpoint_globals``), with one
    clear error for each way the file can be wrong: missing, a directory, empty, cut short, not
    written by ``torch.save``, or holding an object outside the allow-list."""
    zipped = check_checkpoint_file(path) == b'PK'
    try:
        with trusted_checkpoint_globals():  # mapped, not read: a check costs no second copy
            return torch.load(path, map_location='cpu', mmap=zipped)
    except (RuntimeError, EOFError) as error:  # zip reader / pickle stream cut short
        raise corrupt_checkpoint(path, str(error).splitlines()[0] or type(error).__name__
                                 ) from error


def state_dict_in(checkpoint: Any, path: str) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint's state dict: a Runner checkpoint's ``state_dict``, or a bare
    state dict (``module.`` prefixes of a wrapped model removed, as mmengine does)."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    tensors = {k: v for k, v in state.items() if torch.is_tensor(v)} if isinstance(
        state, dict) else {}
    if not tensors:
        raise ReplError(f'{path} holds no state dict (no tensors under \'state_dict\' or at its '
                        f'top level): is it a checkpoint of a model?', path=path)
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in tensors.items()}


def replaced_blocks_in(state_dict: Dict[str, torch.Tensor]) -> List[str]:
    """The replaced blocks a state dict holds coefficients for (``'backbone.layer1.1'``)."""
    marker = f'.{COEFFICIENTS}.'
    return sorted({k.split(marker)[0] for k in state_dict if marker in k})


def load_strictly(model: torch.nn.Module, path: str) -> Any:
    """Load the checkpoint ``path`` into ``model``, every key matching both ways; return the
    checkpoint (see ``load_state_strictly``)."""
    checkpoint = read_checkpoint(path)
    load_state_strictly(model, state_dict_in(checkpoint, path), path)
    return checkpoint


def load_state_strictly(model: torch.nn.Module, state_dict: Dict[str, torch.Tensor],
                        path: str) -> None:
    """Load ``state_dict`` (read from ``path``) into ``model`` (unwrapped), every key matching.

    mmengine's own loading (``load_from``, ``init_cfg``) is ``strict=False`` and only warns, so a
    checkpoint of another architecture would be evaluated or folded half-random. Plain weights of
    replaced blocks are dropped by the backbone's guard before the comparison.
    """
    model = getattr(model, 'module', model)  # DDP and mmengine's wrappers
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointMismatchError(
            f'{path} does not fit the model built from this config (was it trained with '
            f'another config or architecture?):\n{error}', path=path) from error


def last_complete_checkpoint(work_dir: Optional[str]) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` names if it still exists, or None.

    mmengine's ``CheckpointHook`` writes that file only after a checkpoint is complete, so it
    never names a file cut short by a crash or a full disk; with ``max_keep_ckpts`` it removes
    the named file before the next one is written, so the name alone proves nothing.
    """
    pointer = osp.join(work_dir or '', 'last_checkpoint')
    if not work_dir or not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        path = f.read().strip()
    return path if path and osp.isfile(path) else None
