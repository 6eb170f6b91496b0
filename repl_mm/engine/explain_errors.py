"""Clear errors for failures that otherwise surface as tracebacks from deep inside mmengine.

Each class is a ``ReplError``, so ``repl_mm.engine.cli.run_tool`` prints it as one message and exits
with code 2. Two helpers produce them in the tools:

* ``explain_errors(cfg)``: a context manager that turns known low-level exceptions into these
  errors: an annotation file that is not valid JSON, an image that cannot be decoded, a dataset
  with no samples (mmengine's ``BaseDataset`` fails on it with numpy's "need at least one array
  to concatenate"), a disk that fills up, a checkpoint that is truncated.
* ``check_datasets_not_empty(runner, splits)``: a dataset that skips that step
  (``serialize_data=False``) and has no samples makes ``InfiniteSampler`` spin forever without
  yielding a batch (the run hangs at its first iteration) and an epoch-based loop train on
  nothing; this check fails first and names the dataset.

The hooks raise the others themselves (``NonFiniteTrainingError``, ``ReplicaDivergenceError``,
``CheckpointWriteError``).
"""
import errno
import json
import os.path as osp
import re
import traceback
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence

from mmengine.config import Config
from mmengine.dataset import BaseDataset

from repl_core import ReplError
from .checkpoint_files import corrupt_checkpoint, last_complete_checkpoint
from .data_check import _datasets


class AnnotationFileError(ReplError):
    """An annotation file that cannot be parsed."""


class ImageReadError(ReplError):
    """An image file that cannot be decoded."""


class EmptyDatasetError(ReplError):
    """A dataset with no samples."""


class DiskFullError(ReplError):
    """A write that failed for lack of space (or a quota, or a file size limit)."""


class CheckpointWriteError(ReplError):
    """A checkpoint that could not be written (raised by ``ReplSafeCheckpointHook``)."""


class NonFiniteTrainingError(ReplError):
    """A RepL coefficient or the loss became NaN or infinite (raised by ``ReplNaNGuardHook``)."""


class ReplicaDivergenceError(ReplError):
    """The processes of a distributed run no longer hold the same parameters."""


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# the last match: an error re-raised from a DataLoader worker quotes the assert's source line too
_FAILED_IMAGE = re.compile(r'failed to load image: (.+)')


def _annotation_files(cfg: Config) -> List[str]:
    """Every annotation file the config's datasets and evaluators name."""
    files = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader') or {}
        for _, dataset in _datasets(loader.get('dataset'), split):
            ann_file = dataset.get('ann_file') or ''
            if ann_file:
                root = dataset.get('data_root') or ''
                files.append(ann_file if osp.isabs(ann_file) else osp.join(root, ann_file))
        evaluator = cfg.get(f'{split}_evaluator')
        for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
            if isinstance(metric, dict) and metric.get('ann_file'):
                files.append(metric['ann_file'])
    return list(dict.fromkeys(files))


def _invalid_json(files: Sequence[str]) -> List[str]:
    broken = []
    for path in files:
        if not path.endswith('.json') or not osp.isfile(path):
            continue
        try:
            with open(path) as f:
                json.load(f)
        except (ValueError, UnicodeDecodeError) as error:
            broken.append(f'{path} ({error})')
    return broken


