"""The record a demo generator keeps in ``out_dir/generator.json``, and the summary it returns.

Generating a set takes seconds to minutes, and the same command runs again and again (``make
demo``, tests, benchmarks), so a generator writes only when needed: when ``generator.json``
records the same parameters and every output file is there, the data is up to date and is left
alone. The record also marks the folder as the generator's own, so a rerun with other parameters
may delete the outputs of the previous one; a non-empty folder without a record holds someone
else's files and is refused unless ``overwrite`` is given. A run records its parameters before
writing and its per-split counts after, so an interrupted run is never taken as up to date.

A generator's flow::

    if not overwrite and (summary := up_to_date(root, params, outputs)) is not None:
        return summary                      # written False
    claim(root, params, owned, overwrite)
    ...                                     # write the files
    return finish(root, params, splits)     # written True
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable, TypedDict

__all__ = ['RECORD_NAME', 'SplitSummary', 'Summary', 'claim', 'finish', 'up_to_date']

RECORD_NAME = 'generator.json'


class SplitSummary(TypedDict):
    """One split of a generated set."""

    num_images: int
    per_class: dict[str, int]  # objects (COCO, Cityscapes) or images (Fashion-MNIST) per class
    paths: dict[str, str]  # what a config points at, relative to out_dir, by config key


class Summary(TypedDict):
    """What every demo generator returns."""

    out_dir: str  # absolute
    source: str  # 'fashion-mnist' or 'procedural': where the objects come from
    written: bool  # False when the data was up to date and nothing was written
    params: dict[str, Any]  # as recorded in generator.json
    splits: dict[str, SplitSummary]  # 'train' and 'val'


def up_to_date(root: Path, params: dict[str, Any], outputs: Iterable[Path]) -> Summary | None:
    """The summary of the set in ``root`` when its record has ``params`` (which hold the
    generator, its version and ``source``) and every file in ``outputs`` exists; else None."""
    record = _read(root)
    if (record is None or record.get('params') != _as_json(params) or 'splits' not in record
            or not all(path.is_file() for path in outputs)):
        return None
    return _summary(root, record['params'], record['splits'], written=False)


def claim(root: Path, params: dict[str, Any], owned: Iterable[Path], overwrite: bool) -> None:
    """Make ``root`` ready for a new set: remove the ``owned`` files and folders of an earlier
    one (nothing else in ``root`` is touched) and record ``params`` as a run in progress.

    Raises:
        FileExistsError: ``root`` is a file, or a non-empty folder without a record and
            ``overwrite`` is False.
    """
    if root.exists() and not root.is_dir():
        raise FileExistsError(f'out_dir {root} exists and is not a directory')
    if not overwrite and _read(root) is None and root.is_dir() and any(root.iterdir()):
        raise FileExistsError(f'{root} is not empty and has no {RECORD_NAME} from a demo '
                              'generator; choose an empty folder or pass overwrite=True')
    for path in owned:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    _write(root, {'params': _as_json(params)})


def finish(root: Path, params: dict[str, Any], splits: dict[str, SplitSummary]) -> Summary:
    """Record the set in ``root`` as complete; return its summary."""
    record = _as_json({'params': params, 'splits': splits})
    _write(root, record)
    return _summary(root, record['params'], record['splits'], written=True)


def _summary(root: Path, params: dict[str, Any], splits: dict[str, SplitSummary],
             written: bool) -> Summary:
    return Summary(out_dir=str(root.resolve()), source=params['source'], written=written,
                   params=params, splits=splits)


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so records compare equal."""
    return json.loads(json.dumps(value))


def _read(root: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((root / RECORD_NAME).read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write(root: Path, record: dict[str, Any]) -> None:
    (root / RECORD_NAME).write_text(json.dumps(record, indent=2) + '\n', encoding='utf-8')
