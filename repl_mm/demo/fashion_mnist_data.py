"""Fashion-MNIST, or a subset of it, in the layout mmpretrain's ``FashionMNIST`` dataset reads.

mmpretrain's ``MNIST`` / ``FashionMNIST`` look in ``data_root`` for the four *uncompressed* IDX
files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``); when any is missing they try to download the set. Debian's
``dataset-fashion-mnist`` installs the same files gzipped, which mmpretrain therefore cannot read
in place. This writes them uncompressed::

    out_dir/train-images-idx3-ubyte    out_dir/train-labels-idx1-ubyte    (first num_train items)
    out_dir/t10k-images-idx3-ubyte     out_dir/t10k-labels-idx1-ubyte     (first num_val items)
    out_dir/generator.json             parameters and counts; a rerun with the same ones is a no-op

A subset keeps the first items of each file: Fashion-MNIST's files are in shuffled order, so the
first items are close to class-balanced.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .fashion_mnist_source import (DEFAULT_FMNIST_DIR, FASHION_MNIST_CLASSES, INSTALL_HINT,
                                   SPLIT_STEMS, encode_idx, missing_files, read_split)
from .generator_record import SplitSummary, Summary, claim, finish, up_to_date

__all__ = ['make_fashion_mnist_demo']

GENERATOR_VERSION = 1


def make_fashion_mnist_demo(out_dir: str | os.PathLike,
                            num_train: int | None = None,
                            num_val: int | None = None,
                            fmnist_dir: str | os.PathLike = DEFAULT_FMNIST_DIR,
                            overwrite: bool = False) -> Summary:
    """Write Fashion-MNIST (or its first ``num_train`` / ``num_val`` items) for mmpretrain.

    Args:
        out_dir: the ``data_root`` of mmpretrain's ``FashionMNIST``; created if missing.
        num_train, num_val: items kept from the train (60,000) and t10k (10,000) files, each
            >= 1; ``None`` keeps all.
        fmnist_dir: folder with the four ``*-ubyte.gz`` files.
        overwrite: rewrite even if ``generator.json`` records the same parameters, and allow
            writing into a non-empty folder no demo generator made.

    Returns:
        the ``generator_record.Summary``; ``source`` is always 'fashion-mnist', per split
        ``per_class`` counts the images of each class and ``paths`` names the two files.

    Raises:
        FileNotFoundError: a Fashion-MNIST file is missing (there is no procedural stand-in: the
            point of this set is real images). ValueError: bad counts or a corrupt file.
        FileExistsError: ``out_dir`` is a file, or is a non-empty folder without
            ``generator.json`` and ``overwrite`` is False.
    """
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f'{name} must be an int >= 1 or None, got {value!r}')
    missing = missing_files(fmnist_dir)
    if missing:
        raise FileNotFoundError(f'Fashion-MNIST files missing: {", ".join(map(str, missing))}. '
                                f'Install them with {INSTALL_HINT} or pass the folder that '
                                'holds them.')
    root = Path(out_dir)
    params = {'generator': 'repl_mm.demo.fashion_mnist_data', 'version': GENERATOR_VERSION,
              'source': 'fashion-mnist', 'fmnist_dir': str(Path(fmnist_dir).resolve()),
              'num_train': num_train, 'num_val': num_val}
    paths = {split: {'images': f'{stem}-images-idx3-ubyte', 'labels': f'{stem}-labels-idx1-ubyte'}
             for split, stem in SPLIT_STEMS.items()}
    outputs = [root / name for split in paths.values() for name in split.values()]
    if not overwrite and (summary := up_to_date(root, params, outputs)) is not None:
        return summary
    claim(root, params, outputs, overwrite)

    splits: dict[str, SplitSummary] = {}
    for split, count in (('train', num_train), ('val', num_val)):
        images, labels = read_split(fmnist_dir, split)
        images, labels = images[:count], labels[:count]
        (root / paths[split]['images']).write_bytes(encode_idx(images))
        (root / paths[split]['labels']).write_bytes(encode_idx(labels))
        per_class = np.bincount(labels, minlength=len(FASHION_MNIST_CLASSES)).tolist()
        splits[split] = SplitSummary(num_images=len(images),
                                     per_class=dict(zip(FASHION_MNIST_CLASSES, per_class)),
                                     paths=paths[split])
    return finish(root, params, splits)
