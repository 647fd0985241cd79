"""Overlap-tile inference: a whole image of any size through a U-Net, one tile at a time (lesson 07).

The paper (Section 2, Figure 2) segments large images by sliding the network over them: each
tile's output covers only the tile's centre, the tile's border gives the context, and where the
image ends that context is filled by mirroring the image. Tiles move in steps that are a
multiple of 2**depth, the network's pooling period, so every tile sees the same pooling grid:

- for the paper's unpadded ("valid") network the tiled result equals ONE pass over the whole
  mirror-padded image (to float rounding): the output tiles simply sit side by side (with
  upsampling="bilinear" only nearly: bilinear upsampling clamps at each feature map's edge);
- for a "same"-padded network each tile's own zero padding makes its border pixels worse, so
  tiles overlap and only each tile's centre is kept.

Memory on the device is bounded by the tile (times `batch_size`), not by the image, so a
1918 x 1280 Carvana photo runs on a small GPU. `tile_grid` returns the tiles so lesson 07 can
draw them; `predict_tiled` runs them.

>>> from course_utils import UNet
>>> net = UNet(3, 1, base_channels=4, depth=2, padding="valid", batch_norm=False)
>>> predict_tiled(net, torch.rand(3, 37, 53), tile_size=52).shape
torch.Size([1, 37, 53])
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .model import nearest_valid_sizes, output_length

__all__ = ["Box", "Tile", "mirror_pad", "tile_grid", "predict_tiled", "covering_tile_size", "context_margin"]


class Box(NamedTuple):
    """A rectangle in image pixels: rows top..bottom-1, columns left..right-1 (may reach outside)."""

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
        the image exactly once.
    """

    input_box: Box
    output_box: Box
    keep_box: Box


# ---------------------------------------------------------------------------- mirroring


def mirror_index(n: int, start: int, stop: int) -> torch.Tensor:
    """Indices into an axis of length n for positions start..stop-1, reflected at the ends.

    Position -1 reads 1, position n reads n-2 (the edge pixel is not repeated, like numpy's
    "reflect" and torch's "reflect" padding), and the reflection repeats, so any pad works,
    even one longer than the axis. An axis of length 1 repeats its only pixel.
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
    reflection repeats (see mirror_index). The paper fills missing context this way (Fig. 2).
    """
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"pads must be 0 or more, got top={top}, bottom={bottom}, left={left}, right={right}.")
    h, w = image.shape[-2:]
    rows = mirror_index(h, -top, h + bottom).to(image.device)
    cols = mirror_index(w, -left, w + right).to(image.device)
    return image.index_select(-2, rows).index_select(-1, cols)


# ---------------------------------------------------------------------------- the tile grid


def _geometry(model: nn.Module) -> tuple[int, str]:
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
    tile's zero padding: an overlap of 2 * (context_margin + 2**depth) makes tiling exact there."""
    n = next(n for n in range(1, 2 ** (depth + 3) * 8) if output_length(n, depth, "valid"))
    return (n - output_length(n, depth, "valid")) // 2


def _pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(int(v) != v for v in pair):
        raise ValueError(f"{name} must be one whole number or two (height, width), got {value!r}.")
    return int(pair[0]), int(pair[1])


def _check_tile(n: int, depth: int, padding: str) -> int:
    """Output length of a tile side n; ValueError naming sizes that work when n cannot be a tile."""
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


