"""A toy NYU Depth V2: rooms ray-cast from a simple 3-D layout, in the real files' formats (lesson 10).

The real labeled set is one 2.8 GB file of 1449 Kinect frames plus three metadata files. The toy
one is drawn here in seconds, in the same four files with the same keys, dtypes and axis order,
so the course's one loader (`NYUv2Dataset`) reads both:

    root/nyu_depth_v2_labeled.mat  MATLAB v7.3 (HDF5, 512-byte MATLAB header); read with h5py:
                                   images (N, 3, W, H) uint8, depths (N, W, H) float32 metres,
                                   labels (N, W, H) uint16 raw ids (0 = unlabeled, 1..894)
    root/splits.mat                MATLAB v5: trainNdxs (n, 1), testNdxs (m, 1) uint16, 1-indexed
    root/classMapping40.mat        MATLAB v5: mapClass (1, 894) uint8 raw -> 1..40, className (1, 40)
    root/class13Mapping.mat        MATLAB v5: struct classMapping13 with labels13 (1, 40) uint8
                                   (40 -> 1..13) and classNames (1, 13)

Frames are (H, W) = (96, 128) by default (the real ones are 480 x 640, the same 4:3; both sides
divide by 16, so a U-Net of depth 4 takes them as they are). Each frame is a box room seen by a
pinhole camera with the Kinect's field of view: floor, ceiling, walls with a window, a picture
and sometimes a door, and furniture made of boxes (a bedroom, a living room or an office). Every
pixel is a ray cast into that layout: the surface it hits gives the label, the distance along
the optical axis the depth, and its normal the shading, so labels and depth agree exactly.
Like the real data, a few pixels are unlabeled (0: object borders, unnamed clutter) and some
depths are invalid (0: window glass, the Kinect's shadow beside near objects).

The raw ids drawn are real NYUv2 ids, chosen so that the real classMapping40.mat sends each to
the class named in RAW_IDS (the tests check this against the real files). The toy's mapping
files hold the real 40 and 13 class names and the real 40 -> 13 table (nyuv2_classes.py); raw
ids the toy never draws map to 40 "otherprop".
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .folders import claim_folder, publish_folder
from .nyuv2_classes import CLASS_13_OF_40, CLASS_NAMES_13, CLASS_NAMES_40, RAW_IDS, matlab_cell

__all__ = ["make_toy_nyuv2", "ensure_toy_nyuv2", "RAW_IDS", "CLASS_NAMES_40", "CLASS_NAMES_13"]

LABELED, SPLITS, MAPPING_40, MAPPING_13 = ("nyu_depth_v2_labeled.mat", "splits.mat", "classMapping40.mat",
                                           "class13Mapping.mat")
SIGNATURE = ".toy_nyuv2"  # written first: this folder was made here and may be remade
COMPLETE = ".complete"  # written last: the set is whole
RAW_LABELS = 894  # raw NYUv2 label ids are 1..894
REAL_FRAMES, REAL_TRAIN = 1449, 795  # the toy split keeps the real train fraction
KINECT_FX = 518.86  # the Kinect's focal length in pixels at 640 wide (about 63 degrees across)

# base colours (RGB) of each surface; every room draws its own variation around them
_PALETTE: dict[str, list[tuple[int, int, int]]] = {
    "wall": [(214, 206, 190), (196, 204, 210), (226, 222, 214), (205, 190, 160), (180, 196, 180)],
    "floor": [(142, 98, 62), (112, 84, 60), (128, 126, 122), (168, 140, 104)],
    "ceiling": [(236, 234, 228)], "window": [(200, 222, 240)], "door": [(150, 110, 74), (236, 234, 228)],
    "bed": [(168, 60, 64), (70, 96, 150), (210, 200, 180), (96, 130, 92)], "pillow": [(240, 238, 232)],
    "table": [(120, 80, 50), (90, 62, 40), (200, 196, 186)], "chair": [(60, 50, 42), (40, 60, 110), (150, 40, 40)],
    "sofa": [(90, 90, 100), (130, 100, 70), (60, 90, 70), (160, 150, 130)], "cabinet": [(230, 226, 216), (110, 76, 48)],
    "night stand": [(130, 90, 58)], "television": [(24, 24, 28)],
    "books": [(180, 40, 40), (40, 80, 150), (220, 180, 60)],
    "box": [(176, 140, 96)], "floor mat": [(150, 60, 50), (60, 70, 120)], "lamp": [(236, 220, 170)],
    "picture": [(60, 110, 160)], "clutter": [(90, 150, 90), (200, 120, 160), (120, 120, 120)],
}


@dataclass
class _Box:
    """An upright box: a surface kind ('bed', or 'clutter' for unlabeled), centre, half sizes, turn about y."""

    kind: str
    centre: np.ndarray  # (3,) metres, y up
    half: np.ndarray  # (3,) half width, height, depth
    yaw: float
    colour: np.ndarray  # (3,) RGB


@dataclass
class _Decal:
    """A flat rectangle on a wall (window, picture, door): wall index, (u0, u1) along it, (y0, y1) up it."""

    kind: str
    wall: int  # 0 left (x = -w/2), 1 right (x = +w/2), 2 back (z = d)
    u: tuple[float, float]
    y: tuple[float, float]
    colour: np.ndarray


# ----------------------------------------------------------------------------- the room layout
def _colour(kind: str, rng: np.random.Generator) -> np.ndarray:
    base = np.array(_PALETTE[kind][rng.integers(len(_PALETTE[kind]))], float)
    return np.clip(base * rng.uniform(0.85, 1.1) + rng.normal(0, 6, 3), 5, 250)


def _against_wall(rng: np.random.Generator, room: dict, size: tuple[float, float, float],
                  wall: int | None = None) -> tuple[np.ndarray, float]:
    """Centre and yaw of a (width, height, depth) box standing with its back to a wall."""
    w, d = room["w"], room["d"]
    wall = int(rng.integers(3)) if wall is None else wall
    bw, bh, bd = size
    if wall == 2:  # back wall: spread along x
        x = rng.uniform(-w / 2 + bw / 2 + 0.05, w / 2 - bw / 2 - 0.05)
        return np.array([x, bh / 2, d - bd / 2 - 0.02]), 0.0
    side = -1 if wall == 0 else 1  # side walls: turned 90 degrees, spread along z
    z = rng.uniform(min(1.6 + bw / 2, d - bw / 2 - 0.1), d - bw / 2 - 0.05)
    return np.array([side * (w / 2 - bd / 2 - 0.02), bh / 2, z]), np.pi / 2


def _unit(kind: str, centre: np.ndarray, yaw: float, parts: list[tuple], colour: np.ndarray) -> list[_Box]:
    """Boxes of one piece of furniture: parts are (offset xyz, half sizes xyz) in its own frame."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return [_Box(kind, centre + rot @ np.asarray(off, float), np.asarray(half, float), yaw, colour)
            for off, half in parts]


