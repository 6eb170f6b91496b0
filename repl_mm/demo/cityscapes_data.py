"""Deterministic toy semantic-segmentation data in the exact Cityscapes on-disk layout.

Street scenes (``street_scene``) with Fashion-MNIST items as their objects (trousers and dresses
as people, sneakers and boots as cars, bags as trucks, sandals as bicycles), written as files
that mmseg's ``CityscapesDataset`` loads and ``IoUMetric`` and ``CityscapesMetric``
(cityscapesscripts) score exactly like the real data::

    out_dir/generator.json                 parameters and counts (reruns are skipped)
    out_dir/leftImg8bit/<split>/<city>/<city>_<seq:06d>_000019_leftImg8bit.png      RGB uint8
    out_dir/gtFine/<split>/<city>/<city>_<seq:06d>_000019_gtFine_labelIds.png       uint8 ids
                                                  ..._gtFine_labelTrainIds.png  uint8, 255 ignore
                                                  ..._gtFine_instanceIds.png    uint16
                                                  ..._gtFine_color.png          RGBA (optional)

Train and val use different cities and different Fashion-MNIST splits (train / t10k), so they
share neither file names nor object pixels.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
from cityscapesscripts.helpers import labels as cs_labels

from .fashion_mnist_source import DEFAULT_FMNIST_DIR, choose_source, read_split
from .generator_record import SplitSummary, Summary, claim, finish, up_to_date
from .street_scene import THING_CLASSES, render_scene

__all__ = ['make_cityscapes_demo', 'GENERATOR_VERSION', 'FMNIST_TO_CITYSCAPES']

#: Bumped whenever the pixels produced for a given set of parameters change.
GENERATOR_VERSION = 1

#: Fashion-MNIST class index -> Cityscapes label name, chosen by silhouette.
FMNIST_TO_CITYSCAPES: dict[int, str] = {
    1: 'person',  # trouser
    3: 'person',  # dress
    7: 'car',  # sneaker
    9: 'car',  # ankle boot
    8: 'truck',  # bag
    5: 'bicycle',  # sandal
}

_SPLITS = ('train', 'val')
_FRAME_NB = 19  # Cityscapes annotates the 20th frame of each snippet: <city>_<seq>_000019_*
_CITY_RE = re.compile(r'^[A-Za-z0-9]+$')  # cityscapesscripts splits file names on '_'
_MIN_SIDE, _MAX_SIDE = 32, 4096


def _build_luts() -> tuple[np.ndarray, np.ndarray]:
    """(256,) uint8 labelId -> trainId, as createTrainIdLabelImgs; (256, 3) labelId -> colour."""
    train = np.full(256, 255, np.uint8)
    color = np.zeros((256, 3), np.uint8)
    for lab in cs_labels.labels:
        if lab.id < 0:  # 'license plate' is never rasterised
            continue
        train[lab.id] = lab.trainId if 0 <= lab.trainId <= 255 else 255
        color[lab.id] = lab.color
    return train, color


_ID_TO_TRAIN_ID, _ID_TO_COLOR = _build_luts()


def _sprite_pools(fmnist_dir: str | os.PathLike[str], split: str) -> dict[str, np.ndarray]:
    """Cityscapes class name -> (N, 28, 28) uint8 Fashion-MNIST items of ``split`` that
    depict it (``FMNIST_TO_CITYSCAPES``)."""
    images, labels = read_split(fmnist_dir, split)
    return {name: images[np.isin(labels, [k for k, v in FMNIST_TO_CITYSCAPES.items()
                                          if v == name])]
            for name in THING_CLASSES}


# ----------------------------------------------------------------------------- files
def _write_png(path: Path, array: np.ndarray) -> None:
    """Write 8-bit grey/BGR(A) or 16-bit grey with OpenCV, whose PNG bytes are deterministic and
    which saves 16-bit grey as it is."""
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(array))
    if not ok:
        raise OSError(f'could not encode {path}')
    path.write_bytes(buf.tobytes())


def _plan_names(n: int, cities: Sequence[str]) -> list[tuple[str, str]]:
    """(city, '<city>_<seq:06d>_000019') for n images split into contiguous blocks per city."""
    out: list[tuple[str, str]] = []
    for city, block in zip(cities, np.array_split(np.arange(n), len(cities))):
        out += [(city, f'{city}_{seq:06d}_{_FRAME_NB:06d}') for seq in range(len(block))]
    return out


def _expected_files(root: Path, split: str, names: list[tuple[str, str]],
                    color: bool) -> list[Path]:
    suffixes = ['labelIds', 'labelTrainIds', 'instanceIds'] + (['color'] if color else [])
    files = []
    for city, stem in names:
        files.append(root / 'leftImg8bit' / split / city / f'{stem}_leftImg8bit.png')
        files += [root / 'gtFine' / split / city / f'{stem}_gtFine_{s}.png' for s in suffixes]
    return files


def _check_cities(name: str, cities: Sequence[str], n: int) -> list[str]:
    if isinstance(cities, str) or not isinstance(cities, Sequence) or len(cities) == 0:
        raise TypeError(f'{name} must be a non-empty sequence of city names, got {cities!r}')
    out = list(cities)
    for c in out:
        if not isinstance(c, str) or not _CITY_RE.match(c):
            raise ValueError(f'{name}: city {c!r} must be a non-empty ASCII alphanumeric string '
                             "(no '_': cityscapesscripts splits file names on it)")
    if len(set(out)) != len(out):
        raise ValueError(f'{name} has duplicate cities: {out}')
    if len(out) > n:
        raise ValueError(f'{name} has {len(out)} cities but only {n} images; each city needs one')
    return out


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value!r}')
    return int(value)


def make_cityscapes_demo(
    out_dir: str | os.PathLike[str],
    num_train: int = 40,
    num_val: int = 10,
    seed: int = 0,
    image_size: tuple[int, int] = (128, 256),
    cities_train: Sequence[str] = ('demotrain0', 'demotrain1'),
    cities_val: Sequence[str] = ('demoval0',),
    fmnist_dir: str | os.PathLike[str] | None = DEFAULT_FMNIST_DIR,
    overwrite: bool = False,
    write_color: bool = True,
) -> Summary:
    """Write a small Cityscapes-format dataset to ``out_dir`` and return its summary.

    Args:
        out_dir: dataset root (mmseg ``data_root``); created if missing.
        num_train, num_val: images per split (each >= number of cities of that split).
        seed: non-negative int; image ``i`` of a split is drawn from
            ``np.random.default_rng([seed, split, i])``: the same seed gives the same bytes, and
            an image's pixels do not depend on how many images are made.
        image_size: (height, width), each in [32, 4096]; 2:1 like Cityscapes' 1024x2048.
        cities_train, cities_val: disjoint city names (alphanumeric, no '_').
        fmnist_dir: folder with the four Fashion-MNIST ``*-ubyte.gz`` files; if any is missing a
            ``RuntimeWarning`` is issued and procedural silhouettes are used instead. ``None``
            asks for the procedural objects without a warning.
        overwrite: regenerate even when ``generator.json`` matches, and allow writing into a
            non-empty folder no demo generator made. Without it, a folder made by this
            generator with other parameters is regenerated (its ``leftImg8bit/`` and ``gtFine/``
            are replaced; nothing else in ``out_dir`` is touched).
        write_color: also write ``*_gtFine_color.png`` (RGBA, like Cityscapes).

    Returns:
        the ``generator_record.Summary``; per split, ``per_class`` counts the visible instances
        of each thing class and ``paths`` is the ``data_prefix`` of mmseg's
        ``CityscapesDataset``.

    Raises:
        ValueError / TypeError: bad arguments. FileExistsError: ``out_dir`` is a file, or is a
        non-empty folder without ``generator.json`` and ``overwrite`` is False.
    """
    num_train = _check_int('num_train', num_train, 1)
    num_val = _check_int('num_val', num_val, 1)
    seed = _check_int('seed', seed, 0)
    if (not isinstance(image_size, Sequence) or len(image_size) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in image_size)
            or not all(_MIN_SIDE <= v <= _MAX_SIDE for v in image_size)):
        raise ValueError(f'image_size must be (height, width) ints in [{_MIN_SIDE}, {_MAX_SIDE}], '
                         f'got {image_size!r}')
    shape = (int(image_size[0]), int(image_size[1]))
    cities = {'train': _check_cities('cities_train', cities_train, num_train),
              'val': _check_cities('cities_val', cities_val, num_val)}
    if set(cities['train']) & set(cities['val']):
        raise ValueError(f'train and val cities must be disjoint, both have '
                         f'{sorted(set(cities["train"]) & set(cities["val"]))}')
    root = Path(out_dir)
    source = choose_source(fmnist_dir)
    params = {'generator': 'repl_mm.demo.cityscapes_data', 'version': GENERATOR_VERSION,
              'source': source, 'num_train': num_train, 'num_val': num_val, 'seed': seed,
              'image_size': list(shape), 'cities_train': cities['train'],
              'cities_val': cities['val'], 'write_color': bool(write_color)}
    names = {'train': _plan_names(num_train, cities['train']),
             'val': _plan_names(num_val, cities['val'])}
    outputs = [f for s in _SPLITS for f in _expected_files(root, s, names[s], write_color)]
    if not overwrite and (summary := up_to_date(root, params, outputs)) is not None:
        return summary
    claim(root, params, [root / 'leftImg8bit', root / 'gtFine'], overwrite)

    splits: dict[str, SplitSummary] = {}
    for split_idx, split in enumerate(_SPLITS):
        sprites = _sprite_pools(fmnist_dir, split) if source == 'fashion-mnist' else None
        instances = dict.fromkeys(THING_CLASSES, 0)
        for i, (city, stem) in enumerate(names[split]):
            scene = render_scene(np.random.default_rng([seed, split_idx, i]), shape, sprites)
            img_dir, gt_dir = root / 'leftImg8bit' / split / city, root / 'gtFine' / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            _write_png(img_dir / f'{stem}_leftImg8bit.png', scene.rgb[..., ::-1])
            _write_png(gt_dir / f'{stem}_gtFine_labelIds.png', scene.label_ids)
            _write_png(gt_dir / f'{stem}_gtFine_labelTrainIds.png',
                       _ID_TO_TRAIN_ID[scene.label_ids])
            _write_png(gt_dir / f'{stem}_gtFine_instanceIds.png', scene.instance_ids)
            if write_color:
                color = _ID_TO_COLOR[scene.label_ids]
                bgra = np.concatenate([color[..., ::-1], np.full(shape + (1,), 255, np.uint8)], -1)
                _write_png(gt_dir / f'{stem}_gtFine_color.png', bgra)
            for name, count in scene.instances.items():
                instances[name] += count
        splits[split] = SplitSummary(
            num_images=len(names[split]), per_class=instances,
            paths={'img_path': f'leftImg8bit/{split}', 'seg_map_path': f'gtFine/{split}'})
    return finish(root, params, splits)
