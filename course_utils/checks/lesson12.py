"""Checks for lesson 12's exercises: the weight map's border term, the two nearest cells (d1, d2),
the class-frequency weights w_c, and the paper's initialisation std sqrt(2 / N).

Each check runs the learner's function on small inputs chosen to tell the usual mistakes apart
(sigma not squared, the factor 2 missing, d1 alone, the largest distance instead of the second
smallest, the weights upside down, fan-out instead of fan-in, ...), compares it with
course_utils.paper and says in words what differs.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ._common import call_answer, fail, passed

__all__ = ["check_border_term", "check_two_nearest", "check_class_weights", "check_paper_std"]


def _array(got: Any, call: str) -> np.ndarray:
    """The learner's answer as a float64 array, or a sentence saying why it is not one."""
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    try:
        return np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        fail(f"{call} returned a {type(got).__name__}; expected an array of numbers.")


# ------------------------------------------------------------- exercise 1: the border term

def _distances() -> tuple[np.ndarray, np.ndarray]:
    """(d1, d2) float32 (3, 4): a narrow gap (1 + 1), a wider one, and pixels far from any cell."""
    d1 = np.array([[1, 1, 2, 0], [3, 2, 5, 8], [1, 4, 10, 20]], np.float32)
    d2 = np.array([[1, 2, 2, 3], [3, 6, 5, 9], [7, 4, 10, 25]], np.float32)
    return d1, d2


def _border_hints(d1, d2, w0, sigma) -> list[tuple[np.ndarray, str]]:
    d = d1 + d2
    with np.errstate(over="ignore"):
        return [
            (w0 * np.exp(-d**2 / (2 * sigma)), "sigma is not squared: the denominator is 2 * sigma**2"),
            (w0 * np.exp(-d**2 / sigma**2), "the factor 2 is missing: the denominator is 2 * sigma**2"),
            (w0 * np.exp(-d**2 / 2 * sigma**2), "2 * sigma**2 must be in the denominator: write "
                                                "d**2 / (2 * sigma**2), with the parentheses"),
            (w0 * np.exp(-d1**2 / (2 * sigma**2)), "that uses d1 alone; the paper adds the distances to the "
                                                   "nearest AND the second nearest cell: (d1 + d2)**2"),
            (w0 * np.exp(-(d1**2 + d2**2) / (2 * sigma**2)), "square the sum, not each distance: (d1 + d2)**2, "
                                                             "not d1**2 + d2**2"),
            (w0 * np.exp(-d / (2 * sigma**2)), "the sum of the distances is squared: (d1 + d2)**2"),
            (w0 * np.exp(d**2 / (2 * sigma**2)), "the exponent needs a minus sign: the weight must fall as the "
                                                 "gap widens"),
            (np.exp(-d**2 / (2 * sigma**2)), "the factor w0 is missing"),
            (1 + w0 * np.exp(-d**2 / (2 * sigma**2)), "only the border term: w_c (the + 1) is added later, "
                                                      "not here"),
        ]


def check_border_term(border_term: Callable[..., Any]) -> None:
    """Exercise 1: `border_term(d1, d2, w0, sigma)` -> w0 * exp(-(d1 + d2)^2 / (2 sigma^2)),
    element by element, for arrays d1, d2 of the same shape. Lesson 12."""
    from ..paper import border_term as reference

    d1, d2 = _distances()
    for w0, sigma in ((10.0, 5.0), (3.0, 2.0)):
        call = f"border_term(d1, d2, w0={w0:g}, sigma={sigma:g}) with d1, d2 of shape {d1.shape}"
        got = _array(call_answer(border_term, "border_term", d1.copy(), d2.copy(), w0, sigma), call)
        want = reference(d1, d2, w0, sigma).astype(np.float64)
        if got.shape != want.shape:
            fail(f"{call} returned shape {got.shape}; expected {want.shape}, one weight per pixel: compute it "
                 f"element by element (np.exp works on whole arrays), without summing or averaging.")
        if np.allclose(got, want, rtol=1e-4, atol=1e-6):
            continue
        if (w0, sigma) != (10.0, 5.0):
            first = reference(d1, d2, 10.0, 5.0).astype(np.float64)
            if np.allclose(got, first, rtol=1e-4, atol=1e-6):
                fail(f"{call} gave the values for w0=10, sigma=5: use the arguments w0 and sigma, "
                     f"not the paper's numbers written in.")
        for wrong, hint in _border_hints(d1.astype(np.float64), d2.astype(np.float64), w0, sigma):
            if got.shape == wrong.shape and np.allclose(got, wrong, rtol=1e-4, atol=1e-6):
                fail(f"{call}: {hint}.")
        k = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
        fail(f"{call}: at d1={d1[k]:g}, d2={d2[k]:g} you gave {got[k]:.4f}; expected "
             f"{w0:g} * exp(-({d1[k]:g} + {d2[k]:g})**2 / (2 * {sigma:g}**2)) = {want[k]:.4f}.")
    passed("w0 * exp(-(d1 + d2)**2 / (2 sigma**2)): about w0 in a 2-pixel gap, near 0 between cells "
           "far apart; matches course_utils.paper.border_term.")