def _table(rng, centre, yaw, w, dp, h, kind="table") -> list[_Box]:
    t, leg = 0.03, 0.03
    parts = [((0, h / 2 - t, 0), (w / 2, t, dp / 2))]
    parts += [((sx * (w / 2 - leg), -t, sz * (dp / 2 - leg)), (leg, h / 2 - t, leg))
              for sx in (-1, 1) for sz in (-1, 1)]
    return _unit(kind, centre, yaw, parts, _colour(kind, rng))


def _chair(rng, centre, yaw) -> list[_Box]:
    seat, leg = 0.45, 0.025
    parts = [((0, 0, 0), (0.22, 0.03, 0.22)), ((0, 0.25, 0.2), (0.22, 0.22, 0.025))]
    parts += [((sx * 0.19, -seat / 2, sz * 0.19), (leg, seat / 2 - 0.03, leg)) for sx in (-1, 1) for sz in (-1, 1)]
    return _unit("chair", centre + np.array([0, seat, 0]), yaw, parts, _colour("chair", rng))


def _bedroom(rng, room) -> list[_Box]:
    length, width, height = rng.uniform(1.9, 2.1), rng.uniform(1.2, 1.8), rng.uniform(0.45, 0.6)
    centre, yaw = _against_wall(rng, room, (width, height, length))
    boxes = _unit("bed", centre, yaw, [((0, 0, 0), (width / 2, height / 2, length / 2)),
                                       ((0, height / 2 + 0.3, length / 2 - 0.03), (width / 2, 0.35, 0.03))],
                  _colour("bed", rng))
    boxes += _unit("pillow", centre, yaw, [((0, height / 2 + 0.07, length / 2 - 0.3), (width / 2 - 0.12, 0.07, 0.2))],
                   _colour("pillow", rng))
    stand = _unit("night stand", centre, yaw, [((width / 2 + 0.35, -height / 2 + 0.28, length / 2 - 0.25),
                                                 (0.25, 0.28, 0.22))], _colour("night stand", rng))
    lamp = _unit("lamp", stand[0].centre, yaw, [((0, 0.28 + 0.2, 0), (0.1, 0.2, 0.1))], _colour("lamp", rng))
    return boxes + stand + lamp


