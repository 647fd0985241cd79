"""The 2015 paper's own tricks that lessons 01-10 set aside, made runnable (lesson 12).

- `touching_cells`: generated microscope-like images of cells that touch, with instance labels,
  so the paper's problem (separating touching objects of one class) can be run on a laptop.
- `separation_border`, `separated_foreground`: the binary target with a background gap between
  touching cells, the gap the network must learn to draw.
- `weight_map`: the paper's pixel weights (Section 3, equation 2),
  w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)), with w0 = 10 and sigma = 5 px.
- `weighted_cross_entropy`: the pixel-wise softmax cross-entropy weighted by w(x).
- `he_std`, `paper_init_`: the paper's initialisation, Gaussian with std sqrt(2 / N).
- `touching_pairs`, `separated_pairs`: did a prediction keep touching cells apart?

>>> images, instances = touching_cells(1, 64, seed=0)
>>> w = weight_map(instances[0])
>>> w.shape, w.dtype
((64, 64), dtype('float32'))
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["touching_cells", "separation_border", "separated_foreground", "cell_distances", "two_nearest",
           "border_term", "class_frequency_weights", "weight_map", "weighted_cross_entropy", "he_std",
           "paper_init_", "touching_pairs", "separated_pairs"]

PAPER_W0, PAPER_SIGMA = 10.0, 5.0  # the paper's w0 and sigma (pixels)
BORDER_NEGLIGIBLE = 1e-6  # weight_map leaves out border terms smaller than this (far from any two cells)


# ---------------------------------------------------------------------------- generated cells


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def _centres(rng: np.random.Generator, h: int, w: int, radius: tuple[float, float]) -> list[tuple[float, float, float]]:
    """(row, col, r) of cells packed so that neighbours overlap a little: a random sequential
    packing whose minimum centre distance, 0.8 (r_i + r_j), is less than the sum of the radii.
    A bucket grid keeps each test to the nearby cells, so large images stay fast."""
    cells: list[tuple[float, float, float]] = []
    bucket = 1.6 * radius[1]  # no conflict reaches farther than one bucket
    grid: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
    attempts = int(12 * h * w / (math.pi * radius[0] ** 2)) + 50
    for y, x, r in zip(rng.uniform(0, h, attempts), rng.uniform(0, w, attempts), rng.uniform(*radius, attempts)):
        by, bx = int(y // bucket), int(x // bucket)
        near = (c for i in (-1, 0, 1) for j in (-1, 0, 1) for c in grid.get((by + i, bx + j), ()))
        if all((y - cy) ** 2 + (x - cx) ** 2 >= (0.8 * (r + cr)) ** 2 for cy, cx, cr in near):
            cells.append((y, x, r))
            grid.setdefault((by, bx), []).append((y, x, r))
    return cells


def _label_cells(rng: np.random.Generator, h: int, w: int, radius: tuple[float, float]) -> np.ndarray:
    """int32 (h, w) instance labels: each pixel goes to the cell whose (wobbly, elliptic)
    normalised distance is smallest, if that distance is below 1; overlaps split on the way."""
    best = np.full((h, w), np.inf, np.float32)
    labels = np.zeros((h, w), np.int32)
    cells = _centres(rng, h, w, radius)
    keep = rng.random(len(cells)) < 0.8  # drop a fifth: some cells stand alone
    k = 0
    for (cy, cx, r), kept in zip(cells, keep):
        if not kept:
            continue
        k += 1
        t, l = max(int(cy - 1.6 * r), 0), max(int(cx - 1.6 * r), 0)
        yy, xx = np.mgrid[t:min(int(cy + 1.6 * r) + 1, h), l:min(int(cx + 1.6 * r) + 1, w)]
        dy, dx = yy - cy, xx - cx
        angle, squash = rng.uniform(0, np.pi), rng.uniform(0.7, 1.0)  # an ellipse at a random angle
        u, v = dy * np.cos(angle) + dx * np.sin(angle), (dx * np.cos(angle) - dy * np.sin(angle)) / squash
        theta = np.arctan2(v, u)
        wobble = 1 + 0.08 * np.sin(3 * theta + rng.uniform(0, 6.3)) + 0.05 * np.sin(5 * theta + rng.uniform(0, 6.3))
        e = (np.sqrt(u**2 + v**2) / (r * wobble)).astype(np.float32)
        window = (slice(t, t + e.shape[0]), slice(l, l + e.shape[1]))
        mine = (e < 1) & (e < best[window])
        best[window][mine], labels[window][mine] = e[mine], k
    return _relabel(labels)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels 1..K with no gaps, each a single connected piece (stray fragments go to background)."""
    out = np.zeros_like(labels)
    k = 0
    for idx, obj in enumerate(ndimage.find_objects(labels), start=1):
        if obj is None:
            continue
        pieces, n = ndimage.label(labels[obj] == idx)
        if n == 0:
            continue
        sizes = ndimage.sum_labels(np.ones_like(pieces), pieces, index=np.arange(1, n + 1))
        if sizes.max() < 12:  # a sliver: not a cell
            continue
        k += 1
        out[obj][pieces == 1 + int(np.argmax(sizes))] = k
    return out