def _default_overlap(out: int, depth: int, padding: str) -> int:
    """Valid: 0 (the outputs fit side by side). Same: a quarter of the tile, rounded to a
    multiple of 2**(depth+1) so that half of it, the border dropped on each side, is a whole step."""
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
        by the largest multiple of 2**depth that leaves at least this overlap.
    """
    depth, padding = _geometry(model)
    tiles = _pair(tile_size, "tile_size")
    outs = [_check_tile(t, depth, padding) for t in tiles]
    overlaps = [_default_overlap(o, depth, padding) for o in outs] if overlap is None else _pair(overlap, "overlap")
    rows = _axis(int(height), tiles[0], outs[0], overlaps[0], depth)
    cols = _axis(int(width), tiles[1], outs[1], overlaps[1], depth)
    return [Tile(Box(r_in, c_in, r_in + tiles[0], c_in + tiles[1]),
                 Box(r_out, c_out, r_out + outs[0], c_out + outs[1]),
                 Box(r0, c0, r1, c1))
            for r_in, r_out, r0, r1 in rows for c_in, c_out, c0, c1 in cols]


def covering_tile_size(model: nn.Module, height: int, width: int) -> tuple[int, int]:
    """The smallest tile whose output covers height x width: one pass over the whole image
    (mirror-padded to fit) is predict_tiled(model, image, covering_tile_size(...), overlap=0)."""
    depth, padding = _geometry(model)

    def cover(n: int) -> int:
        need = max(n, 2**depth)
        return next(m for m in range(need, need + 64 * 2**depth) if (output_length(m, depth, padding) or 0) >= need)

    return cover(int(height)), cover(int(width))


# ---------------------------------------------------------------------------- running the tiles


def _as_chw(image, channels: int) -> torch.Tensor:
    """(C, H, W) float tensor from (C, H, W), (1, C, H, W), or a uint8 (H, W, C) array / (C, H, W) tensor."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != channels:
            raise ValueError(f"a numpy image must be (H, W, {channels}) like PIL gives, got shape {image.shape}.")
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    if not isinstance(image, torch.Tensor):
        raise TypeError("image must be a torch tensor (C, H, W) or a numpy array (H, W, C), "
                        f"got {type(image).__name__}.")
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != channels:
        raise ValueError(f"predict_tiled takes one image ({channels}, H, W) or (1, {channels}, H, W), "
                         f"got shape {tuple(image.shape)}; loop over a batch one image at a time.")
    return image.float().div(255) if image.dtype == torch.uint8 else image.float()


def predict_tiled(model: nn.Module, image: torch.Tensor, tile_size: int | tuple[int, int],
                  overlap: int | tuple[int, int] | None = None, *, batch_size: int = 4,
                  amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits (out_channels, H, W), float32 on the CPU, for one image of any size (lesson 07).

    image: (3, H, W) or (1, 3, H, W) float in [0, 1] as CarvanaDataset gives (a uint8 tensor or a
        uint8 (H, W, 3) array is scaled by 1/255). It stays on the CPU; tiles go to the model's device
        `batch_size` at a time, so device memory depends on the tile, not on the image.
    tile_size, overlap: see tile_grid. amp_dtype: autocast dtype (e.g. torch.bfloat16) or None.

    The model runs in eval mode without gradients; its train/eval mode is restored afterwards.
    For a valid network the result equals one pass over the mirror-padded whole image.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more, got {batch_size}.")
    image = _as_chw(image, model.config["in_channels"])
    h, w = image.shape[-2:]
    tiles = tile_grid(h, w, model, tile_size, overlap)
    top, left = -min(t.input_box.top for t in tiles), -min(t.input_box.left for t in tiles)
    bottom, right = max(t.input_box.bottom for t in tiles) - h, max(t.input_box.right for t in tiles) - w
    padded = mirror_pad(image, max(top, 0), max(bottom, 0), max(left, 0), max(right, 0))  # (3, H', W')
    param = next(model.parameters())
    result = torch.empty(model.config["out_channels"], h, w)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(tiles), batch_size):
                batch = tiles[i:i + batch_size]
                x = torch.stack([padded[:, t.input_box.top + top:t.input_box.bottom + top,
                                        t.input_box.left + left:t.input_box.right + left] for t in batch])
                x = x.to(device=param.device, dtype=param.dtype)  # (B, 3, tile_h, tile_w)
                with torch.autocast(param.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    y = model(x).float().cpu()  # (B, C, out_h, out_w)
                for t, out in zip(batch, y):
                    k, o = t.keep_box, t.output_box
                    result[:, k.top:k.bottom, k.left:k.right] = out[:, k.top - o.top:k.bottom - o.top,
                                                                     k.left - o.left:k.right - o.left]
    finally:
        model.train(was_training)
    return result
