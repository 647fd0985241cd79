"""The toy Carvana's cars as 3-D models: each make's body shape, the paints, meshes and details (lesson 05).

A car is a few convex meshes in its own frame (metres, x forward, y left, z up): a lofted body,
a glass cabin, four wheels and two mirrors, each with flat details on it (lights, grille, plate,
wheel wells, door seams, windows, rims). toy_car_render.py photographs them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAKES", "PAINTS", "Part", "car_spec", "car_parts"]

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

# (name, RGB, how glossy, weight): white/silver as bright as the wall, black as dark as tyres.
PAINTS = [
    ("white", (236, 237, 239), 0.35, 0.18), ("pearl", (226, 223, 214), 0.35, 0.05),
    ("silver", (188, 191, 196), 0.55, 0.12), ("grey", (112, 116, 122), 0.55, 0.10),
    ("black", (20, 21, 24), 0.75, 0.16), ("navy", (28, 40, 82), 0.6, 0.07), ("blue", (38, 78, 160), 0.5, 0.06),
    ("red", (168, 24, 30), 0.5, 0.10), ("maroon", (92, 20, 28), 0.6, 0.04), ("green", (30, 66, 46), 0.6, 0.04),
    ("beige", (186, 170, 142), 0.4, 0.04), ("orange", (212, 104, 30), 0.45, 0.02),
    ("yellow", (222, 186, 40), 0.4, 0.02),
]


# ----------------------------------------------------------------------------- cars
def car_spec(make: str, rng: np.random.Generator) -> dict:
    """One car: its make's proportions with a little jitter, a paint, rims, glass, trim choices.
    Drawn from rng, so a seed gives the same car. Lesson 05."""
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


# ----------------------------------------------------------------------------- meshes
@dataclass
class Part:
    """One convex mesh of a car in the car frame, with what the renderer needs precomputed (normals,
    face centres, details), so each of the 16 photos only rotates and projects it. Lesson 05."""

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
    def make(cls, verts: np.ndarray, faces: list, details: list, side: float = 0.0) -> "Part":
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


def car_parts(s: dict) -> list[Part]:
    """The meshes of one car with their surface details, in the car frame (built once per car). Lesson 05."""
    front_axle = s["L"] / 2 - s["ovf"] * s["L"]
    axles = (front_axle, front_axle - s["wb"] * s["L"])
    body_v, body_f = _body(s)
    cab_v, cab_f = _cabin(s)
    cab_n = dict(zip((k for _, k in cab_f), _normals(cab_v, [f for f, _ in cab_f])))
    parts = [Part.make(body_v, body_f, _body_details(s, axles)),
             Part.make(cab_v, cab_f, _cabin_details(s, cab_v, cab_n))]
    for side in (1.0, -1.0):
        parts.append(Part.make(*_mirror(s, side), [], side))
        for x in axles:
            parts.append(Part.make(*_wheel(x, side, s), _rim_details(x, side, s), side))
    return parts
