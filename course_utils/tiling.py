"""The overlap-tile grid (the paper's Figure 2): where each tile of a large image is read, where
its output lands, which part of it is kept, and the mirrored context beyond the image's edge.
Tiles move in multiples of 2**depth, the network's pooling period, so every tile sees the same
pooling grid. course_utils.inference runs a model over the grid (predict_tiled). Lesson 08.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .model import nearest_valid_sizes, output_length


class Box(NamedTuple):
    """A rectangle in image pixels: rows top..bottom-1, columns left..right-1 (may reach outside). Lesson 08."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


class Tile(NamedTuple):
    """One network pass of the overlap-tile grid, all boxes in the image's own coordinates.

    input_box: what the network reads (tile_size); parts outside the image are mirrored.
    output_box: where its whole output lands (smaller than input_box for a valid network).
    keep_box: the part of the output written to the result; the keep boxes of a grid cover
        the image exactly once. Lesson 08.
    """

    input_box: Box
    output_box: Box
    keep_box: Box


# ---------------------------------------------------------------------------- mirroring


def mirror_index(n: int, start: int, stop: int) -> torch.Tensor:
    """Indices into an axis of length n for positions start..stop-1, reflected at the ends.

    Position -1 reads 1, position n reads n-2 (the edge pixel is not repeated, like numpy's
    "reflect" and torch's "reflect" padding), and the reflection repeats, so any pad works,
    even one longer than the axis. An axis of length 1 repeats its only pixel. Lesson 08.
    """
    pos = torch.arange(start, stop)
    if n == 1:
        return torch.zeros_like(pos)
    period = 2 * (n - 1)
    pos = pos.remainder(period)  # in 0..period-1; the second half runs back down
    return torch.where(pos < n, pos, period - pos)


def mirror_pad(image: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """image (..., H, W) padded by mirroring to (..., top + H + bottom, left + W + right).

    Unlike torch.nn.functional.pad(mode="reflect"), a pad may exceed the image side: the
    reflection repeats (see mirror_index). The paper fills missing context this way (Fig. 2). Lessons 08 and 12.
    """
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"pads must be 0 or more, got top={top}, bottom={bottom}, left={left}, right={right}.")
    h, w = image.shape[-2:]
    rows = mirror_index(h, -top, h + bottom).to(image.device)
    cols = mirror_index(w, -left, w + right).to(image.device)
    return image.index_select(-2, rows).index_select(-1, cols)


# ---------------------------------------------------------------------------- the tile grid


def unet_geometry(model: nn.Module) -> tuple[int, str]:
    """(depth, padding) of a course U-Net, or a TypeError for a model that has no such config. Lesson 08."""
    config = getattr(model, "config", None)
    if not config or "depth" not in config or "padding" not in config:
        raise TypeError("predict_tiled needs a course U-Net (course_utils.UNet, which has .config with depth "
                        f"and padding); got {type(model).__name__}.")
    return int(config["depth"]), config["padding"]


def context_margin(depth: int) -> int:
    """The valid network's (input - output) / 2: the mirrored context a tile needs around its
    output (92 for the paper's depth 4, 44 for depth 3, 20 for depth 2). A pixel's receptive field
    reaches up to context_margin + 2**depth - 1 px to one side (its place in the pooling grid
    shifts it), so in a same-padded network only pixels that far inside a tile are untouched by the
    tile's zero padding: an overlap of 2 * (context_margin + 2**depth) makes tiling exact there. Lessons 08 and 12."""
    n = next(n for n in range(1, 2 ** (depth + 3) * 8) if output_length(n, depth, "valid"))
    return (n - output_length(n, depth, "valid")) // 2


