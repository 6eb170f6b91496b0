"""Deterministic toy instance-segmentation dataset in the exact COCO layout.

Each image is a dim, textured RGB canvas with 1-3 Fashion-MNIST items pasted on it: an item is
upscaled to a large fraction of the canvas, tinted with a random bright colour and pasted through
its own mask, so the mask is exactly the painted pixels.  Placements that touch an earlier object
are rejected, so there is no occlusion and every mask is exact.  The layout is what mmdet's
``CocoDataset`` and ``CocoMetric`` (pycocotools) expect::

    out_dir/annotations/instances_train2017.json
    out_dir/annotations/instances_val2017.json
    out_dir/train2017/000000000001.png ...
    out_dir/val2017/000000000201.png ...
    out_dir/generator.json            # parameters; a second call with the same ones is a no-op

Train items come from Fashion-MNIST's train split and val items from its t10k split, so the two
splits share no source item.  Without the Fashion-MNIST files, procedural shapes (one shape kind
per class) stand in, with a ``RuntimeWarning`` and ``summary['source'] == 'procedural'``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from .fashion_mnist_source import (DEFAULT_FMNIST_DIR, FASHION_MNIST_CLASSES, choose_source,
                                   read_split)
from .generator_record import SplitSummary, Summary, claim, finish, up_to_date

__all__ = ['DEFAULT_CLASSES', 'make_coco_demo']

#: Three silhouettes that differ at any scale: tall and narrow with two legs, a wide block with a
#: handle, an L-shaped boot.  Shirts/pullovers/coats (and sandal/sneaker/boot) look alike.
DEFAULT_CLASSES: tuple[str, ...] = ('trouser', 'bag', 'ankle_boot')

GENERATOR_VERSION = 1            # bump whenever the same parameters would give other files
_SPLITS = (('train', 'train2017'), ('val', 'val2017'))  # split, image folder
_ITEM = 28                     # Fashion-MNIST side, also the side of procedural items
_GAP = 2                       # min free pixels between two objects' masks
_MIN_EXTENT = 20               # Fashion-MNIST items must span >= 20 of their 28 px
_PLACE_TRIES = 30              # placements tried per object before giving up on it
_SHADE_FLOOR = 0.4             # darkest object pixel = 40% of its tint: well above the background
_BG_RANGE = (12.0, 64.0)       # background brightness range (0-255): dim but not black


def make_coco_demo(
    out_dir: str | os.PathLike,
    num_train: int = 200,
    num_val: int = 50,
    seed: int = 0,
    image_size: int = 160,
    classes: Sequence[str] = DEFAULT_CLASSES,
    min_objects: int = 1,
    max_objects: int = 3,
    object_scale: tuple[float, float] = (0.35, 0.6),
    max_bbox_iou: float = 0.1,
    mask_threshold: int = 25,
    tint: bool = True,
    image_ext: str = '.png',
    fmnist_dir: str | os.PathLike | None = DEFAULT_FMNIST_DIR,
    overwrite: bool = False,
) -> Summary:
    """Write a COCO-format instance-segmentation set under ``out_dir`` and return its summary.

    Args:
        out_dir: Dataset root (created if needed).
        num_train, num_val: Number of train / val images (>= 1 each).
        seed: Seed of everything; the same arguments give byte-identical files.
        image_size: Side of the square images, in pixels.
        classes: Fashion-MNIST class names (see ``FASHION_MNIST_CLASSES``); category ids are
            1..len(classes) in this order.
        min_objects, max_objects: Objects per image are drawn uniformly from this range; an
            object that finds no free spot in ``_PLACE_TRIES`` tries is dropped (never the first).
        object_scale: Range of the upscaled 28x28 item side as a fraction of ``image_size``
            (the item's silhouette fills most of that square).
        max_bbox_iou: Largest box IoU allowed between two objects of an image (masks never
            overlap at all).
        mask_threshold: An upscaled item pixel (0-255) above this is part of the object.
        tint: Colour each object with a random bright tint (else grey).
        image_ext: ``'.png'`` (lossless, default) or ``'.jpg'``.
        fmnist_dir: Folder with the four ``*-ubyte.gz`` files.  Missing files switch to
            procedural shapes with a ``RuntimeWarning``; ``None`` asks for them without one.
        overwrite: Regenerate even if ``out_dir/generator.json`` records the same parameters,
            and allow writing into a non-empty folder no demo generator made.

    Returns:
        The ``generator_record.Summary``; ``params['classes']`` holds the canonical class
        names, and per split ``per_class`` counts the instances of each class and ``paths``
        holds the ``ann_file`` and ``img`` prefix of mmdet's ``CocoDataset``.

    Raises:
        ValueError / TypeError: bad arguments.  FileExistsError: ``out_dir`` is a file, or is a
        non-empty folder without ``generator.json`` and ``overwrite`` is False.
    """
    class_names = _check_args(num_train, num_val, seed, image_size, classes, min_objects,
                              max_objects, object_scale, max_bbox_iou, mask_threshold, image_ext)
    source = choose_source(fmnist_dir)
    params: dict[str, Any] = dict(
        generator='repl_mm.demo.coco_data', version=GENERATOR_VERSION, source=source,
        num_train=int(num_train), num_val=int(num_val), seed=int(seed),
        image_size=int(image_size), classes=list(class_names), min_objects=int(min_objects),
        max_objects=int(max_objects), object_scale=[float(v) for v in object_scale],
        max_bbox_iou=float(max_bbox_iou), mask_threshold=int(mask_threshold), tint=bool(tint),
        image_ext=image_ext)
    root = Path(out_dir)
    counts = {'train': num_train, 'val': num_val}
    ann_files = {split: f'annotations/instances_{folder}.json' for split, folder in _SPLITS}
    first_id = {'train': 1, 'val': 1 + num_train}  # image ids are unique across the splits
    file_names = {split: [f'{first_id[split] + i:012d}{image_ext}' for i in range(counts[split])]
                  for split, _ in _SPLITS}
    outputs = [root / ann_files[split] for split, _ in _SPLITS] + [
        root / folder / name for split, folder in _SPLITS for name in file_names[split]]
    if not overwrite and (summary := up_to_date(root, params, outputs)) is not None:
        return summary
    claim(root, params, [root / folder for _, folder in _SPLITS]
          + [root / ann_files[split] for split, _ in _SPLITS], overwrite)

    splits: dict[str, SplitSummary] = {}
    next_ann_id = 1
    for split_idx, (split, folder) in enumerate(_SPLITS):
        items = _ItemSource(fmnist_dir, split, class_names, source, params['mask_threshold'])
        (root / folder).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for index, file_name in enumerate(file_names[split]):
            # One generator per image: an image depends only on (seed, split, index).
            rng = np.random.default_rng([seed, split_idx, index])
            canvas, objects = _render_image(rng, items, params)
            _write_image(root / folder / file_name, canvas)
            image_id = first_id[split] + index
            images.append(dict(id=image_id, file_name=file_name,
                               width=image_size, height=image_size))
            for obj in objects:
                annotations.append(dict(id=next_ann_id, image_id=image_id, **obj))
                next_ann_id += 1
        _write_json(root / ann_files[split], dict(
            info=dict(description=f'repl-mm COCO demo ({source}), {split} split',
                      version=str(GENERATOR_VERSION)),
            licenses=[],
            images=images,
            annotations=annotations,
            categories=[dict(id=i + 1, name=c, supercategory='fashion')
                        for i, c in enumerate(class_names)],
        ))
        per_class = np.bincount([a['category_id'] - 1 for a in annotations],
                                minlength=len(class_names))
        splits[split] = SplitSummary(
            num_images=len(images), per_class=dict(zip(class_names, per_class.tolist())),
            paths={'ann_file': ann_files[split], 'img': f'{folder}/'})
    return finish(root, params, splits)


# ----------------------------------------------------------------------------- argument checks
def _check_args(num_train: Any, num_val: Any, seed: Any, image_size: Any,
                classes: Sequence[str], min_objects: Any, max_objects: Any,
                object_scale: Sequence[float], max_bbox_iou: float, mask_threshold: Any,
                image_ext: str) -> tuple[str, ...]:
    """Raise ``ValueError``/``TypeError`` with a clear message; return canonical class names."""
    def _int(name: str, value: Any, low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f'{name} must be an int, got {value!r}')
        if value < low:
            raise ValueError(f'{name} must be >= {low}, got {value}')

    _int('num_train', num_train, 1)
    _int('num_val', num_val, 1)
    _int('seed', seed, 0)
    _int('image_size', image_size, 32)
    _int('min_objects', min_objects, 1)
    _int('max_objects', max_objects, 1)
    _int('mask_threshold', mask_threshold, 0)
    if max_objects < min_objects:
        raise ValueError(f'max_objects ({max_objects}) must be >= min_objects ({min_objects})')
    if mask_threshold > 254:
        raise ValueError(f'mask_threshold must be in [0, 254], got {mask_threshold}')
    if len(object_scale) != 2 or not 0 < object_scale[0] <= object_scale[1] <= 1:
        raise ValueError(f'object_scale must be (low, high) with 0 < low <= high <= 1, '
                         f'got {tuple(object_scale)}')
    if object_scale[0] * image_size < 8:
        raise ValueError(f'object_scale[0] * image_size = {object_scale[0] * image_size:g} px '
                         'is too small for a usable mask (need >= 8 px)')
    if not 0 <= max_bbox_iou <= 1:
        raise ValueError(f'max_bbox_iou must be in [0, 1], got {max_bbox_iou}')
    if image_ext not in ('.png', '.jpg'):
        raise ValueError(f"image_ext must be '.png' or '.jpg', got {image_ext!r}")
    if isinstance(classes, str) or len(classes) == 0:
        raise ValueError(f'classes must be a non-empty sequence of names from '
                         f'{list(FASHION_MNIST_CLASSES)}, got {classes!r}')
    names = tuple(str(c).strip().lower().replace(' ', '_') for c in classes)
    unknown = [c for c in names if c not in FASHION_MNIST_CLASSES]
    if unknown:
        raise ValueError(f'unknown class name(s) {unknown}; valid names: '
                         f'{list(FASHION_MNIST_CLASSES)}')
    if len(set(names)) != len(names):
        raise ValueError(f'classes must be unique, got {list(names)}')
    return names


# ----------------------------------------------------------------------------- files
def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, separators=(',', ':'))


def _write_image(path: Path, rgb: np.ndarray) -> None:
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    params = ([cv2.IMWRITE_PNG_COMPRESSION, 6] if path.suffix == '.png'
              else [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f'could not write {path}')


# ----------------------------------------------------------------------------- item sources
class _ItemSource:
    """Draws (28, 28) uint8 grey items of a given class index (0..len(classes)-1)."""

    def __init__(self, folder: str | os.PathLike | None, split: str, classes: Sequence[str],
                 source: str, threshold: int) -> None:
        self.num_classes = len(classes)
        self.procedural = source == 'procedural'
        if not self.procedural:
            self.images, labels = read_split(folder, split)
            # Skip the few items drawn small inside their frame, so every object is large.
            on = self.images > threshold
            extent = np.maximum(on.any(axis=1).sum(axis=1), on.any(axis=2).sum(axis=1))
            self.pools = [np.flatnonzero((labels == FASHION_MNIST_CLASSES.index(c))
                                         & (extent >= _MIN_EXTENT)) for c in classes]

    def draw(self, rng: np.random.Generator, cls: int) -> np.ndarray:
        if self.procedural:
            return _procedural_item(rng, cls)
        return self.images[self.pools[cls][rng.integers(len(self.pools[cls]))]]


def _regular(n: int, radius: float = 0.95, phase: float = -np.pi / 2,
             inner: float | None = None) -> list[tuple[float, float]]:
    """Vertices of a regular polygon (or a star when ``inner`` is given) in [-1, 1]^2."""
    steps = 2 * n if inner is not None else n
    radii = [radius if (inner is None or k % 2 == 0) else inner for k in range(steps)]
    return [(r * np.cos(phase + 2 * np.pi * k / steps), r * np.sin(phase + 2 * np.pi * k / steps))
            for k, r in enumerate(radii)]


#: Fallback silhouettes in [-1, 1]^2 (x right, y down), one per class position, all distinct.
_SHAPES: tuple[list[tuple[float, float]], ...] = (
    _regular(48, radius=0.9),                                                    # ellipse
    [(-0.6, -0.9), (0.6, -0.9), (0.6, 0.9), (-0.6, 0.9)],                        # rectangle
    [(0.0, -0.95), (0.9, 0.8), (-0.9, 0.8)],                                     # triangle
    [(0.0, -0.95), (0.75, 0.0), (0.0, 0.95), (-0.75, 0.0)],                      # diamond
    [(-0.3, -0.9), (0.3, -0.9), (0.3, -0.3), (0.9, -0.3), (0.9, 0.3), (0.3, 0.3),
     (0.3, 0.9), (-0.3, 0.9), (-0.3, 0.3), (-0.9, 0.3), (-0.9, -0.3), (-0.3, -0.3)],  # cross
    _regular(5, radius=0.95, inner=0.42),                                        # star
    _regular(6, radius=0.92, phase=0.0),                                         # hexagon
    [(-0.8, -0.9), (-0.25, -0.9), (-0.25, 0.4), (0.8, 0.4), (0.8, 0.9), (-0.8, 0.9)],  # L
    [(-0.9, -0.9), (0.9, -0.9), (0.9, -0.4), (0.25, -0.4), (0.25, 0.9), (-0.25, 0.9),
     (-0.25, -0.4), (-0.9, -0.4)],                                               # T
    [(-0.9, -0.3), (0.2, -0.3), (0.2, -0.8), (0.95, 0.0), (0.2, 0.8), (0.2, 0.3),
     (-0.9, 0.3)],                                                               # arrow
)


def _procedural_item(rng: np.random.Generator, cls: int) -> np.ndarray:
    """A (28, 28) uint8 item: class ``cls``'s shape, randomly stretched/rotated, shaded."""
    pts = np.asarray(_SHAPES[cls], dtype=np.float64)
    angle = np.deg2rad(rng.uniform(-20.0, 20.0))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = (pts * rng.uniform(0.75, 1.0, size=2)) @ rot.T
    big = 4 * _ITEM                                  # draw at 4x, then area-downsample: smooth
    poly = np.round((big / 2) + (big / 2 - 8) * pts / np.abs(pts).max() * 0.98).astype(np.int32)
    mask = np.zeros((big, big), np.uint8)
    cv2.fillPoly(mask, [poly], 1)
    lo, hi = rng.uniform(120.0, 255.0, size=2)       # linear shading gradient across the item
    ramp = np.linspace(lo, hi, big)
    shade = ramp[:, None] if rng.integers(2) else ramp[None, :]
    item = mask * np.broadcast_to(shade, (big, big))
    return cv2.resize(item.astype(np.float32), (_ITEM, _ITEM),
                      interpolation=cv2.INTER_AREA).round().astype(np.uint8)


# ----------------------------------------------------------------------------- rendering
def _render_image(rng: np.random.Generator, items: _ItemSource,
                  params: dict[str, Any]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Return an (S, S, 3) uint8 RGB canvas and its COCO annotations (without ids)."""
    size = params['image_size']
    canvas = _background(rng, size)
    occupied = np.zeros((size, size), bool)          # object masks grown by _GAP pixels
    boxes: list[tuple[int, int, int, int]] = []
    objects: list[dict[str, Any]] = []
    lo, hi = params['object_scale']
    num = int(rng.integers(params['min_objects'], params['max_objects'] + 1))
    for _ in range(num):
        cls = int(rng.integers(items.num_classes))
        side = int(round(rng.uniform(lo, hi) * size))
        mask, shade = _item_mask(items.draw(rng, cls), side, params['mask_threshold'])
        if mask is None:
            continue
        h, w = mask.shape
        for _try in range(_PLACE_TRIES):
            x, y = int(rng.integers(size - w + 1)), int(rng.integers(size - h + 1))
            box = (x, y, w, h)
            if occupied[y:y + h, x:x + w][mask].any():
                continue
            if any(_box_iou(box, other) > params['max_bbox_iou'] for other in boxes):
                continue
            break
        else:
            continue                                 # no free spot: drop this object
        color = _tint(rng) if params['tint'] else np.ones(3)
        # Even the darkest object pixel stays far above the dim background: high contrast.
        rgb = 255.0 * (_SHADE_FLOOR + (1 - _SHADE_FLOOR) * shade[..., None]) * color
        region = canvas[y:y + h, x:x + w]
        region[mask] = np.clip(np.round(rgb[mask]), 0, 255).astype(np.uint8)
        grown = cv2.dilate(np.pad(mask, _GAP).astype(np.uint8),
                           np.ones((2 * _GAP + 1,) * 2, np.uint8))
        _or_window(occupied, grown.astype(bool), x - _GAP, y - _GAP)
        boxes.append(box)
        objects.append(dict(
            category_id=cls + 1,
            bbox=[float(x), float(y), float(w), float(h)],
            area=float(mask.sum()),
            segmentation=_mask_to_polygons(mask, x, y),
            iscrowd=0,
        ))
    return canvas, objects


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dim (S, S, 3) uint8 texture: smooth colour blotches plus mild pixel noise, never black."""
    blotches = rng.uniform(0.0, 1.0, size=(5, 5, 3)).astype(np.float32)
    smooth = cv2.resize(blotches, (size, size), interpolation=cv2.INTER_CUBIC)
    lo, hi = _BG_RANGE
    bg = lo + (hi - lo) * np.clip(smooth, 0.0, 1.0) + rng.normal(0.0, 4.0, size=(size, size, 3))
    return np.clip(np.round(bg), 0, 255).astype(np.uint8)


def _item_mask(item: np.ndarray, side: int,
               threshold: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Upscale a (28, 28) item to (side, side); return its tight (h, w) bool mask and shading.

    The mask keeps the largest 8-connected blob above ``threshold`` with its holes filled, so
    every object is one solid region and the polygon conversion is exact.  Shading is in [0, 1].
    """
    big = cv2.resize(item, (side, side), interpolation=cv2.INTER_LINEAR)
    binary = (big > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count < 2:
        return None, big
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == keep).astype(np.uint8)
    flood = np.pad(blob, 1)                          # background reachable from the border
    cv2.floodFill(flood, None, (0, 0), 1)
    mask = blob.astype(bool) | (flood[1:-1, 1:-1] == 0)
    x, y, w, h = (int(v) for v in stats[keep, :4])
    return mask[y:y + h, x:x + w], big[y:y + h, x:x + w].astype(np.float64) / 255.0


def _mask_to_polygons(mask: np.ndarray, x0: int, y0: int) -> list[list[float]]:
    """COCO polygons of an (h, w) bool mask placed at (x0, y0), exact under pycocotools.

    ``cv2.findContours`` runs on the mask upsampled 2x; a boundary sub-pixel at even coordinate
    2i is a left/top edge (pixel corner i) and one at odd 2i+1 a right/bottom edge (corner i+1),
    so ``ceil(c / 2)`` maps the contour onto pixel corners.  The polygon then encloses exactly
    the mask's pixels, and pycocotools decodes it back to the same mask (the plain pixel-centre
    contour loses a half-pixel rim).  Polygons with < 3 distinct points are dropped.
    """
    up = np.repeat(np.repeat(mask.astype(np.uint8), 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        pts = (contour.reshape(-1, 2) + 1) // 2
        pts = pts[np.any(pts != np.roll(pts, 1, axis=0), axis=1)]  # drop repeated corners
        if len(pts) < 3:
            continue
        polygons.append((pts + (x0, y0)).astype(np.float64).reshape(-1).tolist())
    return polygons


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _or_window(target: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """``target[y:y+h, x:x+w] |= patch``, clipped to ``target``'s bounds."""
    h, w = patch.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, target.shape[1]), min(y + h, target.shape[0])
    target[y0:y1, x0:x1] |= patch[y0 - y:y1 - y, x0 - x:x1 - x]


def _tint(rng: np.random.Generator) -> np.ndarray:
    """A random bright RGB colour in [0, 1]^3 (full value, moderate saturation)."""
    hue = rng.uniform(0.0, 6.0)
    sat = rng.uniform(0.0, 0.7)
    k = (np.array([5.0, 3.0, 1.0]) + hue) % 6.0      # standard HSV->RGB with V = 1
    return 1.0 - sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
