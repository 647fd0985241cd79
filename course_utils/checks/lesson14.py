"""Checks for lesson 14's exercises: which encoder stage feeds which `Up` block of an EncoderUNet,
and the band of pixels around a mask's outline that the outline-band error scores.

The first check traces the real networks (a hook on each Up block records the skip it is given);
the second runs the learner's function on small masks built to tell the usual mistakes apart (one
side of the outline only, the image's edge taken for an outline, a cross instead of a square
neighbourhood, a band one pixel too wide or too narrow) and compares it with
course_utils.metrics.outline_band.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ._common import call_answer, fail, passed

__all__ = ["check_skip_shapes", "check_outline_band"]


# ------------------------------------------------------------- exercise 1: the skips of EncoderUNet

@functools.lru_cache(maxsize=None)
def _network(encoder: str):
    """EncoderUNet(encoder), random weights, built once (VGG11 takes a second or two)."""
    from ..encoders import EncoderUNet

    return EncoderUNet(encoder).eval()


def _traced_skips(encoder: str, height: int, width: int) -> tuple[tuple[int, int, int], ...]:
    """(channels, h, w) of the skip each Up block of EncoderUNet(encoder) receives, in running order."""
    import torch

    net, seen = _network(encoder), []
    hooks = [up.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[1].shape[1:])))
             for up in net.ups]
    with torch.no_grad():
        net(torch.zeros(1, 3, height, width))
    for hook in hooks:
        hook.remove()
    return tuple(seen)


def _shapes(got: Any, call: str) -> list[tuple[int, ...]]:
    """The learner's answer as a list of int tuples, or a sentence saying why it is not one."""
    if not isinstance(got, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in got):
        fail(f"{call} returned {got!r}; expected a list of (channels, height, width) tuples, one per Up block.")
    try:
        return [tuple(int(v) for v in s) for s in got]
    except (TypeError, ValueError):
        fail(f"{call} returned {got!r}; each entry should be three whole numbers (channels, height, width).")


def _skip_hint(got: list[tuple[int, ...]], want: tuple[tuple[int, int, int], ...], encoder: str) -> str:
    if len(got) != len(want):
        extra = ("; ResNet-34's top stage is at 1/2 of the input, so its last Up (final_up) has no skip"
                 if encoder == "resnet34" and len(got) == len(want) + 1 else
                 "; the bottom stage is where the Up blocks start, not a skip" if len(got) == len(want) + 1 else "")
        return f"returned {len(got)} skips; EncoderUNet({encoder!r}) has {len(want)} Up blocks that take one{extra}"
    if any(len(s) != 3 for s in got):
        return "each entry should be (channels, height, width)"
    if got == list(reversed(want)):
        return "the order is reversed: the first Up block runs at the bottom of the U and takes the deepest skip"
    if [s[0] for s in got] == [s[0] for s in want]:
        return ("the channels are right but not the sizes: count how often the image has been halved before each "
                "stage (VGG11's first stage runs at the full size, ResNet-34's stem already at 1/2)")
    if [s[1:] for s in got] == [s[1:] for s in want]:
        return ("the sizes are right but not the channels: a skip has the channels of the stage that made it "
                f"({'64, 128, 256, 512, 512' if encoder == 'vgg11' else '64, 64, 128, 256, 512'} from the top)")
    return "compare each entry with the stage table of section 2"


def check_skip_shapes(skip_shapes: Callable[..., Any]) -> None:
    """Exercise 1: `skip_shapes(encoder, height, width)` -> a list of (channels, h, w), one per Up block
    of EncoderUNet(encoder) in the order they run (the bottom of the U first): the shape of the skip
    that block concatenates, for an input of height x width. Checked against the traced networks. Lesson 14."""
    for encoder, height, width in (("vgg11", 64, 96), ("resnet34", 64, 96), ("resnet34", 128, 64)):
        call = f"skip_shapes({encoder!r}, {height}, {width})"
        got = _shapes(call_answer(skip_shapes, "skip_shapes", encoder, height, width), call)
        want = _traced_skips(encoder, height, width)
        if got != list(want):
            fail(f"{call} {_skip_hint(got, want, encoder)}.\n  got:      {got}\n  expected: {list(want)}")
    passed("each Up block takes the stage of the same size from the contracting path, deepest first; "
           "VGG11's skips start at the full size, ResNet-34's at 1/2, so it needs one more Up without a skip.")


# ------------------------------------------------------------- exercise 2: the outline band

def _mask(rows: list[str]) -> np.ndarray:
    """A bool mask from rows of '#' (car) and '.' (background)."""
    return np.array([[ch == "#" for ch in row] for row in rows], bool)


