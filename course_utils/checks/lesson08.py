"""Checks for lesson 08's exercises: overlap-tile inference, `my_tiled(model, image, tile_size)` for
the paper's unpadded ("valid") U-Net, written by the learner and compared with
course_utils.predict_tiled; and a mask encoded in Kaggle's run-length format.

For a valid network the tiled result equals one pass over the mirror-padded image, so the check
asks for equality to float tolerance. It runs the learner's function on small seeded networks
(depth 2, whose outputs are whole pooling periods, and depth 3, whose 20-pixel outputs move in
steps of 16) and on images whose sides are not multiples of the step, one of them thinner than the
context margin. A hook on the model records every tile it is given (size, train/eval mode,
gradients on or off); wrong answers are matched against the usual mistakes (zero padding, a
shifted grid, the wrong step, added overlaps, a missed crop) and described in words.

The run-length check uses small masks with runs touching the first and the last pixel and compares
with course_utils.rle.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ._common import CheckFailed, call_answer, fail, passed, tensor_shape

__all__ = ["check_overlap_tile", "check_rle_encode"]

# (what, depth, (H, W), tile_size): sides that are not multiples of the step. The depth-3 case moves
# by less than its output; the strip is thinner than the margin (torch's reflect padding fails on
# both, mirror_pad does not).
_CASES = [("a 70 x 90 image, depth-2 network, tile 52 (12 x 12 outputs, step 12)", 2, (70, 90), 52),
          ("a 45 x 70 image, depth-3 network, tile 108 (20 x 20 outputs, step 16)", 3, (45, 70), 108),
          ("a 9 x 61 strip, thinner than the 20-pixel margin, depth 2, tile 60", 2, (9, 61), 60)]


def _case(depth: int, h: int, w: int, seed: int):
    """A seeded, untrained UNet(3, 1, base_channels=4, padding="valid") and a (3, H, W) image;
    the caller's random state is left as it was."""
    import torch

    from ..model import UNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNet(3, 1, base_channels=4, depth=depth, padding="valid", batch_norm=False)
        return model, torch.rand(3, h, w)


class _Spy:
    """A forward pre-hook on the model: (tile shape, model.training, grad enabled) of every call."""

    def __init__(self, model):
        self.calls: list[tuple[tuple[int, ...] | None, bool, bool]] = []
        self.handle = model.register_forward_pre_hook(self.record)

    def record(self, module, args) -> None:
        import torch

        shape = tuple(args[0].shape) if args and hasattr(args[0], "shape") else None
        self.calls.append((shape, module.training, torch.is_grad_enabled()))

    def tiles(self) -> int:
        return sum(s[0] if s and len(s) == 4 else 1 for s, _, _ in self.calls)


def _run(my_tiled: Callable[..., Any], model, image, tile: int, call: str, spy: _Spy) -> Any:
    """The learner's answer; a crash becomes a sentence (the arguments are too long to print), or the
    tile-size message when the crash came from a tile of the wrong size."""
    if not callable(my_tiled):
        call_answer(my_tiled, "my_tiled")  # says it is not a function
    try:
        return my_tiled(model, image, tile)
    except NotImplementedError as e:
        raise CheckFailed("my_tiled still raises NotImplementedError: replace that line with your solution "
                          "and run its cell again.") from e
    except Exception as e:  # the learner's code crashed: say where, keep the traceback below
        try:
            _check_tile_sizes(spy, call, tile)
        except CheckFailed as said:
            raise said from e
        hint = (" F.pad's reflect mode cannot pad by more than the side minus 1; mirror_pad mirrors again and "
                "again, so any margin works." if "Padding size should be less" in str(e) else "")
        raise CheckFailed(f"{call} raised {type(e).__name__}: {str(e).rstrip('.')}.{hint}") from e