def _living_room(rng, room) -> list[_Box]:
    width = rng.uniform(1.6, 2.2)
    centre, yaw = _against_wall(rng, room, (width, 0.85, 0.9))
    parts = [((0, -0.2, 0.05), (width / 2, 0.22, 0.4)), ((0, 0.1, 0.37), (width / 2, 0.32, 0.08)),
             ((-width / 2 + 0.08, -0.05, 0.05), (0.08, 0.2, 0.4)), ((width / 2 - 0.08, -0.05, 0.05), (0.08, 0.2, 0.4))]
    boxes = _unit("sofa", centre + np.array([0, 0.42 - 0.85 / 2, 0]), yaw, parts, _colour("sofa", rng))
    c, s = np.cos(yaw), np.sin(yaw)
    front = centre + np.array([-s, 0, -c]) * 1.0  # in front of the sofa, towards the room
    front[1] = 0.22
    boxes += _table(rng, front, yaw, 1.0, 0.55, 0.44)
    boxes += _unit("floor mat", np.array([front[0], 0.006, front[2]]), yaw, [((0, 0, 0), (0.95, 0.006, 0.7))],
                   _colour("floor mat", rng))
    cab, cyaw = _against_wall(rng, room, (1.4, 0.5, 0.45), wall=2)
    boxes += _unit("cabinet", cab, cyaw, [((0, 0, 0), (0.7, 0.25, 0.22))], _colour("cabinet", rng))
    boxes += _unit("television", cab, cyaw, [((0, 0.25 + 0.3, 0.05), (0.5, 0.3, 0.03))], _colour("television", rng))
    return boxes


def _office(rng, room) -> list[_Box]:
    w, d = room["w"], room["d"]
    centre = np.array([rng.uniform(-0.3, 0.3) * w / 2, 0.375, rng.uniform(0.45, 0.65) * d + 0.8])
    tw, td, yaw = rng.uniform(1.2, 1.7), rng.uniform(0.75, 0.9), rng.uniform(-0.3, 0.3)
    boxes = _table(rng, centre, yaw, tw, td, 0.75)
    c, s = np.cos(yaw), np.sin(yaw)
    for k in range(int(rng.integers(2, 5))):
        side = (1, -1)[k % 2]  # alternate the two long sides
        along = (rng.uniform(-0.3, 0.3)) * tw
        pos = centre + np.array([c * along + s * side * (td / 2 + 0.25), 0, -s * along + c * side * (td / 2 + 0.25)])
        pos[1] = 0.0
        boxes += _chair(rng, pos, yaw + (np.pi if side < 0 else 0.0))
    top = centre + np.array([0, 0.375 + 0.03, 0])
    boxes += _unit("books", top, yaw + rng.uniform(-0.5, 0.5), [((rng.uniform(-0.3, 0.3), 0.0, 0), (0.12, 0.03, 0.16))],
                   _colour("books", rng))
    cab, cyaw = _against_wall(rng, room, (0.9, 1.0, 0.45))
    boxes += _unit("cabinet", cab, cyaw, [((0, 0, 0), (0.45, 0.5, 0.22))], _colour("cabinet", rng))
    boxes += _unit("books", cab, cyaw, [((rng.uniform(-0.2, 0.2), 0.5 + 0.11, 0), (0.18, 0.11, 0.1))],
                   _colour("books", rng))
    return boxes