def _band_cases() -> list[tuple[np.ndarray, int, str]]:
    """(mask, width, what): masks that tell the usual mistakes apart."""
    box = _mask(["..........", "..........", "...####...", "...####...", "...####...", "..........",
                 "..........", ".........."])
    edge = _mask(["######....", "######....", "######....", "######....", "..........", ".........."])
    dot = _mask([".......", ".......", ".......", "...#...", ".......", ".......", "......."])
    rng = np.random.default_rng(11)
    from scipy import ndimage

    blob = ndimage.binary_opening(rng.random((24, 32)) < 0.55, iterations=2)  # ragged shapes
    return [(box, 1, "an 8 x 10 mask with a 3 x 4 car, width 1"),
            (box, 2, "the same mask, width 2"),
            (dot, 1, "a 7 x 7 mask with a one-pixel car, width 1"),
            (edge, 1, "a 6 x 10 mask whose car touches the image's top and left edges, width 1"),
            (blob, 2, "a 24 x 32 mask of ragged blobs, width 2"),
            (np.zeros((5, 6), bool), 1, "an empty 5 x 6 mask (no car), width 1"),
            (np.ones((5, 6), bool), 1, "a 5 x 6 mask that is all car, width 1")]


def _as_mask(got: Any, call: str, shape: tuple[int, ...]) -> np.ndarray:
    """The learner's answer as a bool array of `shape`, or a sentence saying why it is not one."""
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    arr = np.asarray(got) if isinstance(got, (np.ndarray, list)) else None
    if arr is None or arr.dtype.kind not in "biuf":
        fail(f"{call} returned a {type(got).__name__}; expected a boolean mask (H, W), True in the band.")
    arr = arr.squeeze() if arr.ndim > 2 and arr.size == int(np.prod(shape)) else arr
    if arr.shape != shape:
        fail(f"{call} returned shape {arr.shape}; expected {shape}, the mask's own shape.")
    if not np.isin(arr, (0, 1)).all():
        fail(f"{call} returned values other than True/False (0/1); return a boolean mask, e.g. `band > 0`.")
    return arr.astype(bool)


def _band_hint(got: np.ndarray, mask: np.ndarray, width: int) -> str | None:
    """What the usual mistakes look like on this mask, or None."""
    from scipy import ndimage

    k = 2 * width + 1
    square = np.ones((k, k), bool)
    grown = ndimage.binary_dilation(mask, square)
    shrunk = ndimage.binary_erosion(mask, square, border_value=1)
    cross = ndimage.generate_binary_structure(2, 1)
    variants = [
        (mask & ~shrunk, "that is only the car's side of the outline; the band runs `width` pixels into the "
                         "background too: (dilated mask) and not (eroded mask)"),
        (grown & ~mask, "that is only the background's side of the outline; the band runs `width` pixels into "
                        "the car too: (dilated mask) and not (eroded mask)"),
        (grown & ~ndimage.binary_erosion(mask, square, border_value=0),
         "it marks the image's edge where the car touches it; the edge is not the car's outline. With scipy, "
         "erode with border_value=1; max-pooling's padding already treats outside pixels as neutral"),
        (ndimage.binary_dilation(mask, cross, iterations=width)
         & ~ndimage.binary_erosion(mask, cross, iterations=width, border_value=1),
         "it leaves out pixels whose nearest other-class pixel is diagonal: use a square (2 width + 1) x "
         "(2 width + 1) neighbourhood (max_pool2d(kernel_size=2*width+1, stride=1, padding=width)), not a cross"),
        (~(grown & ~shrunk), "that is everything except the band: the band is where the dilated mask is True "
                             "and the eroded one is False"),
    ]
    for w, what in ((width + 1, "wider"), (width - 1, "narrower")):
        if w >= 1:
            s = np.ones((2 * w + 1, 2 * w + 1), bool)
            band = ndimage.binary_dilation(mask, s) & ~ndimage.binary_erosion(mask, s, border_value=1)
            variants.append((band, f"the band is one pixel {what} than asked on each side: a window of "
                                   f"2 * width + 1 = {k} pixels (kernel_size={k}, padding={width})"))
    return next((hint for band, hint in variants if np.array_equal(got, band)), None)


def _draw(rows: np.ndarray) -> str:
    return "\n".join("    " + "".join("#" if v else "." for v in row) for row in rows)


def check_outline_band(outline_band_mask: Callable[..., Any]) -> None:
    """Exercise 2: `outline_band_mask(mask, width)` for a bool (H, W) tensor -> bool (H, W), True where a
    pixel of the other class (car vs background) lies within `width` pixels, counting a diagonal step as
    one: the band the outline-band error scores. The image's edge is no outline. Lesson 14."""
    import torch

    from ..metrics import outline_band

    for mask, width, what in _band_cases():
        call = f"outline_band_mask(mask, width={width}) on {what}"
        got = _as_mask(call_answer(outline_band_mask, "outline_band_mask", torch.from_numpy(mask.copy()), width),
                       call, mask.shape)
        want = outline_band(torch.from_numpy(mask)[None], width)[0].numpy()
        if np.array_equal(got, want):
            continue
        hint = _band_hint(got, mask, width)
        if hint:
            fail(f"{call}: {hint}.")
        fail(f"{call}: {int((got != want).sum())} pixels differ from the band.\n  mask:\n{_draw(mask)}\n"
             f"  expected band:\n{_draw(want)}\n  your band:\n{_draw(got)}")
    passed("the band is the dilated mask minus the eroded one, `width` pixels either side of the outline, "
           "a square neighbourhood, the image's edge left out; it matches course_utils.outline_band.")