def _check_tile_sizes(spy: _Spy, call: str, tile: int) -> None:
    """Every input the model got is tile_size x tile_size."""
    for shape, _, _ in spy.calls:
        if shape is None or tuple(shape[-2:]) != (tile, tile):
            size = " x ".join(map(str, shape[-2:])) if shape else "?"
            why = ("That is one pass over the whole image, not tiles: overlap-tile runs the network on "
                   "tile_size x tile_size pieces only, so memory depends on the tile, not on the image."
                   if shape and shape[-2] > tile and shape[-1] > tile else
                   "A smaller one is a tile cut short by the end of the padded image: pad the bottom and right "
                   "further, so that the last row and column of tiles are whole.")
            fail(f"{call} ran the model on a {size} input (H x W); every tile must be {tile} x {tile}. {why}")


def _check_calls(spy: _Spy, call: str, tile: int) -> None:
    """Tiles of tile_size only, in eval mode, without gradients."""
    if not spy.calls:
        fail(f"{call} never ran the model: call it on each tile, model(tiles) with tiles (B, C, {tile}, {tile}) "
             f"(model(x), not model.forward(x)).")
    _check_tile_sizes(spy, call, tile)
    if any(training for _, training, _ in spy.calls):
        fail(f"{call} ran the model in training mode (the check hands it over in train mode, as during "
             f"training). In train mode BatchNorm normalises each tile by the tile's own statistics and updates "
             f"its running statistics, and dropout drops pixels. Call model.eval() before the first tile.")
    if any(grad for _, _, grad in spy.calls):
        fail(f"{call} ran the model with gradients on: autograd keeps every tile's activations for a backward "
             f"pass that never comes, so memory grows with the image. Run the tiles inside "
             f"`with torch.no_grad():`.")


def _check_shape(got: Any, call: str, h: int, w: int) -> None:
    shape = tensor_shape(got, call)
    if shape == (1, h, w):
        return
    if shape == (1, 1, h, w):
        fail(f"{call} returned shape {shape}; expected (1, {h}, {w}), one image's logits (out_channels, H, W): "
             f"the batch dimension of the model's output is left over. Take [0] of each tile's output.")
    if len(shape) == 3 and shape[1] >= h and shape[2] >= w:
        fail(f"{call} returned shape {shape}; expected (1, {h}, {w}). Your result covers {shape[1]} x "
             f"{shape[2]}, more than the {h} x {w} image, as the tiles' outputs do: crop the extra rows at the "
             f"bottom and columns at the right, result[:, :H, :W].")
    fail(f"{call} returned shape {shape}; expected (1, {h}, {w}): the model's one output channel, then the "
         f"image's own height and width (H x W).")


def _one_pass(model, image, mode: str):
    """One pass over the image padded by `mode` (F.pad's "constant" or "replicate"), cropped to H x W:
    what a tiled run with that padding gives, for a valid network."""
    import torch
    import torch.nn.functional as F

    from ..tiling import context_margin, covering_tile_size

    (h, w), m = image.shape[-2:], context_margin(model.config["depth"])
    th, tw = covering_tile_size(model, h, w)
    with torch.no_grad():
        return model(F.pad(image[None], (m, tw - w - m, m, th - h - m), mode=mode))[0, :, :h, :w]


def _stepped_by(model, image, tile: int, step: int):
    """Tiles moved by `step` (the whole output, not a multiple of 2**depth), each output written whole."""
    import torch

    from ..tiling import context_margin, mirror_pad

    (h, w), m = image.shape[-2:], context_margin(model.config["depth"])
    out, rows, cols = tile - 2 * m, math.ceil(h / step), math.ceil(w / step)
    padded = mirror_pad(image, m, (rows - 1) * step + tile - m - h, m, (cols - 1) * step + tile - m - w)
    result = torch.zeros(1, (rows - 1) * step + out, (cols - 1) * step + out)
    with torch.no_grad():
        for i in range(0, rows * step, step):
            for j in range(0, cols * step, step):
                result[:, i:i + out, j:j + out] = model(padded[None, :, i:i + tile, j:j + tile])[0]
    return result[:, :h, :w]