def _room(rng: np.random.Generator) -> tuple[dict, list[_Box], list[_Decal]]:
    """A random room: its size and colours, furniture boxes and wall decals."""
    room = dict(w=rng.uniform(3.4, 5.5), d=rng.uniform(4.0, 6.5), h=rng.uniform(2.4, 3.0))
    room.update({k: _colour(k, rng) for k in ("wall", "floor", "ceiling")})
    boxes = (_bedroom, _living_room, _office)[int(rng.integers(3))](rng, room)
    for _ in range(int(rng.integers(0, 3))):  # loose boxes on the floor
        size = rng.uniform(0.15, 0.35, 3)
        pos = np.array([rng.uniform(-0.4, 0.4) * room["w"], size[1], rng.uniform(1.5, room["d"] - 0.5)])
        boxes.append(_Box("box", pos, size, rng.uniform(0, np.pi), _colour("box", rng)))
    for _ in range(int(rng.integers(1, 4))):  # unnamed clutter: unlabeled, like real frames' odds and ends
        size = rng.uniform(0.05, 0.15, 3)
        pos = np.array([rng.uniform(-0.45, 0.45) * room["w"], size[1], rng.uniform(1.3, room["d"] - 0.3)])
        boxes.append(_Box("clutter", pos, size, rng.uniform(0, np.pi), _colour("clutter", rng)))
    walls = list(rng.permutation(3))
    decals = []
    for kind, wall, width, y in (("window", walls[0], rng.uniform(0.9, 1.6), (0.9, min(2.2, room["h"] - 0.2))),
                                 ("picture", walls[1], rng.uniform(0.5, 1.0), (1.3, 1.3 + rng.uniform(0.4, 0.7)))):
        decals.append(_Decal(kind, int(wall), _span(rng, room, int(wall), width), y, _colour(kind, rng)))
    if rng.random() < 0.5:
        decals.append(_Decal("door", int(walls[2]), _span(rng, room, int(walls[2]), 0.85), (0.0, 2.05),
                             _colour("door", rng)))
    return room, boxes, decals


def _span(rng, room, wall, width) -> tuple[float, float]:
    """Where along a wall (x on the back wall, z on the side ones) a decal of this width goes."""
    lo, hi = (-room["w"] / 2 + 0.2, room["w"] / 2 - 0.2) if wall == 2 else (1.0, room["d"] - 0.2)
    u0 = rng.uniform(lo, max(lo, hi - width))
    return u0, min(hi, u0 + width)


# ----------------------------------------------------------------------------- ray casting
def _camera_rays(rng, room, height, width) -> tuple[np.ndarray, np.ndarray]:
    """Camera origin (3,) and one ray per pixel (H*W, 3), scaled so that t along a ray is its depth z."""
    f = KINECT_FX * width / 640
    v, u = np.mgrid[0:height, 0:width]
    rays = np.stack([(u + 0.5 - width / 2) / f, -(v + 0.5 - height / 2) / f, np.ones_like(u, float)], -1)
    pitch, yaw = rng.uniform(0.05, 0.3), rng.uniform(-0.35, 0.35)  # looking a little down, a little aside
    cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rot = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    origin = np.array([rng.uniform(-0.2, 0.2) * room["w"], rng.uniform(1.1, 1.6), rng.uniform(0.15, 0.5)])
    return origin, rays.reshape(-1, 3) @ rot.T


