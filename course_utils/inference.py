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
draw them; `predict_tiled` runs them, optionally averaged over the image's 8 rotations and flips
(tta=True); `predict_stack` runs every slice of an EM stack (lesson 10).

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

__all__ = ["Box", "Tile", "mirror_pad", "tile_grid", "predict_tiled", "predict_stack", "covering_tile_size",
           "context_margin", "DIHEDRAL"]


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
    """(C, H, W) float tensor from (C, H, W), (1, C, H, W), or a uint8 (H, W, C) array / (C, H, W) tensor;
    a one-channel model also takes an (H, W) array (a greyscale EM slice as read_stack gives)."""
    if isinstance(image, np.ndarray):
        if image.ndim == 2 and channels == 1:
            image = image[..., None]
        if image.ndim != 3 or image.shape[-1] != channels:
            grey = " or (H, W)" if channels == 1 else ""
            raise ValueError(f"a numpy image must be (H, W, {channels}){grey} like PIL gives, got shape {image.shape}.")
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


# The dihedral group: 4 quarter turns, each with and without a left-right mirror. An EM slice has
# no "up", so each of the 8 copies is a fair view of it; (0, False) is the image itself.
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, flip) for flip in (False, True) for k in range(4))


def _turn(image: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """(..., H, W) mirrored left-right when flip, then turned k quarter turns counter-clockwise."""
    return torch.rot90(image.flip(-1) if flip else image, k, dims=(-2, -1))


def _turn_back(image: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """The inverse of _turn: a prediction of the turned image, put back in the image's place."""
    back = torch.rot90(image, -k, dims=(-2, -1))
    return back.flip(-1) if flip else back


def _swapped(value, k: int):
    """A (h, w) pair for the image turned k quarter turns: swapped when k is odd."""
    return tuple(reversed(value)) if k % 2 and isinstance(value, (tuple, list)) else value


def predict_tiled(model: nn.Module, image: torch.Tensor, tile_size: int | tuple[int, int],
                  overlap: int | tuple[int, int] | None = None, *, batch_size: int = 4,
                  amp_dtype: torch.dtype | None = None, tta: bool = False) -> torch.Tensor:
    """Logits (out_channels, H, W), float32 on the CPU, for one image of any size (lesson 07).

    image: (3, H, W) or (1, 3, H, W) float in [0, 1] as CarvanaDataset gives (a uint8 tensor or a
        uint8 (H, W, 3) array is scaled by 1/255); for a one-channel model a (1, H, W) slice or a
        uint8 (H, W) array. It stays on the CPU; tiles go to the model's device `batch_size` at a
        time, so device memory depends on the tile, not on the image.
    tile_size, overlap: see tile_grid. amp_dtype: autocast dtype (e.g. torch.bfloat16) or None.
    tta: test-time augmentation, 8x the work: the image is turned through its 8 rotations and flips
        (DIHEDRAL), each copy is tiled and predicted, put back in place, and the LOGITS are averaged,
        so the result is still logits. The paper averaged 7 rotated copies of each EM slice (Section
        4); the dihedral group has 8 (the image itself among them). For (h, w) tiles, a turned copy
        uses (w, h). Lesson 10.

    The model runs in eval mode without gradients; its train/eval mode is restored afterwards.
    For a valid network the result equals one pass over the mirror-padded whole image.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more, got {batch_size}.")
    image = _as_chw(image, model.config["in_channels"])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if not tta:
                return _run_tiles(model, image, tile_size, overlap, batch_size, amp_dtype)
            total = torch.zeros(model.config["out_channels"], *image.shape[-2:])
            for k, flip in DIHEDRAL:
                logits = _run_tiles(model, _turn(image, k, flip), _swapped(tile_size, k), _swapped(overlap, k),
                                    batch_size, amp_dtype)
                total += _turn_back(logits, k, flip)
            return total / len(DIHEDRAL)
    finally:
        model.train(was_training)


def _run_tiles(model: nn.Module, image: torch.Tensor, tile_size, overlap, batch_size: int,
               amp_dtype: torch.dtype | None) -> torch.Tensor:
    """predict_tiled's one pass over the grid: image (C, H, W) -> logits (out_channels, H, W)."""
    h, w = image.shape[-2:]
    tiles = tile_grid(h, w, model, tile_size, overlap)
    top, left = -min(t.input_box.top for t in tiles), -min(t.input_box.left for t in tiles)
    bottom, right = max(t.input_box.bottom for t in tiles) - h, max(t.input_box.right for t in tiles) - w
    padded = mirror_pad(image, max(top, 0), max(bottom, 0), max(left, 0), max(right, 0))  # (C, H', W')
    param = next(model.parameters())
    result = torch.empty(model.config["out_channels"], h, w)
    for i in range(0, len(tiles), batch_size):
        batch = tiles[i:i + batch_size]
        x = torch.stack([padded[:, t.input_box.top + top:t.input_box.bottom + top,
                                t.input_box.left + left:t.input_box.right + left] for t in batch])
        x = x.to(device=param.device, dtype=param.dtype)  # (B, C, tile_h, tile_w)
        with torch.autocast(param.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            y = model(x).float().cpu()  # (B, out_channels, out_h, out_w)
        for t, out in zip(batch, y):
            k, o = t.keep_box, t.output_box
            result[:, k.top:k.bottom, k.left:k.right] = out[:, k.top - o.top:k.bottom - o.top,
                                                             k.left - o.left:k.right - o.left]
    return result


# ---------------------------------------------------------------------------- EM stacks


def predict_stack(model: nn.Module, stack: np.ndarray, *, tile_size: int | tuple[int, int],
                  overlap: int | tuple[int, int] | None = None, tta: bool = False, batch_size: int = 4,
                  amp_dtype: torch.dtype | None = None, progress: bool = True) -> np.ndarray:
    """Probabilities float32 (N, H, W), sigmoid of the logits, for every slice of an EM stack (lesson 10).

    stack: uint8 (N, H, W) as read_stack gives (or float in [0, 1]); model: a one-in, one-out U-Net
        (greyscale slice in, one "cell" logit per pixel out) as `train --task isbi2012` trains.
    Each whole slice goes through predict_tiled (mirror padding at its border) with `tile_size`
    and, with tta=True, the average of its 8 rotations and flips. overlap: as tile_grid, except
    that by default a side the tile's output covers in one piece gets none (one pass, nothing to
    repair). progress: a bar over the slices.

    >>> from course_utils import UNet
    >>> net = UNet(1, 1, base_channels=4, depth=2)
    >>> predict_stack(net, np.zeros((2, 40, 56), np.uint8), tile_size=64, progress=False).shape
    (2, 40, 56)
    """
    from tqdm.auto import tqdm

    stack = np.asarray(stack)
    depth, padding = _geometry(model)
    channels = (model.config["in_channels"], model.config["out_channels"])
    if channels != (1, 1):
        raise ValueError(f"predict_stack needs a U-Net with 1 input channel (a greyscale slice) and 1 output (the "
                         f"cell logit), as `--task isbi2012` trains; this one has {channels[0]} in, {channels[1]} out.")
    if stack.ndim != 3:
        raise ValueError(f"a stack is (N, H, W) greyscale slices as read_stack gives, got shape {stack.shape}.")
    if overlap is None:  # per side: none where one tile's output covers the slice
        tiles = _pair(tile_size, "tile_size")
        overlap = tuple(0 if out >= n else _default_overlap(out, depth, padding)
                        for n, out in zip(stack.shape[1:], (_check_tile(t, depth, padding) for t in tiles)))
    probs = np.empty(stack.shape, np.float32)
    for k in tqdm(range(len(stack)), desc="predict", unit="slice", disable=not progress):
        logits = predict_tiled(model, stack[k], tile_size, overlap, batch_size=batch_size, amp_dtype=amp_dtype,
                               tta=tta)
        probs[k] = torch.sigmoid(logits[0]).numpy()
    return probs
