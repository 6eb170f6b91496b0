"""Shared by the reliability tests (not a config): generated data, options, a tool runner.

``make_tiny_classification_data`` writes an ImageNet-style folder tree
(``<root>/<split>/<class>/<n>.png``) that mmpretrain's ``CustomDataset`` reads, for
``cifar_repl_tiny.py``.
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional, Union

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TINY = str(HERE / 'cifar_repl_tiny.py')
CLASSES = ('red', 'green', 'blue', 'grey')


def make_tiny_classification_data(root: Union[str, Path], num_train: int = 8, num_val: int = 2,
                                  size: int = 32, seed: int = 0) -> Path:
    """Write ``num_train`` / ``num_val`` images of ``size`` px per class; return ``root``.

    Each class is noise around its own colour, so a few iterations already lower the loss.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    colours = {'red': (0, 0, 200), 'green': (0, 200, 0), 'blue': (200, 0, 0),
               'grey': (128, 128, 128)}  # BGR, as cv2 writes
    for split, count in (('train', num_train), ('val', num_val)):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                noise = rng.normal(0, 40, (size, size, 3))
                image = np.clip(noise + np.array(colours[name]), 0, 255).astype(np.uint8)
                cv2.imwrite(str(folder / f'{i}.png'), image)
    return root


def data_options(data_root: Union[str, Path]) -> List[str]:
    """``--cfg-options`` pointing ``cifar_repl_tiny.py`` at generated data."""
    return [f'train_dataloader.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}']


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python <args>`` from the repository root (see ``run_command``)."""
    return run_command([sys.executable, *args], **kwargs)


def run_command(argv: List[str], threads: int = 1, check: bool = True, timeout: float = 600,
                preexec_fn: Optional[Callable[[], None]] = None, env: Optional[dict] = None
                ) -> subprocess.CompletedProcess:
    """Run ``argv`` from the repository root and return the finished process. The tiny models
    are fastest (and, on a busy machine, steadiest) on one thread per process."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS='ignore', **(env or {}))
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout, preexec_fn=preexec_fn)
    if check and result.returncode != 0:
        raise AssertionError(f'{argv} failed ({result.returncode}):\n{result.stdout[-4000:]}\n'
                             f'{result.stderr[-4000:]}')
    return result