def _hit_room(origin, rays, room) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each ray leaves the room box: t (P,), surface index (P,) 0 left 1 right 2 back 3 front
    4 floor 5 ceiling, and the inward normal (P, 3)."""
    lo, hi = np.array([-room["w"] / 2, 0, 0]), np.array([room["w"] / 2, room["h"], room["d"]])
    d = np.where(np.abs(rays) < 1e-12, 1e-12, rays)
    t_axes = (np.where(d > 0, hi, lo) - origin) / d  # (P, 3) exit through each axis' far plane
    axis, rows = t_axes.argmin(1), np.arange(len(rays))
    t = t_axes[rows, axis]
    positive = d[rows, axis] > 0
    surface = np.select([axis == 0, axis == 2, axis == 1], [np.where(positive, 1, 0), np.where(positive, 2, 3),
                                                              np.where(positive, 5, 4)])
    normal = np.zeros_like(rays)
    normal[rows, axis] = np.where(positive, -1.0, 1.0)
    return t, surface, normal


def _hit_box(origin, rays, box: _Box) -> tuple[np.ndarray, np.ndarray]:
    """Entry distance t (P,) of each ray into the box (inf where it misses) and the normal there (P, 3)."""
    c, s = np.cos(box.yaw), np.sin(box.yaw)
    to_local = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])  # undo the turn about y
    o, d = to_local @ (origin - box.centre), rays @ to_local.T
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    t1, t2 = (-box.half - o) / d, (box.half - o) / d
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_in = np.maximum(np.maximum(near[:, 0], near[:, 1]), near[:, 2])  # slab method, one axis at a time
    t_out = np.minimum(np.minimum(far[:, 0], far[:, 1]), far[:, 2])
    t = np.where((t_in <= t_out) & (t_in > 1e-6), t_in, np.inf)
    axis = np.where(near[:, 0] == t_in, 0, np.where(near[:, 1] == t_in, 1, 2))
    normal = np.zeros_like(rays)
    rows = np.arange(len(rays))
    normal[rows, axis] = -np.sign(d[rows, axis])
    return t, normal @ to_local  # back to world axes


def _render(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame: image uint8 (H, W, 3), depth float32 (H, W) metres, raw labels uint16 (H, W)."""
    room, boxes, decals = _room(rng)
    origin, rays = _camera_rays(rng, room, height, width)
    t, surface, normal = _hit_room(origin, rays, room)
    kinds = np.array(["wall", "wall", "wall", "wall", "floor", "ceiling"])[surface].astype(object)
    colour = np.stack([room["wall"]] * 4 + [room["floor"], room["ceiling"]])[surface]
    point = origin + t[:, None] * rays
    for decal in decals:  # on the wall they belong to, a few mm in front: same depth
        u = point[:, 2] if decal.wall < 2 else point[:, 0]
        on = (surface == decal.wall) & (u >= decal.u[0]) & (u <= decal.u[1]) & (point[:, 1] >= decal.y[0]) & (
            point[:, 1] <= decal.y[1])
        kinds[on], colour[on] = decal.kind, decal.colour
        if decal.kind == "picture":  # something painted on it: two colours split by a random line
            a = rng.normal(size=2)
            half = (u - np.mean(decal.u)) * a[0] + (point[:, 1] - np.mean(decal.y)) * a[1] > 0
            colour[on & half] = _colour("clutter", rng)
        if decal.kind == "window":  # a white frame and a cross bar
            frame = ((np.minimum(u - decal.u[0], decal.u[1] - u) < 0.05)
                     | (np.abs(point[:, 1] - np.mean(decal.y)) < 0.03))
            colour[on & frame] = (236, 236, 232)
    for box in boxes:
        tb, nb = _hit_box(origin, rays, box)
        nearer = tb < t
        t[nearer], normal[nearer], kinds[nearer], colour[nearer] = tb[nearer], nb[nearer], box.kind, box.colour
    point = origin + t[:, None] * rays
    image = _shade(rng, room, point, normal, colour, kinds)
    raw = np.array([RAW_IDS.get(k, 0) for k in kinds], np.uint16)  # clutter -> 0 (unlabeled)
    depth, raw = t.reshape(height, width).astype(np.float32), raw.reshape(height, width)
    return image.reshape(height, width, 3), *_sensor_defects(rng, depth, raw, kinds.reshape(height, width))


