"""The toy Carvana's studio: a pinhole camera, the backdrop and the renderer that photographs a car (lesson 05).

A car (toy_car_model.py) is rotated in 22.5 degree steps (angle 01 faces the camera) and
projected into a studio: a light wall with lettering, a grey turntable, a soft shadow. The
mask is the car's silhouette (wheels and mirrors in, shadow out), drawn by the same polygons as
the picture, so picture and mask agree to the pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .toy_car_model import Part

__all__ = ["ANGLES", "Camera", "studio_backdrop", "photo"]

ANGLES = 16  # photos per car, as in Carvana

LIGHT = np.array([-0.35, -0.55, 0.76])  # studio key light: above and a little left of the camera
LIGHT = LIGHT / np.linalg.norm(LIGHT)
TYRE = np.array([34.0, 34, 36])
TRIM = np.array([44.0, 45, 48])


# ----------------------------------------------------------------------------- the studio camera
@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking at the turntable centre from 9.5 m away, 3 m up (as in the studio).
    Lesson 05."""

    pos: np.ndarray
    right: np.ndarray
    up: np.ndarray
    fwd: np.ndarray
    focal: float
    cx: float
    cy: float

    @classmethod
    def studio(cls, height: int, width: int) -> "Camera":
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
def studio_backdrop(cam: Camera, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Wall with soft gradient and lettering, grey turntable with rings and scuffs: float32 (H, W, 3).
    Drawn once per data set: every car stands in the same studio. Lesson 05."""
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


# ----------------------------------------------------------------------------- rendering
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


def _render_car(s: dict, parts: list[Part], angle: int, cam: Camera, backdrop: np.ndarray,
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
    big = Camera(cam.pos, cam.right, cam.up, cam.fwd, cam.focal * ss, cam.cx * ss, cam.cy * ss)
    paint_img, sil_img = Image.new("RGB", (width * ss, height * ss)), Image.new("L", (width * ss, height * ss))
    paint, sil = ImageDraw.Draw(paint_img), ImageDraw.Draw(sil_img)

    def facing(normals, centres):  # (N,) bool: the face turns towards the camera
        return ((normals @ rot.T) * (cam.pos - (centres + offset) @ rot.T)).sum(1) > 0

    def draw(part: Part) -> None:
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


def _with_shadow(backdrop: np.ndarray, s: dict, rot: np.ndarray, offset: np.ndarray, cam: Camera) -> np.ndarray:
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


def photo(s: dict, parts: list[Part], angle: int, cam: Camera, backdrop: np.ndarray, light: np.ndarray,
          rng: np.random.Generator, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """One finished photo and its mask: the rendered car, the car's studio lighting, sensor noise, 8-bit.
    Lesson 05."""
    img, mask = _render_car(s, parts, angle, cam, backdrop, rng, ss)
    img *= light * np.float32(rng.normal(1.0, 0.01))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(2.5)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), mask
