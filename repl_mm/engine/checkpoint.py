"""Load mmengine checkpoints under torch >= 2.6 through a narrow allow-list.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls ``torch.load``
without the argument, so its own checkpoints (numpy arrays and ``HistoryBuffer`` in the message
hub) fail to load on resume and test. Rather than ``weights_only=False`` (which lets a checkpoint
run arbitrary code), repl-mm's tools run under ``trusted_checkpoint_globals()``: exactly the
globals an mmengine checkpoint holds are allowed, and any other pickled object is still refused.
"""
import contextlib
import pickle
from contextlib import contextmanager
from typing import Iterator, List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from repl_mm.core import CheckpointMismatchError, ReplError

_multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray


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

    Raises:
        UntrustedCheckpointError: when a checkpoint holds any other pickled object.
    """
    safe_globals = getattr(torch.serialization, 'safe_globals', None)  # torch >= 2.5
    context = safe_globals(checkpoint_globals()) if safe_globals else contextlib.nullcontext()
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


def load_checkpoint_strictly(runner, filename: str) -> None:
    """Load ``filename`` into ``runner.model`` for testing; every key must match both ways.

    The Runner's own ``load_from`` loads with ``strict=False`` and only warns, so a checkpoint of
    another architecture would be evaluated half-random. Plain weights of replaced blocks are
    dropped by the backbone's guard before the comparison.
    """
    try:
        runner.load_checkpoint(filename, map_location='cpu', strict=True)
    except RuntimeError as error:
        raise CheckpointMismatchError(
            f'{filename} does not fit the model built from this config (was it trained with '
            f'another config or architecture?):\n{error}') from error
