"""A toy Carvana: studio photos of made-up cars on a turntable, in the real Kaggle layout (lesson 05).

The real data set is 5088 photos (318 cars x 16 angles) and needs a Kaggle account. The toy
one is drawn here in seconds, in exactly the same files and formats, so the course's one
loader (`CarvanaDataset`) reads both:

    root/train/{car_id}_{01..16}.jpg            RGB JPEG
    root/train_masks/{car_id}_{nn}_mask.gif     GIF, mode 'P', values {0, 1}, black/white palette
    root/train_masks.csv                        img,rle_mask   (row-major, 1-indexed Kaggle RLE)
    root/metadata.csv                           id,year,make,model,trim1,trim2

Each car is a small 3-D model (a lofted body, a glass cabin, four wheels, mirrors, lights)
rotated in 22.5 degree steps (angle 01 faces the camera) and projected by a pinhole camera
into a studio: a light wall with lettering, a grey turntable, a soft shadow. Colours include
white and silver cars as bright as the wall and black cars as dark as the tyres and shadow,
so no single brightness threshold finds the cars: a network has to learn their shape.
The mask is the car's silhouette (wheels and mirrors in, shadow out), drawn by the same
polygons as the picture, so picture and mask agree to the pixel.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..rle import rle_encode
from .folders import claim_folder, publish_folder

__all__ = ["make_toy_carvana", "ensure_toy_carvana", "MAKES", "ANGLES"]

ANGLES = 16  # photos per car, as in Carvana
SIGNATURE = ".toy_carvana"  # written first: this folder was made here and may be remade
COMPLETE = ".complete"  # written last: the set is whole

# Each make has its own body shape (metres): L length, W width, cl body bottom, belt top of the
# doors, nose/tail heights of the hood's front and the boot's back, roof height, hood/deck the
# fraction of L in front of / behind the cabin, rf/rr where the roof starts/ends along the cabin
# base (0 rear .. 1 front), rw wheel radius, ovf front overhang and wb wheelbase (fractions of L),
# tumble roof width / W. Cars of a make vary by a few percent around these.
_FIELDS = ("style", "L", "W", "cl", "belt", "nose", "tail", "roof", "hood", "deck", "rf", "rr", "rw", "ovf", "wb",
           "tumble")
_SHAPES = {
    "Aldeno": ("sedan", 4.75, 1.84, 0.20, 0.90, 0.72, 0.86, 1.44, 0.29, 0.21, 0.72, 0.18, 0.33, 0.19, 0.59, 0.74),
    "Brevik": ("hatchback", 4.05, 1.76, 0.19, 0.92, 0.74, 0.95, 1.48, 0.25, 0.03, 0.62, 0.06, 0.31, 0.19, 0.63, 0.76),
    "Corvane": ("suv", 4.70, 1.93, 0.34, 1.12, 0.95, 1.08, 1.78, 0.25, 0.04, 0.72, 0.05, 0.37, 0.18, 0.60, 0.80),
    "Dunmar": ("coupe", 4.55, 1.88, 0.15, 0.80, 0.62, 0.80, 1.30, 0.34, 0.10, 0.64, 0.30, 0.34, 0.18, 0.60, 0.70),
    "Estrel": ("van", 5.05, 1.95, 0.24, 1.05, 0.92, 1.10, 1.82, 0.14, 0.02, 0.86, 0.03, 0.34, 0.16, 0.60, 0.84),
    "Falrow": ("pickup", 5.30, 1.98, 0.36, 1.15, 1.02, 1.12, 1.86, 0.27, 0.36, 0.80, 0.06, 0.39, 0.15, 0.63, 0.82),
}
_MODELS = {"Aldeno": ("Vela", "Corso", "Lumen"), "Brevik": ("Pica", "Nodo"), "Corvane": ("Ridge", "Tundrel", "Mesa"),
           "Dunmar": ("Strada", "Falco"), "Estrel": ("Famil", "Porto"), "Falrow": ("Hauler", "Bison")}
MAKES: dict[str, dict] = {make: dict(zip(_FIELDS, row), models=_MODELS[make]) for make, row in _SHAPES.items()}
TRIMS = ("Base", "S", "SE", "LX", "EX", "Sport", "Limited", "Touring")
EXTRAS = ("", "", "w/Tech", "w/Premium", "AWD", "w/Nav")

# (name, RGB, how glossy, weight): white/silver as bright as the wall, black as dark as tyres.
PAINTS = [
    ("white", (236, 237, 239), 0.35, 0.18), ("pearl", (226, 223, 214), 0.35, 0.05),
    ("silver", (188, 191, 196), 0.55, 0.12), ("grey", (112, 116, 122), 0.55, 0.10),
    ("black", (20, 21, 24), 0.75, 0.16), ("navy", (28, 40, 82), 0.6, 0.07), ("blue", (38, 78, 160), 0.5, 0.06),
    ("red", (168, 24, 30), 0.5, 0.10), ("maroon", (92, 20, 28), 0.6, 0.04), ("green", (30, 66, 46), 0.6, 0.04),
    ("beige", (186, 170, 142), 0.4, 0.04), ("orange", (212, 104, 30), 0.45, 0.02),
    ("yellow", (222, 186, 40), 0.4, 0.02),
]

LIGHT = np.array([-0.35, -0.55, 0.76])  # studio key light: above and a little left of the camera
LIGHT = LIGHT / np.linalg.norm(LIGHT)
TYRE = np.array([34.0, 34, 36])
TRIM = np.array([44.0, 45, 48])


# ----------------------------------------------------------------------------- the studio camera
@dataclass(frozen=True)
class _Camera:
    """Pinhole camera looking at the turntable centre from 9.5 m away, 3 m up (as in the studio)."""

    pos: np.ndarray
    right: np.ndarray
    up: np.ndarray
    fwd: np.ndarray
    focal: float
    cx: float
    cy: float

    @classmethod
    def studio(cls, height: int, width: int) -> "_Camera":
        pos, target = np.array([0.0, -9.5, 3.0]), np.array([0.0, 0.0, 0.55])
        fwd = (target - pos) / np.linalg.norm(target - pos)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        return cls(pos, right, np.cross(right, fwd), fwd, 1.42 * width, width / 2, 0.57 * height)

    def project(self, pts: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> pixel coordinates (N, 2) as (x, y), y down."""
        d = pts - self.pos
        z = d @ self.fwd
        return np.stack([self.cx + self.focal * (d @ self.right) / z, self.cy - self.focal * (d @ self.up) / z], 1)

    def rays(self, height: int, width: int) -> np.ndarray:
        """Unit view ray through the centre of every pixel, (H, W, 3)."""
        u = (np.arange(width) + 0.5 - self.cx) / self.focal
        v = (np.arange(height) + 0.5 - self.cy) / self.focal
        d = self.fwd + u[None, :, None] * self.right - v[:, None, None] * self.up
        return d / np.linalg.norm(d, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- the studio backdrop
def _backdrop(cam: _Camera, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Wall with soft gradient and lettering, grey turntable with rings and scuffs: float32 (H, W, 3)."""
    d = cam.rays(height, width)
    t_floor = np.where(d[..., 2] < 0, -cam.pos[2] / np.minimum(d[..., 2], -1e-9), np.inf)
    floor_xy = cam.pos[:2] + t_floor[..., None] * d[..., :2]
    wall_y = 7.0
    is_floor = floor_xy[..., 1] < wall_y
    xs = (np.arange(width) + 0.5) / width - 0.5
    ys = (np.arange(height) + 0.5) / height
    wall = 238 - 26 * xs[None, :] ** 2 * 4 - 10 * (1 - ys[:, None]) + np.zeros((height, 1))
    wall = wall[..., None] * np.array([1.0, 1.0, 1.01])
    r = np.hypot(floor_xy[..., 0], floor_xy[..., 1] - 0.4)
    table = 176 - 14 * np.clip(r / 4.6, 0, 1) ** 2 - 9 * np.exp(-((r - 3.3) / 0.25) ** 2)  # darker ring
    table = np.where(r < 4.6, table, 204 + 6 * np.exp(-((r - 4.7) / 0.15) ** 2))  # light outer floor, rim
    floor = table[..., None] * np.array([0.985, 0.99, 1.02])
    img = np.where(is_floor[..., None], floor, wall)
    _scuffs(img, floor_xy, is_floor, rng)
    _lettering(img, is_floor)
    return img.astype(np.float32)


def _scuffs(img: np.ndarray, floor_xy: np.ndarray, is_floor: np.ndarray, rng: np.random.Generator) -> None:
    """A few tyre marks and smudges on the turntable, so the floor is not one flat grey."""
    shade = np.zeros(img.shape[:2])
    for _ in range(7):
        c, s = rng.uniform(-3.0, 3.0, 2), rng.uniform(0.3, 1.2, 2)
        shade += rng.uniform(5, 14) * np.exp(-(((floor_xy - c) / s) ** 2).sum(-1))
    img -= np.where(is_floor, shade, 0)[..., None]


def _lettering(img: np.ndarray, is_floor: np.ndarray) -> None:
    """Big grey letters along the top of the wall, as in the Carvana studio."""
    height, width = is_floor.shape
    top = int(np.argmax(is_floor[:, width // 2]))  # first floor row in the middle column
    box_h = max(4, int(0.2 * height))
    try:
        font = ImageFont.load_default(size=100)
    except (TypeError, OSError):  # Pillow without FreeType: blocky bitmap font
        font = ImageFont.load_default()
    text = "UNET MOTORS"
    left, upper, right, lower = font.getbbox(text)
    sheet = Image.new("L", (right - left + 8, lower - upper + 8), 0)
    ImageDraw.Draw(sheet).text((4 - left, 4 - upper), text, fill=255, font=font)
    glyphs = np.asarray(sheet.resize((int(0.98 * width), box_h), Image.BILINEAR), np.float32) / 255
    y0 = max(0, top - box_h - int(0.02 * height))
    x0 = (width - glyphs.shape[1]) // 2
    region = img[y0:y0 + box_h, x0:x0 + glyphs.shape[1]]
    a = glyphs[: region.shape[0], : region.shape[1], None] * 0.85
    region[:] = region * (1 - a) + np.array([92.0, 94, 99]) * a


# ----------------------------------------------------------------------------- cars
def _car_spec(make: str, rng: np.random.Generator) -> dict:
    """One car: its make's proportions with a little jitter, a paint, rims, glass, trim choices."""
    spec = {k: v for k, v in MAKES[make].items() if k not in ("models",)}
    for k in ("L", "W", "belt", "roof", "nose", "tail"):
        spec[k] *= rng.uniform(0.97, 1.03)
    for k in ("hood", "deck", "rf", "rr", "tumble"):
        spec[k] += rng.uniform(-0.015, 0.015)
    weights = np.array([p[3] for p in PAINTS])
    name, rgb, gloss, _ = PAINTS[rng.choice(len(PAINTS), p=weights / weights.sum())]
    paint = np.clip(np.array(rgb, float) * rng.uniform(0.93, 1.05) + rng.normal(0, 4, 3), 0, 255)
    spec.update(
        paint_name=name, paint=paint, gloss=gloss,
        rim=np.array([rng.choice([205, 215, 170, 60])] * 3, float) + rng.normal(0, 4, 3),
        glass=np.array([30, 34, 42], float) * rng.uniform(0.8, 1.6),
        black_roof=bool(rng.random() < 0.12), trim_lower=bool(rng.random() < 0.5),
        offset=rng.normal(0, 0.12, 2),
    )
    return spec


def _loft(stations: list[tuple]) -> tuple[np.ndarray, list[tuple[tuple[int, ...], str]]]:
    """A closed mesh from cross-sections (x, z_bottom, z_shoulder, z_top, w_bottom, w_shoulder, w_top)."""
    verts = []
    for x, zb, zs, zt, wb, ws, wt in stations:
        verts += [(x, wb, zb), (x, ws, zs), (x, wt, zt), (x, -wt, zt), (x, -ws, zs), (x, -wb, zb)]
    kinds = ["lower", "side", "top", "side", "lower", "bottom"]
    faces = []
    for i in range(len(stations) - 1):
        for k in range(6):
            a, b = 6 * i + k, 6 * i + (k + 1) % 6
            faces.append(((a, b, b + 6, a + 6), kinds[k]))
    faces.append((tuple(range(5, -1, -1)), "rear"))
    n = len(verts)
    faces.append((tuple(range(n - 6, n)), "front"))
    return np.array(verts, float), faces


def _body(s: dict) -> tuple[np.ndarray, list]:
    """Lower body from tail to nose: bumper, boot lid or tailgate, belt line, hood, front bumper."""
    half, w, cl, belt = s["L"] / 2, s["W"] / 2, s["cl"], s["belt"]
    x_cowl, x_deck = half - s["hood"] * s["L"], max(-half + s["deck"] * s["L"], -half + 0.25)
    tail, shoulder = min(s["tail"], belt), cl + 0.55 * (belt - cl)

    def station(x, zb, zt, taper):  # taper narrows the ends in plan view (rounded corners)
        return (x, zb, min(shoulder, zt - 0.06), zt, 0.92 * w * taper, w * taper, 0.9 * w * taper)

    return _loft([station(-half, cl + 0.16, tail - 0.10, 0.86), station(-half + 0.12, cl + 0.02, tail, 0.94),
                  station(x_deck, cl, belt, 1.0), station(x_cowl, cl, belt - 0.02, 1.0),
                  station(half - 0.22, cl, s["nose"], 0.95), station(half, cl + 0.12, s["nose"] - 0.14, 0.84)])


def _cabin(s: dict) -> tuple[np.ndarray, list]:
    """Greenhouse: a hexahedron from the belt line up to the roof, narrower at the top."""
    half, w = s["L"] / 2, s["W"] / 2
    x_cowl, x_deck = half - s["hood"] * s["L"], max(-half + s["deck"] * s["L"], -half + 0.12)
    base = x_cowl - x_deck
    xf, xr = x_deck + s["rf"] * base, x_deck + s["rr"] * base
    wb, wt, zb, zt = 0.9 * w, s["tumble"] * w, s["belt"] - 0.04, s["roof"]
    verts = np.array([(x_deck, wb, zb), (x_cowl, wb, zb), (x_cowl, -wb, zb), (x_deck, -wb, zb),
                      (xr, wt, zt), (xf, wt, zt), (xf, -wt, zt), (xr, -wt, zt)], float)
    faces = [((0, 1, 5, 4), "window_l"), ((2, 3, 7, 6), "window_r"), ((1, 2, 6, 5), "windshield"),
             ((3, 0, 4, 7), "rear_window"), ((4, 5, 6, 7), "roof"), ((0, 3, 2, 1), "bottom")]
    return verts, faces


def _wheel(x: float, side: float, s: dict, n: int = 14) -> tuple[np.ndarray, list]:
    """A tyre: a short cylinder across the car at axle x, on the left (+1) or right (-1) side."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rw = s["rw"]
    y_out, y_in = side * (s["W"] / 2 - 0.02), side * (s["W"] / 2 - 0.25)
    ring = np.stack([x + rw * np.cos(a), rw + rw * np.sin(a)], 1)
    verts = np.concatenate([np.insert(ring, 1, y_out, axis=1), np.insert(ring, 1, y_in, axis=1)])
    faces = [((i, (i + 1) % n, n + (i + 1) % n, n + i), "tread") for i in range(n)]
    faces += [(tuple(range(n)), "hub_out"), (tuple(range(2 * n - 1, n - 1, -1)), "hub_in")]
    return verts, faces


def _mirror(s: dict, side: float) -> tuple[np.ndarray, list]:
    x = s["L"] / 2 - s["hood"] * s["L"] - 0.12
    y0, y1, z0 = side * s["W"] * 0.46, side * (s["W"] / 2 + 0.13), s["belt"] + 0.02
    pts = [(xx, yy, zz) for xx in (x - 0.1, x + 0.05) for yy in (y0, y1) for zz in (z0, z0 + 0.13)]
    return _box(pts, "mirror")


def _box(pts: list, kind: str) -> tuple[np.ndarray, list]:
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return np.array(pts, float), [(q, kind) for q in quads]


# ----------------------------------------------------------------------------- surface details
def _quad_points(p00, p10, p01, p11, us, vs) -> np.ndarray:
    """Points of a planar quad at parameters (u, v): u runs p00->p10, v runs p00->p01."""
    u, v = np.asarray(us)[:, None], np.asarray(vs)[:, None]
    return (1 - v) * ((1 - u) * p00 + u * p10) + v * ((1 - u) * p01 + u * p11)


def _inset(p00, p10, p01, p11, u0, u1, v0, v1) -> np.ndarray:
    return _quad_points(p00, p10, p01, p11, [u0, u1, u1, u0], [v0, v0, v1, v1])


def _on_x(x: float, corners) -> np.ndarray:
    """3-D polygon on the plane at length position x from (y, z) corners."""
    return np.array([(x, y, z) for y, z in corners], float)


def _on_y(y: float, corners) -> np.ndarray:
    """3-D polygon on the plane at side position y from (x, z) corners."""
    return np.array([(x, y, z) for x, z in corners], float)


def _body_details(s: dict, axles: tuple[float, float]) -> list[tuple[np.ndarray, str, np.ndarray]]:
    """Lights, grille, plate, wheel wells, door seams: (points, kind, outward normal) in the car frame."""
    half, w, cl, rw = s["L"] / 2, s["W"] / 2, s["cl"], s["rw"]
    zf0, zf1, yf = cl + 0.12, s["nose"] - 0.14, 0.75 * w  # the front face
    zr0, zr1, yr = cl + 0.16, min(s["tail"], s["belt"]) - 0.10, 0.77 * w  # the rear face
    front, rear, up = np.array([1.0, 0, 0]), np.array([-1.0, 0, 0]), np.array([0, 0, 1.0])
    out = [(_on_x(half, [(-0.38 * yf, zf1 - 0.04), (0.38 * yf, zf1 - 0.04), (0.34 * yf, zf0 + 0.02),
                         (-0.34 * yf, zf0 + 0.02)]), "grille", front),
           (_on_x(-half, [(-0.22 * yr, zr0 + 0.12), (0.22 * yr, zr0 + 0.12), (0.22 * yr, zr0 + 0.02),
                          (-0.22 * yr, zr0 + 0.02)]), "plate", rear)]
    for sy in (1, -1):
        out.append((_on_x(half, [(sy * 0.42 * yf, zf1 - 0.01), (sy * 0.98 * yf, zf1 - 0.01),
                                 (sy * 0.95 * yf, zf1 - 0.11), (sy * 0.45 * yf, zf1 - 0.09)]), "headlight", front))
        out.append((_on_x(-half, [(sy * 0.55 * yr, zr1 - 0.01), (sy * 0.98 * yr, zr1 - 0.01),
                                  (sy * 0.98 * yr, zr1 - 0.12), (sy * 0.6 * yr, zr1 - 0.1)]), "taillight", rear))
    if s["style"] == "pickup":  # the open load bed behind the cab
        x_deck, z = -half + s["deck"] * s["L"], min(s["tail"], s["belt"]) - 0.01
        bed = [(-half + 0.16, -0.78 * w, z), (-half + 0.16, 0.78 * w, z), (x_deck - 0.1, 0.78 * w, z),
               (x_deck - 0.1, -0.78 * w, z)]
        out.append((np.array(bed), "bed", up))
    arc = np.linspace(0, np.pi, 13)
    seam = axles[0] - 0.45 * (axles[0] - axles[1])
    for sy in (1, -1):
        side, y = np.array([0, sy, 0.0]), sy * 0.88 * w
        for x in axles:  # dark wheel well above each tyre, cut off at the body's bottom edge
            well = zip(x + 1.12 * rw * np.cos(arc), np.maximum(rw + 1.12 * rw * np.sin(arc), cl + 0.01))
            out.append((_on_y(y, well), "well", side))
        out.append((_on_y(y, [(seam, cl + 0.08), (seam + 0.012, cl + 0.08), (seam + 0.02, s["belt"] - 0.03),
                              (seam + 0.008, s["belt"] - 0.03)]), "seam", side))
        if s["trim_lower"]:
            out.append((_on_y(y, [(-half + 0.3, cl), (half - 0.3, cl), (half - 0.3, cl + 0.09),
                                  (-half + 0.3, cl + 0.09)]), "trim", side))
    return out


def _cabin_details(s: dict, verts: np.ndarray, normals: dict[str, np.ndarray]) -> list:
    """Windows inset in the greenhouse faces, leaving body-coloured pillars; an optional black roof."""
    n_side = {"coupe": 1, "suv": 3, "van": 3}.get(s["style"], 2)
    v = verts
    out = []
    for side, (b0, b1, t1, t0) in (("window_l", (0, 1, 5, 4)), ("window_r", (3, 2, 6, 7))):
        edges = np.linspace(0.07, 0.93, n_side + 1)
        for u0, u1 in zip(edges[:-1], edges[1:]):
            pts = _inset(v[b0], v[b1], v[t0], v[t1], u0 + 0.02, u1 - 0.02, 0.16, 0.9)
            out.append((pts, "glass", normals[side]))
    out.append((_inset(v[1], v[2], v[5], v[6], 0.05, 0.95, 0.06, 0.92), "glass", normals["windshield"]))
    out.append((_inset(v[0], v[3], v[4], v[7], 0.07, 0.93, 0.1, 0.9), "glass", normals["rear_window"]))
    if s["black_roof"]:
        out.append((v[[4, 5, 6, 7]], "roof_black", normals["roof"]))
    return out


def _rim_details(x: float, side: float, s: dict) -> list:
    """Light rim with five dark openings between the spokes, on the outer face of a tyre."""
    rw, y = s["rw"], side * (s["W"] / 2 - 0.02)
    normal = np.array([0, side, 0.0])
    a = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    out = [(_on_y(y, zip(x + 0.66 * rw * np.cos(a), rw + 0.66 * rw * np.sin(a))), "rim", normal)]
    for k in range(5):
        b = np.linspace(0, 0.75, 4) + k * 2 * np.pi / 5
        r = np.repeat([0.56 * rw, 0.24 * rw], 4)  # outer arc, then inner arc backwards
        b = np.concatenate([b, b[::-1]])
        out.append((_on_y(y, zip(x + r * np.cos(b), rw + r * np.sin(b))), "spoke_gap", normal))
    return out


# ----------------------------------------------------------------------------- rendering
@dataclass
class _Part:
    """One convex mesh of a car in the car frame, with what the renderer needs precomputed."""

    verts: np.ndarray  # (V, 3)
    faces: list[tuple[int, ...]]
    kinds: list[str]
    normals: np.ndarray  # (F, 3) outward
    centres: np.ndarray  # (F, 3)
    details: list[tuple[np.ndarray, str]]  # polygons drawn on top of the faces
    detail_normals: np.ndarray  # (D, 3)
    detail_centres: np.ndarray  # (D, 3)
    side: float  # +1 left, -1 right, 0 centre: decides drawing order

    @classmethod
    def make(cls, verts: np.ndarray, faces: list, details: list, side: float = 0.0) -> "_Part":
        idx = [f for f, _ in faces]
        centres = np.array([verts[list(f)].mean(0) for f in idx])
        return cls(verts, idx, [k for _, k in faces], _normals(verts, idx), centres,
                   [(p, k) for p, k, _ in details], np.array([n for _, _, n in details]).reshape(-1, 3),
                   np.array([p.mean(0) for p, _, _ in details]).reshape(-1, 3), side)


def _normals(verts: np.ndarray, faces: list[tuple[int, ...]]) -> np.ndarray:
    """Outward unit normal of every face (Newell's method, pointed away from the mesh centre)."""
    centre = verts.mean(0)
    out = []
    for idx in faces:
        p = verts[list(idx)]
        n = np.cross(p, np.roll(p, -1, axis=0)).sum(0)
        n /= np.linalg.norm(n) + 1e-12
        out.append(n if n @ (p.mean(0) - centre) >= 0 else -n)
    return np.array(out)


def _hull(pts: np.ndarray) -> list[tuple[float, float]]:
    """Convex hull of 2-D points (Andrew's monotone chain), as a polygon for ImageDraw."""
    p = sorted(map(tuple, pts.tolist()))

    def half(points):
        chain: list = []
        for q in points:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (q[1] - chain[-2][1])
                                       - (chain[-1][1] - chain[-2][1]) * (q[0] - chain[-2][0])) <= 0:
                chain.pop()
            chain.append(q)
        return chain

    lower, upper = half(p), half(p[::-1])
    return lower[:-1] + upper[:-1]


def _shade(kind: str, n: np.ndarray, s: dict) -> tuple[int, int, int]:
    """Colour of a flat face with world normal n: diffuse studio light, ceiling and floor reflections."""
    lam = max(0.0, float(n @ LIGHT))
    up, down = max(0.0, n[2]), max(0.0, -n[2])
    if kind in ("tread", "hub_out", "hub_in"):
        col = TYRE * (0.8 + 0.4 * lam)
    elif kind in ("glass", "roof_black"):
        base = s["glass"] if kind == "glass" else TRIM * 0.6
        col = base * (0.9 + 0.3 * lam) + up ** 1.5 * (150 if kind == "glass" else 60)  # the ceiling, mirrored
    elif kind in ("bottom", "trim", "grille", "well", "seam", "spoke_gap", "bed"):
        col = TRIM * (0.6 if kind in ("well", "spoke_gap", "bottom") else 0.9) * (0.8 + 0.3 * lam)
    elif kind == "rim":
        col = s["rim"] * (0.75 + 0.35 * lam)
    elif kind == "headlight":
        col = np.array([226.0, 228, 226]) * (0.85 + 0.15 * lam)
    elif kind == "taillight":
        col = np.array([150.0, 22, 26]) * (0.8 + 0.3 * lam)
    elif kind == "plate":
        col = np.array([222.0, 222, 215])
    else:  # painted panels
        col = s["paint"] * (0.62 + 0.45 * lam)
        # gloss mirrors the bright ceiling on hood and roof, the white walls on the doors, the floor below
        w_up, w_wall, w_dn = s["gloss"] * 0.55 * up ** 1.5, s["gloss"] * 0.18 * (1 - up - down), 0.3 * down
        col = col * (1 - w_up - w_wall - w_dn) + 246 * w_up + 228 * w_wall + 120 * w_dn
    return tuple(int(c) for c in np.clip(col, 0, 255))


def _car_parts(s: dict) -> list[_Part]:
    """The meshes of one car with their surface details, in the car frame (built once per car)."""
    front_axle = s["L"] / 2 - s["ovf"] * s["L"]
    axles = (front_axle, front_axle - s["wb"] * s["L"])
    body_v, body_f = _body(s)
    cab_v, cab_f = _cabin(s)
    cab_n = dict(zip((k for _, k in cab_f), _normals(cab_v, [f for f, _ in cab_f])))
    parts = [_Part.make(body_v, body_f, _body_details(s, axles)),
             _Part.make(cab_v, cab_f, _cabin_details(s, cab_v, cab_n))]
    for side in (1.0, -1.0):
        parts.append(_Part.make(*_mirror(s, side), [], side))
        for x in axles:
            parts.append(_Part.make(*_wheel(x, side, s), _rim_details(x, side, s), side))
    return parts


def _render_car(s: dict, parts: list[_Part], angle: int, cam: _Camera, backdrop: np.ndarray,
                rng: np.random.Generator, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Photograph a car at turntable position `angle` (1..16): (RGB float (H, W, 3), mask uint8 (H, W)).

    Painter's algorithm: far-side wheels and mirror, body, cabin, near-side ones. Each mesh's
    convex hull goes into the silhouette, its camera-facing faces and details into the picture,
    both drawn `ss` times larger and averaged down, so edges are anti-aliased.
    """
    height, width = backdrop.shape[:2]
    theta = (angle - 1) * 2 * np.pi / ANGLES + rng.normal(0, 0.012)  # angle 01 faces the camera
    rot = np.array([[-np.sin(theta), np.cos(theta), 0], [-np.cos(theta), -np.sin(theta), 0], [0, 0, 1.0]])
    offset = np.array([*s["offset"], 0.0])  # the car is parked a little off the turntable's centre
    big = _Camera(cam.pos, cam.right, cam.up, cam.fwd, cam.focal * ss, cam.cx * ss, cam.cy * ss)
    paint_img, sil_img = Image.new("RGB", (width * ss, height * ss)), Image.new("L", (width * ss, height * ss))
    paint, sil = ImageDraw.Draw(paint_img), ImageDraw.Draw(sil_img)

    def facing(normals, centres):  # (N,) bool: the face turns towards the camera
        return ((normals @ rot.T) * (cam.pos - (centres + offset) @ rot.T)).sum(1) > 0

    def draw(part: _Part) -> None:
        pix = big.project((part.verts + offset) @ rot.T) - 0.5
        hull = _hull(pix)
        paint.polygon(hull, fill=_shade(part.kinds[0], np.array([0, 0, 1.0]), s))
        sil.polygon(hull, fill=255)
        for idx, kind, n, seen in zip(part.faces, part.kinds, part.normals, facing(part.normals, part.centres)):
            if seen:
                paint.polygon([tuple(q) for q in pix[list(idx)].tolist()], fill=_shade(kind, rot @ n, s))
        for (pts, kind), n, seen in zip(part.details, part.detail_normals,
                                        facing(part.detail_normals, part.detail_centres)):
            if seen:  # details lie on the mesh; into the silhouette too, so picture and mask must agree
                xy = [tuple(q) for q in (big.project((pts + offset) @ rot.T) - 0.5).tolist()]
                paint.polygon(xy, fill=_shade(kind, rot @ n, s))
                sil.polygon(xy, fill=255)

    view = cam.pos - offset @ rot.T
    near = {side: float(rot[:, 1] @ view) * side > 0.3 * np.linalg.norm(view) for side in (1.0, -1.0)}
    for part in sorted(parts, key=lambda p: 0 if not p.side else (2 if near[p.side] else -1)):
        draw(part)
    car = np.asarray(paint_img.reduce(ss), np.float32)  # colour already multiplied by coverage
    alpha = np.asarray(sil_img.reduce(ss), np.float32) / 255
    img = _with_shadow(backdrop, s, rot, offset, cam) * (1 - alpha[..., None]) + car
    return img, (alpha >= 0.5).astype(np.uint8)


def _with_shadow(backdrop: np.ndarray, s: dict, rot: np.ndarray, offset: np.ndarray, cam: _Camera) -> np.ndarray:
    """The backdrop darkened by a soft shadow around the car's footprint and a darker core under it."""
    height, width = backdrop.shape[:2]
    half, w = s["L"] / 2, s["W"] / 2
    a = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    cos, sin = np.sign(np.cos(a)) * np.abs(np.cos(a)) ** 0.3, np.sign(np.sin(a)) * np.abs(np.sin(a)) ** 0.3
    small = (max(1, width // 2), max(1, height // 2))  # the shadow is soft: draw and blur it at half size
    shade = np.zeros(small[::-1], np.float32)
    for grow, blur, depth in ((0.35, 0.035, 0.3), (0.0, 0.012, 0.32)):
        ring = np.stack([(half + grow) * cos, (w + grow) * sin, np.zeros_like(a)], 1)
        pix = cam.project((ring + offset) @ rot.T) * (small[0] / width)
        layer = Image.new("L", small)
        ImageDraw.Draw(layer).polygon([tuple(q) for q in pix.tolist()], fill=255)
        layer = layer.filter(ImageFilter.GaussianBlur(max(0.3, blur * small[0])))
        shade += depth / 255 * np.asarray(layer, np.float32)
    shade = np.asarray(Image.fromarray(shade).resize((width, height), Image.BILINEAR))
    return backdrop * (1 - np.minimum(shade, 0.7))[..., None]


def _photo(s: dict, parts: list[_Part], angle: int, cam: _Camera, backdrop: np.ndarray, light: np.ndarray,
           rng: np.random.Generator, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """One finished photo: the rendered car, the car's studio lighting, sensor noise, 8-bit."""
    img, mask = _render_car(s, parts, angle, cam, backdrop, rng, ss)
    img *= light * np.float32(rng.normal(1.0, 0.01))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(2.5)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), mask


# ----------------------------------------------------------------------------- the data set on disk
def _car_table(n_cars: int, seed: int) -> list[dict]:
    """Ids, makes, models, years and trims of the cars: deterministic for a seed."""
    rng = np.random.default_rng([seed, 0])
    ids: list[str] = []
    while len(ids) < n_cars:
        car_id = f"{int(rng.integers(0, 2**48)):012x}"
        if car_id not in ids:
            ids.append(car_id)
    names = list(MAKES)
    makes = [names[i % len(names)] for i in range(n_cars)]
    rng.shuffle(makes)
    rows = []
    for car_id, make in zip(ids, makes):
        rows.append(dict(id=car_id, year=int(rng.integers(2008, 2018)), make=make,
                         model=str(rng.choice(MAKES[make]["models"])), trim1=str(rng.choice(TRIMS)),
                         trim2=str(rng.choice(EXTRAS))))
    return rows


def _save_mask_gif(mask: np.ndarray, path: Path) -> None:
    """A one-frame GIF in mode 'P' with a black/white palette and values {0, 1}, like Kaggle's."""
    gif = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask, np.uint8).tobytes())
    gif.putpalette([0, 0, 0, 255, 255, 255])
    # optimize=True would reorder the palette of an all-car mask; transparency=None writes GIF89a, like Kaggle's
    gif.save(path, format="GIF", optimize=False, transparency=None)


def make_toy_carvana(root: str | Path, n_cars: int = 40, image_size: tuple[int, int] = (160, 240),
                     seed: int = 0) -> Path:
    """Draw a toy Carvana into `root` (the data-set folder itself) in the Kaggle layout; return root.

    n_cars cars x 16 angles; image_size is (H, W) (Kaggle's is (1280, 1918)); the same seed gives
    the same bytes. A folder that is not empty and was not made here is refused, so a real data
    set can never be overwritten. The marker `.complete` is written last (lesson 05).

    >>> root = make_toy_carvana(tmp_path / "toy_carvana", n_cars=4)   # doctest: +SKIP
    """
    root = Path(root)
    height, width = (int(v) for v in image_size)
    if n_cars < 1 or height < 16 or width < 16:
        raise ValueError(f"make_toy_carvana needs n_cars >= 1 and an image_size of at least (16, 16), "
                         f"got n_cars={n_cars}, image_size={image_size}.")
    _prepare_folder(root)
    cars = _car_table(n_cars, seed)
    cam = _Camera.studio(height, width)
    backdrop = _backdrop(cam, height, width, np.random.default_rng([seed, 1]))
    ss = 4 if width <= 160 else 3 if width <= 480 else 2  # supersampling for anti-aliased edges
    rles = []
    for index, car in enumerate(cars):
        rng = np.random.default_rng([seed, 2, index])
        spec = _car_spec(car["make"], rng)
        parts = _car_parts(spec)
        light = np.clip(rng.uniform(0.94, 1.05) * rng.normal(1.0, 0.006, 3), 0.9, 1.1).astype(np.float32)
        for angle in range(1, ANGLES + 1):
            name = f"{car['id']}_{angle:02d}"
            img, mask = _photo(spec, parts, angle, cam, backdrop, light, rng, ss)
            Image.fromarray(img).save(root / "train" / f"{name}.jpg", quality=90)
            _save_mask_gif(mask, root / "train_masks" / f"{name}_mask.gif")
            rles.append((f"{name}.jpg", rle_encode(mask)))
    _write_csv(root / "train_masks.csv", ["img", "rle_mask"], rles)
    fields = ["id", "year", "make", "model", "trim1", "trim2"]
    _write_csv(root / "metadata.csv", fields, [[c[f] for f in fields] for c in cars])
    params = dict(n_cars=n_cars, image_size=[height, width], seed=seed)
    (root / COMPLETE).write_text(json.dumps(params) + "\n")
    return root


def _prepare_folder(root: Path) -> None:
    """Empty a previous toy set in `root` (never anything else) and create the Kaggle folders."""
    claim_folder(root, SIGNATURE, "make_toy_carvana", stale=(COMPLETE, "train", "train_masks"))
    for sub in ("train", "train_masks"):
        (root / sub).mkdir()


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def is_complete(root: str | Path, n_cars: int | None = None, image_size: tuple[int, int] | None = None,
                seed: int | None = None) -> bool:
    """True when `root` holds a whole toy set (made with these parameters, where given)."""
    try:
        params = json.loads((Path(root) / COMPLETE).read_text())
    except (OSError, ValueError):
        return False
    wanted = dict(n_cars=n_cars, image_size=None if image_size is None else [int(v) for v in image_size], seed=seed)
    return all(v is None or params.get(k) == v for k, v in wanted.items())


def ensure_toy_carvana(root: str | Path | None = None, n_cars: int = 40, image_size: tuple[int, int] = (160, 240),
                       seed: int = 0) -> Path:
    """The toy Carvana folder, drawn first if it is missing, half-written or made with other settings.

    root defaults to data_root() / "toy_carvana". The set is drawn in a temporary sibling folder
    and moved into place when whole, so an interrupted run never leaves a set that looks complete.
    """
    if root is None:
        from ..environment import data_root

        root = data_root() / "toy_carvana"
    root = Path(root)
    if is_complete(root, n_cars, image_size, seed):
        return root
    print(f"Generating the toy Carvana data set ({n_cars} cars x {ANGLES} angles, "
          f"{image_size[0]}x{image_size[1]}) in {root} ...", flush=True)
    return publish_folder(root, lambda tmp: make_toy_carvana(tmp, n_cars=n_cars, image_size=image_size, seed=seed),
                          lambda path: is_complete(path, n_cars, image_size, seed), SIGNATURE, "make_toy_carvana")
