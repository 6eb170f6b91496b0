"""Fashion-MNIST, or a subset of it, in the layout mmpretrain's ``FashionMNIST`` dataset reads.

mmpretrain's ``MNIST`` / ``FashionMNIST`` look in ``data_root`` for the four *uncompressed* IDX
files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``); when any is missing they try to download the set. Debian's
``dataset-fashion-mnist`` installs the same files gzipped under ``/usr/share/datasets/
fashion-mnist``, which mmpretrain therefore cannot read in place. This writes them uncompressed::

    out_dir/train-images-idx3-ubyte    out_dir/train-labels-idx1-ubyte    (first num_train items)
    out_dir/t10k-images-idx3-ubyte     out_dir/t10k-labels-idx1-ubyte     (first num_val items)
    out_dir/generator.json             parameters; a second call with the same ones is a no-op

A subset keeps the first items of each file (Fashion-MNIST's files are in shuffled order, so the
first items are close to class-balanced) and rewrites the item count in each header.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ['make_fashion_mnist_demo']

DEFAULT_FMNIST_DIR = '/usr/share/datasets/fashion-mnist'
GENERATOR_VERSION = 1
#: split -> file stem
_FILES = {'train': 'train', 'val': 't10k'}
_IMAGES, _LABELS = '{}-images-idx3-ubyte', '{}-labels-idx1-ubyte'
_MAGIC = {_IMAGES: 2051, _LABELS: 2049}
_HEADER = {_IMAGES: 16, _LABELS: 8}  # magic, count[, rows, cols] as big-endian int32


def _subset(raw: bytes, pattern: str, count: int | None, path: Path) -> tuple[bytes, int]:
    """The IDX file ``raw`` cut to its first ``count`` items (``None``: all), and the count."""
    header = np.frombuffer(raw, '>i4', count=_HEADER[pattern] // 4)
    if header[0] != _MAGIC[pattern]:
        raise ValueError(f'{path} is not an IDX file of the expected kind (magic {header[0]}, '
                         f'expected {_MAGIC[pattern]})')
    total = int(header[1])
    keep = total if count is None else min(count, total)
    item = (len(raw) - _HEADER[pattern]) // total
    header = header.copy()
    header[1] = keep
    start = _HEADER[pattern]
    return header.astype('>i4').tobytes() + raw[start:start + keep * item], keep


def make_fashion_mnist_demo(out_dir: str | os.PathLike,
                            num_train: int | None = None,
                            num_val: int | None = None,
                            fmnist_dir: str | os.PathLike = DEFAULT_FMNIST_DIR,
                            overwrite: bool = False) -> dict[str, Any]:
    """Write Fashion-MNIST (or its first ``num_train`` / ``num_val`` items) for mmpretrain.

    Args:
        out_dir: the ``data_root`` of mmpretrain's ``FashionMNIST``; created if missing.
        num_train, num_val: items kept from the train (60,000) and t10k (10,000) files, each
            >= 1; ``None`` keeps all.
        fmnist_dir: folder with the four ``*-ubyte.gz`` files (``apt-get install
            dataset-fashion-mnist``).
        overwrite: rewrite even if ``generator.json`` records the same parameters.

    Returns:
        dict with ``out_dir``, ``generated`` (False when skipped), ``params`` and ``splits``
        (items and per-class counts of each split).

    Raises:
        FileNotFoundError: a Fashion-MNIST file is missing (there is no synthetic stand-in: the
            point of this set is real images). ValueError: bad counts or a corrupt file.
    """
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f'{name} must be an int >= 1 or None, got {value!r}')
    source = Path(fmnist_dir)
    inputs = [source / f'{pattern.format(stem)}.gz' for stem in _FILES.values()
              for pattern in (_IMAGES, _LABELS)]
    missing = [str(path) for path in inputs if not path.is_file()]
    if missing:
        raise FileNotFoundError(f'Fashion-MNIST files missing: {", ".join(missing)}. Install them '
                                f'with `apt-get install dataset-fashion-mnist` (Debian, as root) '
                                f'or pass the folder that holds them.')
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f'out_dir {root} exists and is not a directory')
    params = {'generator': 'repl_mm.demo.fashion_mnist_data', 'version': GENERATOR_VERSION,
              'num_train': num_train, 'num_val': num_val, 'source': str(source.resolve())}
    meta_path = root / 'generator.json'
    outputs = [root / path.name[:-len('.gz')] for path in inputs]
    if not overwrite and meta_path.is_file() and all(p.is_file() for p in outputs):
        record = json.loads(meta_path.read_text())
        if record.get('params') == params:
            return {'out_dir': str(root.resolve()), 'generated': False, 'params': params,
                    'splits': record.get('splits', {})}

    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, Any] = {}
    for split, stem in _FILES.items():
        count = num_train if split == 'train' else num_val
        kept = {}
        for pattern in (_IMAGES, _LABELS):
            path = source / f'{pattern.format(stem)}.gz'
            with gzip.open(path, 'rb') as f:
                data, kept[pattern] = _subset(f.read(), pattern, count, path)
            (root / pattern.format(stem)).write_bytes(data)
            if pattern == _LABELS:
                labels = np.frombuffer(data, np.uint8, offset=_HEADER[_LABELS])
        if kept[_IMAGES] != kept[_LABELS]:
            raise ValueError(f'{stem}: {kept[_IMAGES]} images but {kept[_LABELS]} labels')
        splits[split] = {'file': stem, 'num_items': kept[_IMAGES],
                         'per_class': np.bincount(labels, minlength=10).tolist()}
    meta_path.write_text(json.dumps({'params': params, 'splits': splits}, indent=2) + '\n')
    return {'out_dir': str(root.resolve()), 'generated': True, 'params': params, 'splits': splits}