def _shade(rng, room, point, normal, colour, kinds) -> np.ndarray:
    """Lambertian light from a ceiling lamp and a window glow, wood grain on the floor, sensor noise."""
    lamp = np.array([rng.uniform(-0.5, 0.5), room["h"] - 0.05, room["d"] * rng.uniform(0.3, 0.7)])
    to_lamp = lamp - point
    dist = np.linalg.norm(to_lamp, axis=1, keepdims=True)
    lambert = np.clip((normal * to_lamp / dist).sum(1), 0, 1) / (1 + 0.08 * dist[:, 0] ** 2)
    light = 0.45 + 0.75 * lambert
    light[kinds == "window"] = 1.0  # daylight: the glass is as bright as it is
    light[kinds == "lamp"] = 1.1
    grain = np.where(kinds == "floor", 0.93 + 0.07 * np.sin(point[:, 0] * 40 + np.sin(point[:, 2] * 3)), 1.0)
    image = colour * (light * grain)[:, None] * rng.uniform(0.85, 1.1) * rng.normal(1, 0.03, 3)
    image += rng.normal(0, 3.0, image.shape)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _sensor_defects(rng, depth, raw, kinds) -> tuple[np.ndarray, np.ndarray]:
    """Unlabeled borders (labelers leave gaps between objects) and invalid depths (0) like the Kinect's."""
    edge = np.zeros(raw.shape, bool)
    edge[:, 1:] |= raw[:, 1:] != raw[:, :-1]
    edge[1:, :] |= raw[1:, :] != raw[:-1, :]
    raw = np.where(edge & (rng.random(raw.shape) < 0.5), 0, raw).astype(np.uint16)
    depth = depth.copy()
    if rng.random() < 0.5:  # glass: the Kinect sees through it or is blinded by daylight
        depth[kinds == "window"] = 0
    jump = np.zeros(depth.shape, bool)  # its projector sits beside the camera: a shadow next to near edges
    jump[:, 2:] = depth[:, :-2] > depth[:, 2:] + 0.4
    depth[jump] = 0
    return depth, raw


# ----------------------------------------------------------------------------- the files
def _write_labeled(path: Path, frames, n: int, height: int, width: int) -> None:
    """An HDF5 file laid out like MATLAB v7.3 writes it: (H, W) frames stored as (W, H), a 512-byte header.

    frames yields (image (H, W, 3), depth (H, W), labels (H, W)); each is written as it comes.
    """
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        arrays = {}
        for key, shape, dtype, matlab in (("images", (n, 3, width, height), np.uint8, "uint8"),
                                          ("depths", (n, width, height), np.float32, "single"),
                                          ("labels", (n, width, height), np.uint16, "uint16")):
            arrays[key] = f.create_dataset(key, shape, dtype=dtype, chunks=(1, *shape[1:]), compression="gzip",
                                           compression_opts=1)
            arrays[key].attrs["MATLAB_class"] = np.bytes_(matlab)
        for i, (image, depth, labels) in enumerate(frames):
            arrays["images"][i] = image.transpose(2, 1, 0)  # (H, W, 3) -> (3, W, H)
            arrays["depths"][i], arrays["labels"][i] = depth.T, labels.T
    text = ("MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: "
            f"{time.strftime('%a %b %d %H:%M:%S %Y', time.gmtime(0))} HDF5 schema 1.00 .").ljust(116)
    header = text.encode() + bytes(8) + b"\x00\x02IM"  # subsystem offset, version 0x0200, endian "IM"
    with open(path, "r+b") as f:
        f.write(header)


def _write_metadata(root: Path, n_images: int, seed: int) -> None:
    """splits.mat, classMapping40.mat and class13Mapping.mat in the real keys, dtypes and shapes."""
    from scipy.io import savemat

    order = np.random.default_rng([seed, 1]).permutation(n_images) + 1  # 1-indexed frames
    n_train = min(n_images - 1, max(1, round(n_images * REAL_TRAIN / REAL_FRAMES)))
    column = lambda idx: np.sort(idx).astype(np.uint16).reshape(-1, 1)  # noqa: E731
    savemat(root / SPLITS, {"trainNdxs": column(order[:n_train]), "testNdxs": column(order[n_train:])},
            do_compression=True)
    map_class = np.full((1, RAW_LABELS), CLASS_NAMES_40.index("otherprop") + 1, np.uint8)
    all_names = np.empty((1, RAW_LABELS), object)
    all_names[0, :] = "not drawn by the toy"
    for name, raw in RAW_IDS.items():
        map_class[0, raw - 1] = CLASS_NAMES_40.index(name) + 1
        all_names[0, raw - 1] = name
    savemat(root / MAPPING_40, {"className": matlab_cell(CLASS_NAMES_40), "mapClass": map_class,
                                "allClassName": all_names}, do_compression=True)
    labels13 = np.array([[CLASS_NAMES_13.index(n) + 1 for n in CLASS_13_OF_40]], np.uint8)
    savemat(root / MAPPING_13, {"classMapping13": {"labels13": labels13, "classNames": matlab_cell(CLASS_NAMES_13)}},
            do_compression=True)