def size_pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """(h, w) from one whole number or two; a ValueError naming `name` otherwise. Lesson 08."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(int(v) != v for v in pair):
        raise ValueError(f"{name} must be one whole number or two (height, width), got {value!r}.")
    return int(pair[0]), int(pair[1])


def tile_output(n: int, depth: int, padding: str) -> int:
    """Output length of a tile side n; ValueError naming sizes that work when n cannot be a tile. Lesson 08."""
    step = 2**depth
    out = output_length(n, depth, padding)
    if out is None:
        near = " or ".join(str(s) for s in nearest_valid_sizes(n, depth, padding) if s is not None)
        raise ValueError(f"tile_size {n} does not fit UNet(padding={padding!r}, depth={depth}); "
                         f"nearest tile sizes that work: {near}.")
    if out < step:
        smallest = next(m for m in range(n, n + 64 * step) if (output_length(m, depth, padding) or 0) >= step)
        raise ValueError(f"tile_size {n} gives a {out}-pixel output, less than the {step} pixels (2**depth) "
                         f"tiles move by; use tile_size {smallest} or more.")
    return out


def default_overlap(out: int, depth: int, padding: str) -> int:
    """Valid: 0 (the outputs fit side by side). Same: a quarter of the tile, rounded to a
    multiple of 2**(depth+1) so that half of it, the border dropped on each side, is a whole step. Lesson 08."""
    if padding == "valid":
        return 0
    unit = 2 ** (depth + 1)
    return min(int(out / 4 / unit + 0.5) * unit, out - 2**depth)


def _axis(n: int, tile: int, out: int, overlap: int, depth: int) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis of length n: (input start, output start, keep start, keep stop).

    stride = the largest multiple of 2**depth <= out - overlap; tile k keeps k*stride..(k+1)*stride
    and its output starts `a` earlier, a = half the real overlap rounded down to a multiple of
    2**depth, so every input starts at a multiple of 2**depth minus the context margin.
    """
    step = 2**depth
    stride = (out - overlap) // step * step
    if overlap < 0 or stride <= 0:
        raise ValueError(f"overlap {overlap} leaves no room to move: a tile's output is {out} pixels and tiles "
                         f"move in steps of 2**depth = {step}; use an overlap from 0 to {out - step}.")
    a = (out - stride) // 2 // step * step
    margin = (tile - out) // 2
    return [(k * stride - a - margin, k * stride - a, k * stride, min((k + 1) * stride, n))
            for k in range(math.ceil(n / stride))]


def tile_grid(height: int, width: int, model: nn.Module, tile_size: int | tuple[int, int],
              overlap: int | tuple[int, int] | None = None) -> list[Tile]:
    """The overlap-tile grid that predict_tiled runs over a height x width image (row by row).

    tile_size: the network's input tile, one side or (h, w); must be a size the model takes.
    overlap: output pixels shared by neighbouring tiles, one value or (h, w). Default: 0 for a
        valid network (nothing to repair), a quarter of the tile for a same-padded one. Tiles move
        by the largest multiple of 2**depth that leaves at least this overlap. Lesson 08.
    """
    depth, padding = unet_geometry(model)
    tiles = size_pair(tile_size, "tile_size")
    outs = [tile_output(t, depth, padding) for t in tiles]
    overlaps = [default_overlap(o, depth, padding) for o in outs] if overlap is None else size_pair(overlap, "overlap")
    rows = _axis(int(height), tiles[0], outs[0], overlaps[0], depth)
    cols = _axis(int(width), tiles[1], outs[1], overlaps[1], depth)
    return [Tile(Box(r_in, c_in, r_in + tiles[0], c_in + tiles[1]),
                 Box(r_out, c_out, r_out + outs[0], c_out + outs[1]),
                 Box(r0, c0, r1, c1))
            for r_in, r_out, r0, r1 in rows for c_in, c_out, c0, c1 in cols]


def covering_tile_size(model: nn.Module, height: int, width: int) -> tuple[int, int]:
    """The smallest tile whose output covers height x width: one pass over the whole image
    (mirror-padded to fit) is predict_tiled(model, image, covering_tile_size(...), overlap=0). Lesson 08."""
    depth, padding = unet_geometry(model)

    def cover(n: int) -> int:
        need = max(n, 2**depth)
        return next(m for m in range(need, need + 64 * 2**depth) if (output_length(m, depth, padding) or 0) >= need)

    return cover(int(height)), cover(int(width))


def stack_overlap(model: nn.Module, tile_size: int | tuple[int, int], height: int, width: int) -> tuple[int, int]:
    """predict_stack's default overlap: none on a side that one tile's output covers (one pass,
    nothing to repair), default_overlap elsewhere. Lesson 13."""
    depth, padding = unet_geometry(model)
    outs = (tile_output(t, depth, padding) for t in size_pair(tile_size, "tile_size"))
    return tuple(0 if out >= n else default_overlap(out, depth, padding) for n, out in zip((height, width), outs))