@contextmanager
def explain_errors(cfg: Config, checkpoint: Optional[str] = None) -> Iterator[None]:
    """Re-raise known failures inside the block as ``ReplError``s that name the file and the fix.

    Args:
        cfg: the run's config (its annotation files, work dir and ``load_from``).
        checkpoint: the checkpoint the block loads, if not ``cfg.load_from`` (``tools/test.py``).
    """
    try:
        yield
    except json.JSONDecodeError as error:
        broken = _invalid_json(_annotation_files(cfg)) or ['(not one of the config\'s '
                                                           'annotation files)']
        raise AnnotationFileError(
            f'An annotation file is not valid JSON ({error.msg} at line {error.lineno}, column '
            f'{error.colno}): {"; ".join(broken)}. It may be truncated (an interrupted download '
            f'or copy) or not an annotation file: replace it with a complete copy.') from error
    except AssertionError as error:
        paths = _FAILED_IMAGE.findall(str(error))
        if not paths:
            raise
        raise ImageReadError(
            f'Could not decode the image {paths[-1].strip()}: the file is corrupt, truncated or '
            f'not an image, and mmcv\'s LoadImageFromFile stops the run on it. Replace the file, '
            f'or remove it and its annotations. To skip unreadable images in training instead, '
            f'set ignore_empty=True and imdecode_backend=\'pillow\' in LoadImageFromFile of the '
            f'train pipeline: mmengine then loads another, random sample in place of each (with '
            f'the default cv2 decoder, ignore_empty covers missing files only: cv2 returns no '
            f'image instead of raising). Evaluation stops on them either way.') from error
    except OSError as error:
        if error.errno not in _DISK_FULL:
            raise
        work_dir = cfg.get('work_dir')
        last = last_complete_checkpoint(work_dir)
        raise DiskFullError(
            f'A write failed: {error.strerror} (errno {error.errno}). The file being written '
            f'may be incomplete. The last complete checkpoint is {last or "none"}. Free space '
            f'in {work_dir} (or point --work-dir elsewhere) and resume with --resume. With '
            f'mmengine\'s CheckpointHook and max_keep_ckpts, the oldest kept checkpoint is '
            f'removed before a new one is written; use '
            f'default_hooks.checkpoint.type=ReplSafeCheckpointHook to keep it until the new '
            f'one is complete.', errno=error.errno,
            last_checkpoint=last) from error
    except ValueError as error:
        dataset = _empty_dataset(error)
        if dataset is None:
            raise
        raise EmptyDatasetError(_empty_message(dataset)) from error
    except RuntimeError as error:
        if 'PytorchStreamReader failed' not in str(error):
            raise
        path = (checkpoint or cfg.get('load_from')
                or last_complete_checkpoint(cfg.get('work_dir')) or '(unknown)')
        raise corrupt_checkpoint(path, str(error).splitlines()[0]) from error


class ConfigBuildError(ReplError):
    """A model (or Runner) that cannot be built from its config."""


@contextmanager
def explain_build_errors(config: str) -> Iterator[None]:
    """Re-raise what building a model or Runner from ``config`` raises (an unknown type, a wrong
    argument, a missing section) as one ``ConfigBuildError`` naming the config; a ``ReplError``
    passes as it is. ``REPL_MM_DEBUG=1`` shows the original traceback too
    (``repl_mm.engine.cli.run_tool``)."""
    try:
        yield
    except ReplError:
        raise
    except (KeyError, TypeError, ValueError, AssertionError, AttributeError) as error:
        raise ConfigBuildError(
            f'The model of {config} cannot be built: {type(error).__name__}: {error}. Check its '
            f"model section: each type (a class of another framework needs that framework's "
            f"default_scope, or a scoped type such as 'mmdet.ResNet') and its arguments.",
            config=config) from error


def _empty_dataset(error: ValueError) -> Optional[BaseDataset]:
    """The dataset whose ``_serialize_data`` failed on an empty data list, if that is the error.

    mmengine's ``BaseDataset`` (``serialize_data=True``, its default) concatenates the samples'
    bytes and fails with numpy's "need at least one array to concatenate" when there are none.
    """
    if isinstance(error, ReplError) or 'need at least one array' not in str(error):
        return None
    for frame, _ in traceback.walk_tb(error.__traceback__):
        owner = frame.f_locals.get('self')
        if frame.f_code.co_name == '_serialize_data' and isinstance(owner, BaseDataset):
            return owner
    return None


def _empty_message(dataset: BaseDataset, split: str = '') -> str:
    where = ', '.join(f'{name}={getattr(dataset, name)!r}'
                      for name in ('ann_file', 'data_prefix', 'filter_cfg')
                      if getattr(dataset, name, None))
    return (f'The {split + " " if split else ""}dataset ({type(dataset).__name__}: '
            f'{where or "see the config"}) has no samples: its annotation set is empty, or '
            f'every image was filtered out (filter_cfg.filter_empty_gt drops images without '
            f'annotations). Check the annotation file. (An iteration-based run on an empty '
            f'dataset would wait forever for its first batch.)')


def check_datasets_not_empty(runner, splits: Sequence[str]) -> None:
    """Build the ``splits`` dataloaders of ``runner`` and fail if a dataset has no samples.

    Building them here rather than in ``runner.train()`` / ``runner.test()`` changes nothing:
    the Runner keeps the loops it built (``runner.train_loop`` etc. build on first access).
    """
    for split in splits:
        if getattr(runner, f'_{split}_loop', None) is None:
            continue
        dataset = getattr(runner, f'{split}_dataloader').dataset
        if len(dataset) == 0:
            raise EmptyDatasetError(_empty_message(dataset, split))