def _render(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """float32 (h, w) in [0, 1]: bright textured cells, a faint darker line where cells meet,
    a darker rim against the background, blur and noise (a phase-contrast look)."""
    h, w = labels.shape
    k = int(labels.max())
    brightness = np.concatenate([[0.25], rng.uniform(0.55, 0.75, k)]).astype(np.float32)
    image = brightness[labels]
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 2.0)
    image = image + (labels > 0) * 0.25 * texture / (texture.std() + 1e-6) * 0.2
    contact = separation_border(labels)  # pixels next to another cell
    rim = (labels > 0) & (ndimage.minimum_filter(labels, 3) == 0)  # pixels next to background
    image = np.where(contact, image - 0.12, image)
    image = np.where(rim, image - 0.08, image)
    image = ndimage.gaussian_filter(image, 0.8) + rng.normal(0, 0.04, (h, w))
    return np.clip(image, 0, 1).astype(np.float32)


def touching_cells(n: int = 1, size: int | tuple[int, int] = 128, seed: int = 0,
                   radius: tuple[float, float] = (7.0, 12.0)) -> tuple[np.ndarray, np.ndarray]:
    """n generated images of touching cells and their instance labels.

    size: one side or (height, width). radius: the range of cell radii in pixels. Cells are
    packed so that most share a border with a neighbour; between touching cells the image shows
    only a faint darker line, as in phase-contrast or EM images.
    Returns (images float32 (n, H, W) in [0, 1], instances int32 (n, H, W): 0 background,
    1..K one label per cell). The same seed gives the same images. Lesson 12.
    """
    h, w = _pair(size)
    rng = np.random.default_rng(seed)
    instances = np.stack([_label_cells(rng, h, w, radius) for _ in range(n)])
    images = np.stack([_render(rng, labels) for labels in instances])
    return images, instances


# ---------------------------------------------------------------------------- the target with gaps


def separation_border(instances: np.ndarray) -> np.ndarray:
    """bool (..., H, W): cell pixels whose 3 x 3 neighbourhood holds another cell's label.

    Between two touching cells this is a line 2 pixels wide (one on each side of the contact). Lesson 12.
    """
    instances = np.asarray(instances)
    footprint = (1,) * (instances.ndim - 2) + (3, 3)  # filter each image on its own
    instances = instances.astype(np.int64)
    others_above = ndimage.maximum_filter(instances, size=footprint) > instances
    as_big = np.where(instances > 0, instances, instances.max(initial=0) + 1)  # background never counts
    others_below = ndimage.minimum_filter(as_big, size=footprint) < as_big
    return (instances > 0) & (others_above | others_below)


def separated_foreground(instances: np.ndarray) -> np.ndarray:
    """bool (..., H, W): the paper's binary target, cells minus the separation border, so
    touching cells are split by a background gap. Lesson 12."""
    return (np.asarray(instances) > 0) & ~separation_border(instances)


# ---------------------------------------------------------------------------- the weight map


def cell_distances(instances: np.ndarray) -> np.ndarray:
    """float32 (K, H, W): for each cell k (of the separated target), every pixel's Euclidean
    distance to the nearest pixel of cell k (0 on the cell itself). Lesson 12."""
    cells = np.where(separated_foreground(instances), instances, 0)
    labels = [k for k in np.unique(cells) if k > 0]
    if not labels:
        return np.zeros((0, *cells.shape), np.float32)
    return np.stack([ndimage.distance_transform_edt(cells != k) for k in labels]).astype(np.float32)


