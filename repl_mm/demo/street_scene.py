"""A street scene drawn procedurally, painted with its Cityscapes labels as it is drawn.

Sky, a street canyon of buildings, trees, poles with signs or lights, a road in one-point
perspective with lane marks, sidewalks, terrain, the ego-vehicle hood, and the 'thing' objects
(cars, trucks, people, bicycles) whose silhouettes are 28x28 grey sprites: Fashion-MNIST items
when the caller passes them, procedural stand-ins otherwise. Every layer is painted into the
colour image, the Cityscapes labelId image and an instance-owner image at once, so the labels
match the pixels exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import cv2
import numpy as np
from cityscapesscripts.helpers import labels as cs_labels

__all__ = ['SPRITE_THRESHOLD', 'Scene', 'THING_CLASSES', 'render_scene']

#: a sprite pixel brighter than this is part of the object (Fashion-MNIST background is ~0)
SPRITE_THRESHOLD = 30

_ID: dict[str, int] = {lab.name: lab.id for lab in cs_labels.labels}


@dataclass(frozen=True)
class _ObjectClass:
    """How one Cityscapes 'thing' class is drawn."""

    name: str
    count: tuple[int, int]  # instances per image, inclusive range
    height: float  # object height / image height at the bottom of the frame (depth t = 1)
    stretch: tuple[float, float]  # horizontal stretch of the sprite's own aspect ratio
    place: str  # 'road' | 'sidewalk' | 'roadside'
    colors: tuple[tuple[int, int, int], ...]
    wheels: bool = False


_OBJECT_CLASSES: tuple[_ObjectClass, ...] = (
    _ObjectClass('car', (1, 4), 0.34, (1.1, 1.5), 'road',
                 ((190, 30, 30), (30, 60, 160), (185, 185, 190), (35, 35, 40), (230, 230, 225),
                  (40, 110, 60)), wheels=True),
    _ObjectClass('truck', (0, 1), 0.55, (1.2, 1.6), 'road',
                 ((220, 220, 210), (210, 120, 30), (60, 90, 140)), wheels=True),
    _ObjectClass('person', (1, 4), 0.5, (0.9, 1.1), 'sidewalk',
                 ((200, 40, 60), (40, 40, 50), (60, 90, 170), (210, 190, 60), (120, 70, 150))),
    _ObjectClass('bicycle', (1, 2), 0.26, (1.0, 1.3), 'roadside',
                 ((25, 25, 25), (160, 25, 30), (30, 40, 150))),
)
_GROUND_IDS = [_ID['road'], _ID['sidewalk'], _ID['terrain']]
_SKIN = ((250, 205, 170), (225, 170, 130), (160, 110, 80), (95, 65, 45))

#: the Cityscapes classes drawn as objects, in drawing order
THING_CLASSES: tuple[str, ...] = tuple(spec.name for spec in _OBJECT_CLASSES)


class Scene(NamedTuple):
    """One rendered scene."""

    rgb: np.ndarray  # (H, W, 3) uint8
    label_ids: np.ndarray  # (H, W) uint8 Cityscapes labelIds
    instance_ids: np.ndarray  # (H, W) uint16: labelId * 1000 + k on instances, labelId elsewhere
    instances: dict[str, int]  # visible instances per class of THING_CLASSES


# ----------------------------------------------------------------------------- object sprites
def _procedural_sprite(name: str, rng: np.random.Generator) -> np.ndarray:
    """A (28, 28) uint8 stand-in silhouette for ``name`` when Fashion-MNIST is unavailable."""
    s = np.zeros((28, 28), np.uint8)
    j = lambda a, b: int(rng.integers(a, b + 1))  # noqa: E731
    if name == 'person':
        cv2.circle(s, (14, 4), 3, j(170, 230), -1)
        cv2.rectangle(s, (14 - j(3, 5), 8), (14 + j(3, 5), 17), j(120, 255), -1)
        cv2.line(s, (12, 17), (j(9, 12), 27), j(100, 200), 2)
        cv2.line(s, (16, 17), (j(16, 19), 27), j(100, 200), 2)
    elif name in ('car', 'truck'):
        top = j(2, 6) if name == 'truck' else j(10, 13)
        cv2.rectangle(s, (1, top), (26, 22), j(120, 255), -1)
        if name == 'car':
            cv2.rectangle(s, (j(5, 8), top - j(4, 6)), (j(18, 21), top), j(80, 160), -1)
    else:  # bicycle
        w = j(150, 255)
        for cx in (7, 21):
            cv2.circle(s, (cx, 20), j(5, 6), w, 2)
        cv2.line(s, (7, 20), (14, 10), w, 2)
        cv2.line(s, (14, 10), (21, 20), w, 2)
        cv2.line(s, (12, 8), (17, 8), w, 2)
    noise = rng.integers(0, 40, (28, 28))
    shaded = np.clip(s.astype(np.int32) - noise, SPRITE_THRESHOLD + 20, 255)
    return np.where(s > 0, shaded, 0).astype(np.uint8)


def _pick_sprite(name: str, rng: np.random.Generator,
                 sprites: dict[str, np.ndarray] | None) -> np.ndarray:
    """A (h, w) uint8 sprite cropped to its non-background bounding box."""
    if sprites is None:
        sprite = _procedural_sprite(name, rng)
    else:
        pool = sprites[name]
        sprite = pool[int(rng.integers(len(pool)))]
    ys, xs = np.nonzero(sprite > SPRITE_THRESHOLD)
    if ys.size == 0:
        return np.full((4, 4), 255, np.uint8)
    return sprite[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


# ----------------------------------------------------------------------------- scene rendering
def _noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """(h, w) float32 smooth value noise in ~[0, 1] with features about ``cell`` pixels wide."""
    h, w = shape
    grid = rng.random((max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)), dtype=np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _jitter(rng: np.random.Generator, rgb: Sequence[int], amount: float) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


@dataclass
class _Canvas:
    """Colour, label-id and instance-owner layers painted together so they always agree."""

    img: np.ndarray  # (H, W, 3) float32 RGB
    lab: np.ndarray  # (H, W) uint8 Cityscapes label ids
    owner: np.ndarray  # (H, W) int32 index of the object owning the pixel, -1 for stuff

    def paint(self, top: int, left: int, mask: np.ndarray, rgb: np.ndarray, label_id: int,
              owner: int = -1) -> None:
        """Paste a (h, w) bool mask with colours (h, w, 3) at (top, left), clipped to the frame."""
        hh, ww = self.lab.shape
        h, w = mask.shape
        y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + h, hh), min(left + w, ww)
        if y0 >= y1 or x0 >= x1:
            return
        m = mask[y0 - top:y1 - top, x0 - left:x1 - left]
        self.img[y0:y1, x0:x1][m] = rgb[y0 - top:y1 - top, x0 - left:x1 - left][m]
        self.lab[y0:y1, x0:x1][m] = label_id
        self.owner[y0:y1, x0:x1][m] = owner


@dataclass(frozen=True)
class _Street:
    """Road in one-point perspective: depth t = 0 at the horizon row, 1 at the bottom row."""

    horizon: int
    height: int
    vx: float  # vanishing point column
    offset: float  # lateral shift of the road centre at t = 1
    road: float  # road half width at t = 1
    walk: float  # sidewalk width at t = 1

    def depth(self, y: np.ndarray | float) -> np.ndarray | float:
        return np.clip((y - self.horizon) / (self.height - self.horizon), 0.0, 1.0)

    def row(self, t: float) -> float:
        return self.horizon + t * (self.height - 1 - self.horizon)

    def centre(self, t: np.ndarray | float) -> np.ndarray | float:
        return self.vx + t * self.offset


@dataclass
class _Item:
    """Something drawn back to front (sorted by ``base``, the image row it stands on)."""

    base: float
    draw: Callable[['_Canvas', int], None]  # (canvas, owner id)
    label: str | None = None  # Cityscapes 'thing' name when it gets an instance id


def _draw_background(rng: np.random.Generator, cv: _Canvas, st: _Street) -> None:
    """Sky, buildings and the ground layers (road, sidewalk, terrain) into ``cv``."""
    hh, ww = cv.lab.shape
    yy = np.arange(hh, dtype=np.float32)[:, None]
    xx = np.arange(ww, dtype=np.float32)[None, :]
    hz = st.horizon

    # sky: vertical gradient with clouds
    a = np.clip(yy / max(hz, 1), 0, 1)[..., None]
    sky = _jitter(rng, (60, 120, 190), 20) * (1 - a) + _jitter(rng, (190, 205, 225), 15) * a
    cloud = np.clip((_noise(rng, (hh, ww), ww / 6) - 0.55) * 3, 0, 1) * rng.uniform(0.2, 0.9)
    cv.img[:] = sky * (1 - cloud[..., None]) + 235 * cloud[..., None]
    cv.lab[:] = _ID['sky']

    # ground geometry
    t = st.depth(yy)
    c = st.centre(t)
    d = np.abs(xx - c)
    half_road = t * st.road + 0.5
    half_walk = half_road + t * st.walk
    ground = np.broadcast_to(yy >= hz, (hh, ww))
    is_road = ground & (d <= half_road)
    is_walk = ground & ~is_road & (d <= half_walk)
    beyond = ground & (d > half_walk)
    left = xx < c
    kinds = rng.random(2) < 0.65  # per side (left, right): street canyon or open terrain
    built_side = np.where(left, kinds[0], kinds[1])

    # buildings: blocks of columns; on canyon sides facades grow towards the image edge
    tops = np.full(ww, 2 * hh, np.float32)  # 2 * hh: no building in this column
    base_rgb = np.zeros((ww, 3), np.float32)
    win = np.zeros((4, ww), np.float32)  # x start, period x, period y, window darkness
    x = 0
    while x < ww:
        bw = int(rng.integers(max(3, ww // 25), max(4, ww // 6) + 1))
        xc = x + bw / 2
        canyon = bool(kinds[0] if xc < st.vx else kinds[1])
        far = abs(xc - st.vx) / ww
        if canyon:
            height = hh * (rng.uniform(0.04, 0.12) + far * rng.uniform(0.6, 1.2))
        else:
            height = hh * rng.uniform(0.02, 0.14) if rng.random() > 0.3 else 0.0
        sl = slice(x, min(ww, x + bw))
        if height > 0:
            tops[sl] = hz - height
        g = rng.uniform(80, 185)
        base_rgb[sl] = np.clip(g + rng.uniform(-18, 18, 3), 0, 255)
        win[:, sl] = np.array([x, max(2.0, bw / rng.integers(2, 6)),
                               max(2.0, hh * rng.uniform(0.03, 0.07)), rng.uniform(0.35, 0.6)],
                              np.float32)[:, None]
        x += bw
    building = (yy >= tops[None, :]) & ((yy < hz) | (beyond & built_side))
    windows = (((xx - win[0]) % win[1]) < win[1] * 0.5) & (((yy - tops) % win[2]) < win[2] * 0.45)
    facade = base_rgb[None] * (0.85 + 0.3 * _noise(rng, (hh, ww), 4))[..., None]
    facade = np.where(windows[..., None], facade * win[3][None, :, None] + [0, 5, 20], facade)
    cv.img[building] = facade[building]
    cv.lab[building] = _ID['building']

    # road: asphalt, dashed centre line, solid edge lines
    tt = np.broadcast_to(t, (hh, ww))
    asphalt = _jitter(rng, (90, 88, 95), 20) * (0.85 + 0.3 * _noise(rng, (hh, ww), 6))[..., None]
    lane_w = tt * ww * 0.012 + 0.3
    dash = ((rng.uniform(1.5, 3.0) / (tt + 0.05)) % 1.0) < 0.5
    edge = (half_road - d < lane_w * 1.5) & (tt > 0.05)
    paint = is_road & (((d < lane_w) & dash) | edge)
    asphalt[paint] = _jitter(rng, (225, 225, 220), 10)
    cv.img[is_road] = asphalt[is_road]
    cv.lab[is_road] = _ID['road']

    # sidewalk: paving tiles, bright curb
    walk = _jitter(rng, (175, 155, 170), 18) * (0.9 + 0.2 * _noise(rng, (hh, ww), 3))[..., None]
    tiles = ((rng.uniform(3, 6) / (tt + 0.05)) % 1.0) < 0.12
    walk[tiles] *= 0.8
    walk[(d - half_road) < tt * ww * 0.01 + 0.5] *= 1.15
    cv.img[is_walk] = walk[is_walk]
    cv.lab[is_walk] = _ID['sidewalk']

    # terrain where the roadside is open
    open_ground = beyond & ~building
    grass = _jitter(rng, (115, 160, 80), 20) * (0.7 + 0.6 * _noise(rng, (hh, ww), 5))[..., None]
    cv.img[open_ground] = grass[open_ground]
    cv.lab[open_ground] = _ID['terrain']


def _plan_tree(rng: np.random.Generator, st: _Street, shape: tuple[int, int],
               leaves: np.ndarray) -> _Item:
    hh, ww = shape
    t = rng.uniform(0.03, 0.45)
    base = st.row(t)
    side = 1 if rng.random() < 0.5 else -1
    x = st.centre(t) + side * (t * st.road + t * st.walk * rng.uniform(0.7, 1.3))
    size = (0.08 + 0.9 * t) * hh * rng.uniform(0.7, 1.1)
    r = max(2.0, size * 0.3)
    blobs = [(x + rng.uniform(-0.6, 0.6) * r, base - size * 0.7 + rng.uniform(-0.4, 0.4) * r,
              r * rng.uniform(0.55, 0.9)) for _ in range(int(rng.integers(3, 7)))]
    green = _jitter(rng, (70, 115, 40), 20)
    bark = _jitter(rng, (95, 70, 50), 15)
    trunk_w = max(1, int(round(size * 0.05)))

    def draw(cv: _Canvas, owner: int) -> None:
        mask = np.zeros((hh, ww), np.uint8)
        cv2.rectangle(mask, (int(x) - trunk_w // 2, int(base - size * 0.6)),
                      (int(x) + (trunk_w - 1) // 2, int(base)), 2, -1)
        for bx, by, br in blobs:
            cv2.circle(mask, (int(round(bx)), int(round(by))), max(1, int(round(br))), 1, -1)
        rgb = np.where((mask == 2)[..., None], bark, green * (0.55 + 0.7 * leaves)[..., None])
        cv.paint(0, 0, mask > 0, rgb, _ID['vegetation'], owner)

    return _Item(base, draw)


def _plan_pole(rng: np.random.Generator, st: _Street, shape: tuple[int, int]) -> _Item:
    hh, ww = shape
    t = rng.uniform(0.08, 0.7)
    base = st.row(t)
    side = 1 if rng.random() < 0.5 else -1
    x = int(round(st.centre(t) + side * (t * st.road + 0.35 * t * st.walk)))
    height = t * hh * rng.uniform(0.9, 1.3) + 4
    width = max(1, int(round(t * ww * 0.008)))
    top = int(round(base - height))
    head = max(2, int(round(height * 0.13)))
    is_sign = rng.random() < 0.6
    sign_colors = ((220, 200, 20), (30, 70, 180), (200, 30, 30))
    head_rgb = _jitter(rng, sign_colors[int(rng.integers(3))], 15)
    gray = _jitter(rng, (140, 140, 145), 15)
    lamp = int(rng.integers(3))

    def draw(cv: _Canvas, owner: int) -> None:
        pole = np.zeros((hh, ww), np.uint8)
        cv2.rectangle(pole, (x - width // 2, top), (x + (width - 1) // 2, int(base)), 1, -1)
        cv.paint(0, 0, pole > 0, np.broadcast_to(gray, (hh, ww, 3)), _ID['pole'], owner)
        obj = np.zeros((hh, ww), np.uint8)
        if is_sign:
            cv2.circle(obj, (x, top - head // 2), max(1, head // 2 + 1), 1, -1)
            rgb = np.broadcast_to(head_rgb, (hh, ww, 3))
            cv.paint(0, 0, obj > 0, rgb, _ID['traffic sign'], owner)
        else:
            hw = max(1, head // 3)
            cv2.rectangle(obj, (x - hw, top - head), (x + hw, top), 1, -1)
            ly = top - head + (2 * lamp + 1) * head // 6
            cv2.circle(obj, (x, ly), max(0, hw - 1), 2, -1)
            lamp_rgb = [(230, 40, 30), (240, 180, 20), (40, 220, 90)][lamp]
            rgb = np.where((obj == 2)[..., None], np.float32(lamp_rgb), np.float32(30))
            cv.paint(0, 0, obj > 0, rgb, _ID['traffic light'], owner)

    return _Item(base, draw)


def _plan_object(rng: np.random.Generator, spec: _ObjectClass, st: _Street, shape: tuple[int, int],
                 sprites: dict[str, np.ndarray] | None) -> _Item | None:
    hh, ww = shape
    t = rng.uniform(0.15, 0.95)
    base = st.row(t)
    h = int(round(t * hh * spec.height * rng.uniform(0.85, 1.15)))
    sprite = _pick_sprite(spec.name, rng, sprites)
    w = int(round(h * sprite.shape[1] / sprite.shape[0] * rng.uniform(*spec.stretch)))
    flip = rng.random() < 0.5
    side = 1 if rng.random() < 0.5 else -1
    half_road, walk = t * st.road, t * st.walk
    if spec.place == 'road':
        x = st.centre(t) + rng.uniform(-0.7, 0.7) * half_road
    elif spec.place == 'sidewalk':
        x = st.centre(t) + side * (half_road + rng.uniform(0.2, 0.8) * walk)
    else:
        x = st.centre(t) + side * half_road * rng.uniform(0.75, 1.05)
    x = float(np.clip(x, 0, ww - 1))  # keep at least half of the object in the frame
    color = _jitter(rng, spec.colors[int(rng.integers(len(spec.colors)))], 20)
    skin = _jitter(rng, _SKIN[int(rng.integers(len(_SKIN)))], 10)
    grain = rng.normal(0.0, 6.0, (max(h, 1) * 2, max(w, 1), 3)).astype(np.float32)
    if h < 4 or w < 2:  # too far to see: skip (after all draws, so the stream stays aligned)
        return None

    src = sprite[:, ::-1] if flip else sprite
    interp = cv2.INTER_AREA if h < src.shape[0] else cv2.INTER_LINEAR
    body = cv2.resize(src, (w, h), interpolation=interp)
    mask = cv2.morphologyEx((body > SPRITE_THRESHOLD + 10).astype(np.uint8), cv2.MORPH_CLOSE,
                            np.ones((3, 3), np.uint8))
    shade = 0.35 + 0.8 * body.astype(np.float32)[..., None] / 255.0
    rgb = color * shade
    if spec.wheels:  # dark wheels at the bottom corners make vehicles read as vehicles
        r = max(1, int(round(h * 0.2)))
        for cx in (int(w * 0.22), int(w * 0.78)):
            cv2.circle(mask, (cx, h - 1 - r // 2), r, 1, -1)
            wheel = np.zeros_like(mask)
            cv2.circle(wheel, (cx, h - 1 - r // 2), r, 1, -1)
            rgb[wheel > 0] = 25.0
    if spec.name == 'person':  # head above the garment
        r = max(1, int(round(h * 0.09)))
        pad = 2 * r + 1
        mask = np.concatenate([np.zeros((pad, w), np.uint8), mask])
        rgb = np.concatenate([np.zeros((pad, w, 3), np.float32), rgb])
        cv2.circle(mask, (w // 2, r), r, 2, -1)
        rgb[mask == 2] = skin
    rgb = np.clip(rgb + grain[:rgb.shape[0]], 0, 255)
    mask_b = mask > 0
    top, left = int(round(base)) - mask.shape[0] + 1, int(round(x - w / 2))
    is_vehicle = spec.name in ('car', 'truck')
    label_id = _ID[spec.name]

    def draw(cv: _Canvas, owner: int) -> None:
        if is_vehicle:  # contact shadow on the ground; labels stay road/sidewalk
            shadow = np.zeros(cv.lab.shape, np.uint8)
            cv2.ellipse(shadow, (int(round(x)), int(round(base))),
                        (max(1, w // 2 + 1), max(1, h // 10)), 0, 0, 360, 1, -1)
            on_ground = (shadow > 0) & np.isin(cv.lab, _GROUND_IDS)
            cv.img[on_ground] *= 0.55
        cv.paint(top, left, mask_b, rgb, label_id, owner)

    return _Item(base, draw, spec.name)


def _draw_ego(rng: np.random.Generator, cv: _Canvas) -> None:
    """Ego-vehicle hood at the bottom (label 'ego vehicle', ignored in training and eval)."""
    hh, ww = cv.lab.shape
    eh = hh * rng.uniform(0.05, 0.09)
    mask = np.zeros((hh, ww), np.uint8)
    cv2.ellipse(mask, (int(ww * rng.uniform(0.45, 0.55)), int(hh + eh * 0.4)),
                (int(ww * rng.uniform(0.6, 0.8)), max(1, int(eh * 1.4))), 0, 0, 360, 1, -1)
    yy = np.arange(hh, dtype=np.float32)[:, None, None]
    rgb = _jitter(rng, (45, 45, 50), 15) * (1.2 - 0.5 * np.clip((yy - hh + eh) / eh, 0, 1))
    cv.paint(0, 0, mask > 0, np.broadcast_to(rgb, (hh, ww, 3)), _ID['ego vehicle'])


def render_scene(rng: np.random.Generator, shape: tuple[int, int],
                 sprites: dict[str, np.ndarray] | None) -> Scene:
    """Draw one (H, W) = ``shape`` scene from ``rng`` alone: the same generator state gives the
    same scene.

    ``sprites`` maps each name of ``THING_CLASSES`` to (N, 28, 28) uint8 grey items to draw that
    class with (background ~0, object brighter than ``SPRITE_THRESHOLD``); ``None`` draws
    procedural silhouettes.
    """
    hh, ww = shape
    cv = _Canvas(np.zeros((hh, ww, 3), np.float32), np.zeros((hh, ww), np.uint8),
                 np.full((hh, ww), -1, np.int32))
    st = _Street(horizon=int(round(hh * rng.uniform(0.36, 0.46))), height=hh,
                 vx=ww * rng.uniform(0.35, 0.65), offset=ww * rng.uniform(-0.25, 0.25),
                 road=ww * rng.uniform(0.4, 0.65), walk=ww * rng.uniform(0.12, 0.25))
    _draw_background(rng, cv, st)

    leaves = _noise(rng, shape, 2.0)
    items = [_plan_tree(rng, st, shape, leaves) for _ in range(int(rng.integers(0, 4)))]
    items += [_plan_pole(rng, st, shape) for _ in range(int(rng.integers(0, 3)))]
    for spec in _OBJECT_CLASSES:
        for _ in range(int(rng.integers(spec.count[0], spec.count[1] + 1))):
            item = _plan_object(rng, spec, st, shape, sprites)
            if item is not None:
                items.append(item)
    items.sort(key=lambda it: it.base)  # painter's algorithm: far (small row) first; sort is stable
    for k, item in enumerate(items):
        item.draw(cv, k if item.label else -1)
    _draw_ego(rng, cv)

    # photometric jitter, a touch of blur and sensor noise; labels are untouched
    img = cv.img * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12)
    img = cv2.GaussianBlur(img, (0, 0), 0.6) + rng.normal(0.0, 3.0, img.shape).astype(np.float32)
    rgb = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    # Cityscapes instance ids: labelId * 1000 + k for each visible instance, labelId elsewhere
    inst = cv.lab.astype(np.uint16)
    counts = {spec.name: 0 for spec in _OBJECT_CLASSES}
    for k, item in enumerate(items):
        if item.label is None:
            continue
        m = cv.owner == k
        if m.any():
            inst[m] = _ID[item.label] * 1000 + counts[item.label]
            counts[item.label] += 1
    return Scene(rgb, cv.lab, inst, counts)
