"""Fashion-MNIST as every demo generator reads it: Debian's four gzipped IDX files.

Debian's ``dataset-fashion-mnist`` installs ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
under ``DEFAULT_FMNIST_DIR``. A demo's ``train`` split draws from the ``train`` files and its
``val`` split from the ``t10k`` files, so the two splits never share a source item.

IDX, the format of these files: a magic number ``0x0800 + ndim`` (type code 8: unsigned bytes),
then each dimension as a big-endian int32, then the uint8 values in C order.
"""
from __future__ import annotations

import gzip
import math
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ['DEFAULT_FMNIST_DIR', 'FASHION_MNIST_CLASSES', 'INSTALL_HINT', 'SPLIT_STEMS',
           'choose_source', 'decode_idx', 'encode_idx', 'file_paths', 'missing_files',
           'read_split']

DEFAULT_FMNIST_DIR = '/usr/share/datasets/fashion-mnist'
INSTALL_HINT = '`apt-get install dataset-fashion-mnist` (Debian, as root)'
#: Fashion-MNIST label names, indexed by label, spelled as the COCO demo names its categories.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    't-shirt', 'trouser', 'pullover', 'dress', 'coat',
    'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot',
)
#: demo split -> stem of its Fashion-MNIST files
SPLIT_STEMS = {'train': 'train', 'val': 't10k'}
_SIDE = 28
_UBYTE = 0x08


def file_paths(folder: str | os.PathLike[str], split: str) -> tuple[Path, Path]:
    """The (images, labels) ``*-ubyte.gz`` files that demo split ``split`` ('train' | 'val')
    reads from ``folder``."""
    stem = SPLIT_STEMS[split]
    return (Path(folder) / f'{stem}-images-idx3-ubyte.gz',
            Path(folder) / f'{stem}-labels-idx1-ubyte.gz')


def missing_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Those of the four files that ``folder`` lacks, train first; empty when all are there."""
    return [path for split in SPLIT_STEMS for path in file_paths(folder, split)
            if not path.is_file()]


def choose_source(fmnist_dir: str | os.PathLike[str] | None) -> str:
    """Where a generator's objects come from: 'fashion-mnist' or 'procedural'.

    ``None`` asks for procedural objects. A folder that lacks any of the four files also gives
    'procedural', with a ``RuntimeWarning`` naming the files, so a machine without the Debian
    package still gets a usable (if less natural) data set.
    """
    if fmnist_dir is None:
        return 'procedural'
    missing = missing_files(fmnist_dir)
    if not missing:
        return 'fashion-mnist'
    warnings.warn(f'Fashion-MNIST files missing: {", ".join(map(str, missing))}; drawing '
                  f'procedural shapes instead (install the files with {INSTALL_HINT})',
                  RuntimeWarning, stacklevel=3)  # points at the generator's caller
    return 'procedural'


def read_split(folder: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of demo split ``split``.

    The arrays are read-only and cached while the files keep their size and mtime, since a
    generator reads each split once per call and tests call generators many times.

    Raises:
        ValueError: a file is not IDX, or images and labels do not match.
    """
    images, labels = file_paths(folder, split)
    stamp = tuple((path.stat().st_mtime_ns, path.stat().st_size) for path in (images, labels))
    return _read(str(images), str(labels), stamp)


@lru_cache(maxsize=4)
def _read(images_path: str, labels_path: str,
          stamp: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    del stamp  # part of the cache key only
    with gzip.open(images_path, 'rb') as f:
        images = decode_idx(f.read(), images_path)
    with gzip.open(labels_path, 'rb') as f:
        labels = decode_idx(f.read(), labels_path)
    if images.ndim != 3 or images.shape[1:] != (_SIDE, _SIDE):
        raise ValueError(f'{images_path} holds {images.shape} values, not (N, 28, 28) images')
    if labels.shape != images.shape[:1] or (labels.size and labels.max() >= 10):
        raise ValueError(f'{labels_path} holds {labels.shape} values, not one label in 0-9 for '
                         f'each of the {len(images)} images of {images_path}')
    return images, labels


def decode_idx(data: bytes, name: str) -> np.ndarray:
    """The read-only uint8 array that IDX bytes ``data`` hold; ``name`` is for error messages."""
    ndim = data[3] if len(data) >= 4 else 0
    header = 4 + 4 * ndim
    if ndim == 0 or data[:3] != bytes((0, 0, _UBYTE)) or len(data) < header:
        raise ValueError(f'{name} is not an IDX file of unsigned bytes')
    shape = tuple(int(v) for v in np.frombuffer(data, '>u4', count=ndim, offset=4))
    values = np.frombuffer(data, np.uint8, offset=header)
    if values.size != math.prod(shape):
        raise ValueError(f'{name} has {values.size} values, its header says {shape}')
    return values.reshape(shape)


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (``decode_idx`` inverts it)."""
    array = np.ascontiguousarray(array, np.uint8)
    header = np.array([(_UBYTE << 8) + array.ndim, *array.shape], '>u4')
    return header.tobytes() + array.tobytes()