def two_nearest(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d1, d2), each (H, W): the smallest and second smallest of distances (K, H, W) over K.

    With fewer than two cells the missing distances are +inf, so the border term is 0. Lesson 12.
    """
    distances = np.asarray(distances, np.float32)
    k = distances.shape[0]
    if k < 2:
        inf = np.full(distances.shape[1:], np.inf, np.float32)
        return (distances[0] if k else inf.copy()), inf
    two = np.partition(distances, 1, axis=0)[:2]
    return two[0], two[1]


def border_term(d1: np.ndarray, d2: np.ndarray, w0: float = PAPER_W0, sigma: float = PAPER_SIGMA) -> np.ndarray:
    """w0 * exp(-(d1 + d2)^2 / (2 sigma^2)): large in narrow gaps between two cells, ~0 elsewhere. Lesson 12."""
    d = np.asarray(d1, np.float64) + np.asarray(d2, np.float64)
    return (w0 * np.exp(-(d**2) / (2 * sigma**2))).astype(np.float32)


def class_frequency_weights(mask: np.ndarray) -> np.ndarray:
    """float32 (H, W) w_c: each pixel weighs freq(most frequent class) / freq(its class), so the
    commoner class weighs 1 and the rarer one as much more as it is rarer. Lesson 12."""
    mask = np.asarray(mask).astype(bool)
    fg = mask.mean()
    bg = 1 - fg
    if fg == 0 or bg == 0:
        return np.ones(mask.shape, np.float32)
    top = max(fg, bg)
    return np.where(mask, top / fg, top / bg).astype(np.float32)


def weight_map(instances: np.ndarray, w0: float = PAPER_W0, sigma: float = PAPER_SIGMA,
               class_balance: bool = True) -> np.ndarray:
    """The paper's weight map (Section 3): w = w_c + w0 * exp(-(d1 + d2)^2 / (2 sigma^2)).

    instances: int (H, W) labels (0 background), or (N, H, W) for a batch. d1, d2: distances to
    the nearest and second nearest cell of the separated target (`cell_distances`, measured only
    within reach of each cell, where the border term exceeds 1e-6, so a real 512 x 512 EM slice
    takes about 0.1 s instead of 4 s; the result equals the full computation to 1e-6); the border
    term is added on background pixels of that target, the gaps between cells and the space
    around them (on cell pixels d1 is 0 and it would only echo the gap). w_c:
    `class_frequency_weights` of the target, or 1 everywhere with class_balance=False.
    Returns float32 of the input's shape. Lesson 12.
    """
    instances = np.asarray(instances)
    if instances.ndim == 3:
        return np.stack([weight_map(x, w0, sigma, class_balance) for x in instances])
    if instances.ndim != 2:
        raise ValueError(f"weight_map takes instance labels (H, W) or (N, H, W), got shape {instances.shape}.")
    target = separated_foreground(instances)
    wc = class_frequency_weights(target) if class_balance else np.ones(target.shape, np.float32)
    d1, d2 = _two_nearest_within(np.where(target, instances, 0).astype(np.intp), _reach(w0, sigma))
    return (wc + np.where(target, 0, border_term(d1, d2, w0, sigma))).astype(np.float32)


def _reach(w0: float, sigma: float, negligible: float = BORDER_NEGLIGIBLE) -> float:
    """The d1 + d2 beyond which the border term w0 exp(-(d1 + d2)^2 / (2 sigma^2)) is below
    `negligible`: about 28.4 px for w0 = 10, sigma = 5."""
    return float(abs(sigma)) * math.sqrt(2 * math.log(max(abs(w0) / negligible, 1.0)))


def _two_nearest_within(cells: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """two_nearest(cell_distances(...)) without the (K, H, W) stack: each cell's distance transform
    runs only in its bounding box grown by `reach` (136 cells of a 512 x 512 EM slice: about 0.1 s
    instead of 4 s). Distances that matter (d1 + d2 <= reach) are
    exact; a cell farther than reach from a pixel counts as +inf there (its border term is
    negligible anyway)."""
    h, w = cells.shape
    d1 = np.full((h, w), np.inf, np.float32)
    d2 = np.full((h, w), np.inf, np.float32)
    grow = int(math.ceil(reach))
    for k, box in enumerate(ndimage.find_objects(cells), start=1):
        if box is None:
            continue
        rows = slice(max(box[0].start - grow, 0), min(box[0].stop + grow, h))
        cols = slice(max(box[1].start - grow, 0), min(box[1].stop + grow, w))
        d = ndimage.distance_transform_edt(cells[rows, cols] != k).astype(np.float32)
        near1, near2 = d1[rows, cols], d2[rows, cols]  # views: updated in place
        np.minimum(near2, np.maximum(near1, d), out=near2)
        np.minimum(near1, d, out=near1)
    return d1, d2


def weighted_cross_entropy(logits: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """The paper's loss: pixel-wise softmax + cross-entropy, each pixel times w(x), averaged.

    logits (N, C, H, W) with C >= 2 (softmax over C), or C = 1 (sigmoid, binary cross-entropy);
    target (N, H, W) class indices (or (N, 1, H, W)); weights (N, H, W) or None (all 1). The paper
    sums over pixels; the mean differs by a constant and keeps the scale of plain cross-entropy. Lesson 12.
    """
    if target.ndim == logits.ndim:
        target = target[:, 0]
    if logits.shape[1] == 1:
        per_pixel = F.binary_cross_entropy_with_logits(logits[:, 0].float(), target.float(), reduction="none")
    else:
        per_pixel = F.cross_entropy(logits.float(), target.long(), reduction="none")  # (N, H, W)
    if weights is None:
        return per_pixel.mean()
    if weights.shape != per_pixel.shape:
        raise ValueError(f"weights must have the target's shape {tuple(per_pixel.shape)}, got {tuple(weights.shape)}.")
    return (weights.to(per_pixel) * per_pixel).mean()


# ---------------------------------------------------------------------------- initialisation


def he_std(layer: nn.Module) -> float:
    """sqrt(2 / N), N = the inputs one output unit sees: in_channels * kh * kw for a conv (576 for
    a 3x3 conv on 64 channels); for a strided transposed conv, divided by the stride's area. Lesson 12."""
    if not isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        raise TypeError(f"he_std takes a Conv2d or ConvTranspose2d, got {type(layer).__name__}.")
    kh, kw = layer.kernel_size
    n = layer.in_channels // layer.groups * kh * kw
    if isinstance(layer, nn.ConvTranspose2d):
        n = layer.in_channels * kh * kw // (layer.stride[0] * layer.stride[1])
    return math.sqrt(2.0 / n)