def make_toy_nyuv2(root: str | Path, n_images: int = 200, seed: int = 0,
                   image_size: tuple[int, int] = (96, 128)) -> Path:
    """Draw a toy NYU Depth V2 into `root` (the data-set folder itself) in the real files; return root.

    n_images frames of image_size (H, W) (the real ones are 480 x 640), split into train and test
    in the real proportion (795 : 654); the same seed gives the same frames. A folder that is not
    empty and was not made here is refused, so a real download is never overwritten.

    >>> root = make_toy_nyuv2(tmp_path / "toy_nyuv2", n_images=20)   # doctest: +SKIP

    Lesson 10.
    """
    root = Path(root)
    height, width = (int(v) for v in image_size)
    if n_images < 2 or height < 16 or width < 16:
        raise ValueError(f"make_toy_nyuv2 needs n_images >= 2 (a train and a test frame) and an image_size of at "
                         f"least (16, 16), got n_images={n_images}, image_size={image_size}.")
    _prepare_folder(root)
    frames = (_render(np.random.default_rng([seed, 0, i]), height, width) for i in range(n_images))
    _write_labeled(root / LABELED, frames, n_images, height, width)
    _write_metadata(root, n_images, seed)
    (root / COMPLETE).write_text(json.dumps(dict(n_images=n_images, seed=seed, image_size=[height, width])) + "\n")
    return root


def _prepare_folder(root: Path) -> None:
    """Empty a previous toy set in `root` (never anything else), ready for the four files."""
    claim_folder(root, SIGNATURE, "make_toy_nyuv2", stale=(COMPLETE, LABELED, SPLITS, MAPPING_40, MAPPING_13))


def is_complete(root: str | Path, n_images: int | None = None, seed: int | None = None,
                image_size: tuple[int, int] | None = None) -> bool:
    """True when `root` holds a whole toy set (made with these parameters, where given). Lesson 10."""
    try:
        params = json.loads((Path(root) / COMPLETE).read_text())
    except (OSError, ValueError):
        return False
    wanted = dict(n_images=n_images, seed=seed, image_size=None if image_size is None else [int(v) for v in image_size])
    return all(v is None or params.get(k) == v for k, v in wanted.items())


def ensure_toy_nyuv2(root: str | Path | None = None, n_images: int = 200, seed: int = 0,
                     image_size: tuple[int, int] = (96, 128)) -> Path:
    """The toy NYUv2 folder, drawn first if it is missing, half-written or made with other settings.

    root defaults to data_root() / "toy_nyuv2" when a whole set with these settings is there (then only
    read), else work_root() / "toy_nyuv2". The set is drawn in a temporary sibling folder and
    moved into place when whole, so an interrupted run never leaves a set that looks complete. Lesson 10.
    """
    if root is None:
        from ..environment import data_root, work_root

        root = data_root() / "toy_nyuv2"
        if not is_complete(root, n_images, seed, image_size):
            root = work_root() / "toy_nyuv2"
    root = Path(root)
    if is_complete(root, n_images, seed, image_size):
        return root
    print(f"Generating the toy NYUv2 data set ({n_images} rooms, {image_size[0]}x{image_size[1]}) in {root} ...",
          flush=True)
    return publish_folder(root, lambda tmp: make_toy_nyuv2(tmp, n_images=n_images, seed=seed, image_size=image_size),
                          lambda path: is_complete(path, n_images, seed, image_size), SIGNATURE, "make_toy_nyuv2")