# ------------------------------------------------------------- exercise 2: d1 and d2

def _cell_distance_stack(k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 30, size=(k, 5, 6)).round(1).astype(np.float32)


def _as_two(got: Any, call: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    if isinstance(got, np.ndarray) and got.ndim == len(shape) + 1 and got.shape[0] == 2:
        got = (got[0], got[1])
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        fail(f"{call} returned a {type(got).__name__}; expected two arrays, (d1, d2): return d1, d2.")
    d1, d2 = (_array(g, call) for g in got)
    for name, d in (("d1", d1), ("d2", d2)):
        if d.shape != shape:
            hint = (" (the K axis is left over: take the smallest over axis 0 and drop it)" if d.ndim == 3 else
                    " (reduce over axis 0, the cells, not over the pixels)")
            fail(f"{call} returned {name} of shape {d.shape}; expected {shape}, one distance per pixel{hint}.")
    return d1, d2


def check_two_nearest(two_nearest: Callable[..., Any]) -> None:
    """Exercise 2: `two_nearest(distances)` for distances (K, H, W), K >= 2 ->
    (d1, d2), each (H, W): the smallest and the second smallest distance of each pixel over the K cells. Lesson 12."""
    for k, seed in ((2, 0), (5, 1)):
        dist = _cell_distance_stack(k, seed)
        call = f"two_nearest(distances) with distances of shape {dist.shape} (K={k} cells)"
        d1, d2 = _as_two(call_answer(two_nearest, "two_nearest", dist.copy()), call, dist.shape[1:])
        srt = np.sort(dist, axis=0).astype(np.float64)
        if np.allclose(d1, srt[0]) and np.allclose(d2, srt[1]):
            continue
        if np.allclose(d1, srt[1]) and np.allclose(d2, srt[0]):
            fail(f"{call}: d1 and d2 are swapped; d1 is the nearest cell's distance, the smaller one.")
        if np.allclose(d1, srt[0]) and np.allclose(d2, srt[0]):
            fail(f"{call}: d2 equals d1. d2 is the distance to the SECOND nearest cell: sort over axis 0 "
                 f"(np.sort(distances, axis=0)) and take rows 0 and 1.")
        if np.allclose(d1, srt[0]) and np.allclose(d2, srt[-1]):
            fail(f"{call}: d2 is the largest distance (the farthest cell); it should be the second smallest, "
                 f"np.sort(distances, axis=0)[1].")
        if k > 2 and (np.allclose(d1, srt[-1]) or np.allclose(d2, srt[-1])):
            fail(f"{call}: that takes the largest distances; the paper's d1, d2 are the two smallest "
                 f"(the nearest cells).")
        if np.allclose(d1, dist[0]) and np.allclose(d2, dist[1]):
            fail(f"{call}: that returns the distance maps of cells 0 and 1; which two cells are nearest differs "
                 f"from pixel to pixel: sort each pixel's K distances (np.sort(distances, axis=0)).")
        fail(f"{call}: d1 or d2 differs from the two smallest of each pixel's {k} distances, e.g. at pixel (0, 0) "
             f"the distances are {dist[:, 0, 0].tolist()}, so d1 = {srt[0, 0, 0]:g} and d2 = {srt[1, 0, 0]:g}; "
             f"you gave {d1[0, 0]:g} and {d2[0, 0]:g}.")
    passed("d1 and d2 are the smallest and second smallest distance over the cells, pixel by pixel.")


# ------------------------------------------------------------- exercise 3: w_c

def _masks() -> list[tuple[np.ndarray, str]]:
    few = np.zeros((4, 5), bool)
    few[1:3, 1:3] = True  # 4 of 20 pixels: foreground is the rarer class
    many = np.ones((4, 5), bool)
    many[0, :] = False  # 15 of 20: background is the rarer class
    return [(few, "a 4 x 5 mask with 4 foreground pixels"), (many, "a 4 x 5 mask with 15 foreground pixels"),
            (np.zeros((3, 3), bool), "an all-background 3 x 3 mask")]


def check_class_weights(class_weights: Callable[..., Any]) -> None:
    """Exercise 3: `class_weights(mask)` for a bool (H, W) mask -> float (H, W) w_c: each
    pixel weighs freq(most frequent class) / freq(its class); all 1 when the mask has one class only. Lesson 12."""
    from ..paper import class_frequency_weights

    for mask, what in _masks():
        call = f"class_weights(<{what}>)"
        got = call_answer(class_weights, "class_weights", mask.copy())
        if isinstance(got, (tuple, list)) and len(got) == 2:
            fail(f"{call} returned two numbers, one per class; expected a map (H, W), one weight per pixel: "
                 f"np.where(mask, w_foreground, w_background).")
        got = _array(got, call)
        want = class_frequency_weights(mask).astype(np.float64)
        if got.shape != mask.shape:
            fail(f"{call} returned shape {got.shape}; expected {mask.shape}, one weight per pixel.")
        if np.allclose(got, want, rtol=1e-5):
            continue
        if not np.all(np.isfinite(got)):
            fail(f"{call} returned inf or nan: with one class only the other has frequency 0. Return 1 for "
                 f"every pixel then (nothing to balance).")
        fg, bg = mask.mean(), 1 - mask.mean()
        if 0 < fg < 1:
            rare, common = (mask, ~mask) if fg < bg else (~mask, mask)
            freq = np.where(mask, fg, bg)
            if np.allclose(got[rare], want[common][0]) and np.allclose(got[common], want[rare][0]):
                fail(f"{call}: the weights are the wrong way round: the RARER class must weigh more "
                     f"({want[rare][0]:g}) and the commoner one 1.")
            if np.allclose(got, freq) or np.allclose(got, freq / freq.max()):
                fail(f"{call}: that weighs each pixel by its class's frequency; it should be the inverse: "
                     f"freq(most frequent class) / freq(its class).")
            if np.allclose(got, 1 / freq):
                fail(f"{call}: 1 / frequency is the right shape but not normalised: divide by the most "
                     f"frequent class's 1 / frequency, so that class weighs exactly 1.")
            if np.allclose(got, freq.min() / freq):
                fail(f"{call}: the rarer class weighs 1 and the commoner less than 1; normalise by the most "
                     f"frequent class, max frequency / frequency (and do not assume the foreground is the "
                     f"rarer class).")
            if np.allclose(got[mask], want[mask]) or np.allclose(got[~mask], want[~mask]):
                fail(f"{call}: one class is right, the other not: is the foreground assumed to be the rarer "
                     f"class? Here {'background' if fg > bg else 'foreground'} is rarer.")
        k = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
        fail(f"{call}: pixel {tuple(int(i) for i in k)} ({'foreground' if mask[k] else 'background'}) weighs "
             f"{got[k]:g}; expected {want[k]:g} (foreground frequency {fg:g}, background {bg:g}).")
    passed("the commoner class weighs 1, the rarer freq_common / freq_rare, 1 everywhere for a one-class mask; "
           "matches course_utils.paper.class_frequency_weights.")


# ------------------------------------------------------------- exercise 4: the paper's init

def check_paper_std(paper_std: Callable[..., Any]) -> None:
    """Exercise 4: `paper_std(in_channels, out_channels, kernel_size)` -> sqrt(2 / N),
    N = in_channels * kernel_size**2, the inputs one output unit of the conv sees. Lesson 12."""
    for c_in, c_out, k in ((128, 64, 3), (64, 64, 3), (1, 64, 3), (64, 2, 1)):
        call = f"paper_std({c_in}, {c_out}, {k})"
        got = call_answer(paper_std, "paper_std", c_in, c_out, k)
        if hasattr(got, "item"):
            got = got.item()
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            fail(f"{call} returned a {type(got).__name__}; expected one number (a float).")
        n = c_in * k * k
        want = math.sqrt(2 / n)
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        hints = [(2 / n, "that is the variance 2 / N; the standard deviation is its square root"),
                 (math.sqrt(1 / n), "the 2 is missing: sqrt(2 / N). ReLU zeroes half of its inputs, the 2 "
                                    "makes up for it"),
                 (math.sqrt(2 / (c_out * k * k)), "N counts the inputs (in_channels), not the outputs"),
                 (math.sqrt(2 / (c_in * k)), "a k x k kernel has k * k taps per channel: N = in_channels * k**2"),
                 (math.sqrt(2 / c_in), "the kernel's k * k taps are missing: N = in_channels * k**2"),
                 (math.sqrt(2 / ((c_in + c_out) * k * k)), "that is Glorot's fan-in + fan-out; the paper uses "
                                                           "the fan-in only"),
                 (math.sqrt(2) / n, "the square root covers 2 / N as a whole: sqrt(2 / N)")]
        for wrong, hint in hints:
            if math.isclose(got, wrong, rel_tol=1e-6):
                fail(f"{call} returned {got:.5g}; expected sqrt(2 / {n}) = {want:.5g}: {hint}.")
        fail(f"{call} returned {got:.5g}; expected sqrt(2 / N) with N = {c_in} * {k}**2 = {n}: {want:.5g}.")
    passed("sqrt(2 / N), N = in_channels * k**2 (576 for a 3x3 conv on 64 channels: std 0.0589).")