def paper_init_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Initialise every conv as the paper did: weights ~ N(0, he_std(conv)), biases 0. In place. Lesson 12."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.normal_(0.0, he_std(m), generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
    return model


# ---------------------------------------------------------------------------- were touching cells kept apart?


def touching_pairs(instances: np.ndarray) -> list[tuple[int, int]]:
    """Sorted (i, j), i < j, of the cells that share a border (are 8-neighbours somewhere). Lesson 12."""
    lab = np.asarray(instances)
    h, w = lab.shape
    pairs = set()
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):  # each neighbour direction once
        a = lab[:h - dy, max(0, -dx):w - max(0, dx)]
        b = lab[dy:, max(0, dx):w - max(0, -dx)]
        touch = (a > 0) & (b > 0) & (a != b)
        pairs.update(zip(np.minimum(a, b)[touch].tolist(), np.maximum(a, b)[touch].tolist()))
    return sorted(pairs)


def separated_pairs(pred: np.ndarray, instances: np.ndarray) -> tuple[int, int]:
    """(separated, total) over the touching pairs of `instances`: a pair is separated when each
    cell's core (its separated target) is mostly predicted foreground and the two cores fall in
    different connected components (4-connected) of the predicted foreground `pred` (H, W). Lesson 12."""
    pred = np.asarray(pred).astype(bool)
    components, _ = ndimage.label(pred)
    core = np.where(separated_foreground(instances), instances, 0)
    owner = {}
    for k in np.unique(core[core > 0]):
        comp = components[core == k]
        found = comp[comp > 0]
        owner[int(k)] = int(np.bincount(found).argmax()) if found.size > comp.size / 2 else 0
    pairs = touching_pairs(instances)
    ok = sum(1 for i, j in pairs if owner.get(i, 0) and owner.get(j, 0) and owner[i] != owner[j])
    return ok, len(pairs)