def _shift(got, want) -> tuple[int, int, bool] | None:
    """(dy, dx, exact) such that got[0, y, x] is want[0, y + dy, x + dx] where both exist: exactly, or
    clearly closer than at any other shift (a shift that is not a whole pooling period); else None."""
    a, b = got[0].double().numpy(), want[0].double().numpy()
    h, w = b.shape
    errors = {}
    for dy in range(-(h * 3 // 4), h * 3 // 4 + 1):
        for dx in range(-(w * 3 // 4), w * 3 // 4 + 1):
            errors[dy, dx] = abs(a[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
                                 - b[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]).mean()
    (best, low), (_, second) = sorted(errors.items(), key=lambda kv: kv[1])[:2]
    if best == (0, 0) or not low < 0.3 * second:
        return None
    return best[0], best[1], bool(low < 1e-5 * (b.std() + abs(b).mean()))


def _diagnose(got, want, model, image, tile: int, call: str, tiles_run: int) -> None:
    """Say which usual mistake gives `got`, or where it differs from `want`."""
    from ..tiling import context_margin

    depth, (h, w) = model.config["depth"], want.shape[-2:]
    m, period = context_margin(depth), 2**depth
    out = tile - 2 * m
    step = out // period * period
    rows, cols = math.ceil(h / step), math.ceil(w / step)
    close = _close_pixels(got, want)
    band = m + period - 1
    for mode, what in (("constant", "zeros (F.pad's default)"), ("replicate", "the edge pixel repeated")):
        if _close_pixels(got, _one_pass(model, image, mode)).all():
            fail(f"{call}: pixels within {band} px of the image's edge differ from predict_tiled: your context "
                 f"beyond the edge is {what}. The paper mirrors the image there (Figure 2): pad with "
                 f"mirror_pad(image, top, bottom, left, right).")
    if step != out and _close_pixels(got, _stepped_by(model, image, tile, out)).all():
        fail(f"{call}: your tiles move by the whole output, {out} px, which is not a multiple of 2**depth = "
             f"{period}: each tile then pools on a grid shifted against the one before, and its pixels differ "
             f"from one pass. Move by step = {step}, the largest multiple of {period} in {out}; keep each "
             f"tile's first {step} rows and columns.")
    ratio = got[..., ~close] / want[..., ~close]
    if ratio.numel() and ((ratio - ratio.round()).abs() < 1e-3).all() and (ratio.round() >= 2).all():
        fail(f"{call}: where neighbouring outputs overlap, your values are {int(ratio.round().max())}x "
             f"predict_tiled's: you added them (+=). Outputs of {out} px moved by {step} overlap by "
             f"{out - step} px and agree there: assign (=), or keep only each output's first {step} rows "
             f"and columns.")
    if tiles_run < rows * cols:
        fail(f"{call} ran {tiles_run} tiles; {rows} x {cols} = {rows * cols} are needed, outputs of {out} x {out} "
             f"moved by {step} down and across a {h} x {w} image. Move the tiles by {step}, not by the input "
             f"size {tile} (a tile reads {tile} px but writes only {out}: steps of {tile} leave gaps), and run "
             f"the last row and column too.")
    shift = _shift(got, want)
    if shift:
        dy, dx, exact = shift
        moved = (f"your result is predict_tiled's moved by {'' if exact else 'about '}{dy} rows and {dx} columns: "
                 f"your pixel (y, x) holds the answer for pixel (y {dy:+d}, x {dx:+d})")
        if (dy, dx) == (m, m):
            why = (f"pad the top and left by the context margin, {m} px, too, so that tile k reads image rows "
                   f"k * step - {m} onwards and its output starts at row k * step.")
        elif (dy, dx) == (rows * step - h, cols * step - w) or (dy, dx) == ((rows - 1) * step + out - h,
                                                                            (cols - 1) * step + out - w):
            why = "crop the stitched result at the bottom and right, result[:, :H, :W], not at the top and left."
        else:
            why = (f"pad the top and left by exactly context_margin(depth) = {m}, put tile k's output at row and "
                   f"column k * step of the result, and keep the first {step} rows and columns of each output.")
        fail(f"{call}: {moved}. The geometry is off: {why}")
    _where(close, call, band, out, (got - want).abs().max().item())


def _close_pixels(got, want):
    """(H, W) bool: the pixels where got equals want to float tolerance (relative to want's spread)."""
    tol = 1e-5 * (want.std().item() + want.abs().mean().item()) + 1e-9
    return ((got.double() - want.double()).abs() <= tol).all(0)


def _where(close, call: str, band: int, out: int, largest: float) -> None:
    """The last word: where the wrong pixels are, and what decides those pixels."""
    h, w = close.shape
    wrong = ~close
    inner = wrong[band:h - band, band:w - band]
    y, x = (int(v) for v in wrong.nonzero()[0])
    said = (f"{call}: {int(wrong.sum())} of {h * w} pixels differ from predict_tiled (by up to {largest:.3g}), "
            f"the first at row {y}, column {x}")
    if h > out and w > out and not wrong[:h - out, :w - out].any():
        fail(f"{said}; all lie in the last {out} rows or columns, the last row or column of tiles. Pad the "
             f"bottom and right so that the last tiles read the mirrored image whole, place them on the grid "
             f"(i = (rows - 1) * step) like the others, not moved back to end at the image's edge, and crop the "
             f"result to [:, :H, :W] only at the end.")
    if inner.numel() and not inner.any():
        fail(f"{said}; all lie within {band} px of the image's edge, and the inside is right. Those pixels see "
             f"the context beyond the edge: pad with mirror_pad (not zeros), by context_margin(depth) at the "
             f"top and left.")
    fail(f"{said}. Check each step against Figure 2: mirror_pad by the margin on the top and left; tile (i, j) "
         f"reads padded[:, i:i + tile_size, j:j + tile_size] for i, j = 0, step, 2 * step, ...; its output's "
         f"first step rows and columns go to result[:, i:i + step, j:j + step]; crop to [:, :H, :W].")


def check_overlap_tile(my_tiled: Callable[..., Any]) -> None:
    """Exercise 1: `my_tiled(model, image, tile_size)` for a valid U-Net and one image (C, H, W) -> logits
    (out_channels, H, W), tile by tile with mirrored context; must equal predict_tiled. Lesson 08."""
    from ..inference import predict_tiled

    for seed, (what, depth, (h, w), tile) in enumerate(_CASES):
        model, image = _case(depth, h, w, seed)
        model.train()  # as in the middle of training: the function must switch to eval itself
        want = predict_tiled(model, image, tile)  # (1, H, W); leaves the model in train mode
        call = f"my_tiled(model, image, {tile}) on {what}"
        spy = _Spy(model)
        try:
            got = _run(my_tiled, model, image.clone(), tile, call, spy)
        finally:
            spy.handle.remove()
        _check_calls(spy, call, tile)
        _check_shape(got, call, h, w)
        if not _close_pixels(got.detach().float(), want).all():
            _diagnose(got.detach().float(), want, model, image, tile, call, spy.tiles())
    passed("mirror-padded by the context margin, tiles moved in whole pooling periods, outputs stitched and "
           "cropped to H x W, in eval mode without gradients; equals predict_tiled on all three images.")


# ------------------------------------------------------------- exercise 2: Kaggle RLE

def _rle_masks() -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(7)
    blobs = (rng.random((7, 11)) < 0.45).astype(np.uint8)
    blobs[0, 0] = blobs[-1, -1] = 1
    edges = np.zeros((3, 5), np.uint8)
    edges[0, :2] = edges[2, 3:] = 1
    tiny = np.array([[0, 0, 1, 1], [1, 1, 1, 0], [0, 0, 0, 1]], np.uint8)
    return [(tiny, "lesson 05's 3 x 4 mask (a run that wraps from row 0 into row 1)"),
            (edges, "a 3 x 5 mask whose runs touch the first and the last pixel"),
            (np.zeros((4, 6), np.uint8), "an empty 4 x 6 mask"),
            (np.ones((2, 3), np.uint8), "a 2 x 3 mask that is all car"),
            (blobs, "a random 7 x 11 mask with many runs")]


def _pairs(rle: str) -> list[int]:
    return [int(x) for x in rle.split()]


def _runs(mask: np.ndarray, order: str = "C") -> list[tuple[int, int]]:
    """0-indexed (start, end exclusive) of each run of 1s, reading the mask in `order`."""
    flat = np.concatenate([[0], mask.reshape(-1, order=order).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(flat))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _rle_hints(got: str, mask: np.ndarray) -> list[tuple[str, str]]:
    """(a wrong answer, what is wrong) for the usual mistakes on `mask`."""
    runs = _runs(mask)
    join = lambda pairs: " ".join(str(x) for pair in pairs for x in pair)  # noqa: E731
    return [
        (join((s, e - s) for s, e in runs), "every start is one too small: Kaggle numbers pixels from 1, "
                                            "so a run that starts at flat index i starts at pixel i + 1"),
        (join((s + 1, e - s) for s, e in _runs(mask, "F")), "you read the mask column by column; Kaggle reads "
                                                             "it row by row (numpy's default C order: "
                                                             "mask.reshape(-1) or mask.flatten())"),
        (join((s + 1, e) for s, e in runs), "the second number of a pair is the run's length, not where it ends"),
        (join((s + 1, e + 1) for s, e in runs), "the second number of a pair is the run's length, not where it "
                                                "ends"),
        (join((s + 1, e - s) for s, e in runs if e < mask.size), "the run that reaches the last pixel is "
                                                                  "missing: close a run still open at the end "
                                                                  "(pad the flat mask with a 0)"),
        (join((s + 1, e - s) for s, e in runs if s > 0), "the run that starts at the first pixel is missing: "
                                                         "pad the flat mask with a 0 in front too"),
        (join((s + 1, e - s - 1) for s, e in runs), "each length is one too short: a run from index s up to "
                                                    "(not including) e has e - s pixels"),
    ]


def check_rle_encode(rle_encode_by_hand: Callable[[np.ndarray], str]) -> None:
    """Exercise 2: `rle_encode_by_hand(mask)` for a uint8 (H, W) {0, 1} mask -> the Kaggle
    RLE string: 'start length ...', pixels numbered from 1 row by row, '' for an empty mask. Lesson 08."""
    from ..rle import rle_decode, rle_encode

    for mask, what in _rle_masks():
        call = f"rle_encode_by_hand(<{what}>)"
        got = call_answer(rle_encode_by_hand, "rle_encode_by_hand", mask.copy())
        want = rle_encode(mask)
        if isinstance(got, (list, tuple, np.ndarray)):
            fail(f"{call} returned a {type(got).__name__}; expected a string such as {want!r}: "
                 f"' '.join(str(n) for n in numbers).")
        if not isinstance(got, str):
            fail(f"{call} returned a {type(got).__name__}; expected a str such as {want!r}.")
        if got == want:
            continue
        if got.split() == want.split():
            fail(f"{call} returned {got!r}; expected {want!r}: the same numbers, but separate them by single "
                 f"spaces with nothing before or after.")
        if not want:
            fail(f"{call} returned {got!r}; an empty mask has no runs, so its RLE is the empty string ''.")
        if "np." in got or "(" in got or "[" in got:
            fail(f"{call} returned {got!r}: write plain numbers, str(int(n)) for each, joined by spaces.")
        for wrong, hint in _rle_hints(got, mask):
            if got.split() == wrong.split():
                fail(f"{call} returned {got!r}; expected {want!r}: {hint}.")
        try:
            decoded = rle_decode(got, mask.shape)
            diff = f"; decoded, it differs from the mask in {int((decoded != mask).sum())} pixels"
        except ValueError as e:
            diff = f"; it is not a valid RLE: {str(e).rstrip('.')}"
        fail(f"{call} returned {got!r}; expected {want!r}{diff}. Number the pixels 1, 2, ... row by row and "
             f"write 'start length' for each run of 1s.")
    passed("row-major, 1-indexed 'start length' pairs, '' for an empty mask; matches course_utils.rle_encode.")
