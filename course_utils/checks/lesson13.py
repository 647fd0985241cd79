"""Checks for lesson 13's exercises: the ISBI challenge's pixel error, and the cells of a mask as
its 4-connected components.

Each check runs the learner's function on small masks in the labels' convention (uint8, 255 = cell,
0 = membrane) built to tell the usual mistakes apart (accuracy instead of error, a count instead
of a share, uint8 subtraction that wraps around, one kind of error only; 8-connectivity, the
membrane labelled instead of the cells, one label for every cell), compares the answer with
course_utils.em_metrics and course_utils.data.isbi2012 and says in words what differs.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._common import call_answer, fail, one_number, passed

__all__ = ["check_pixel_error", "check_cells"]

CELL, MEMBRANE = 255, 0


def _masks(rows: list[str]) -> np.ndarray:
    """A uint8 mask from rows of '#' (cell, 255) and '.' (membrane, 0)."""
    return np.array([[CELL if ch == "#" else MEMBRANE for ch in row] for row in rows], np.uint8)


# ------------------------------------------------------------- exercise 1: pixel error

def _pixel_cases() -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(pred, target, what): 5 x 8 masks with 3 false cells and 1 missed cell pixel (so the two kinds
    of error differ), the same masks swapped, identical masks, and a larger random pair."""
    target = _masks(["####.###", "####.###", "........", "###.####", "###.####"])
    pred = _masks(["####.###", "########", "..##....", "###.####", "#.#.####"])  # 3 extra cell, 1 missed
    rng = np.random.default_rng(10)
    big_t = np.where(rng.random((32, 48)) < 0.78, CELL, MEMBRANE).astype(np.uint8)
    big_p = np.where(rng.random((32, 48)) < 0.1, CELL - big_t, big_t).astype(np.uint8)  # flip about 10%
    return [(pred, target, "5 x 8 masks that differ in 4 pixels"),
            (target, pred, "the same two masks, pred and target swapped"),
            (target, target.copy(), "two identical 5 x 8 masks"),
            (big_p, big_t, "random 32 x 48 masks that differ in about 10% of the pixels")]


def _pixel_hints(pred: np.ndarray, target: np.ndarray) -> list[tuple[float, str]]:
    p, t = pred.astype(np.int64), target.astype(np.int64)
    n = p.size
    false_cell, missed = int(((p > 0) & (t == 0)).sum()), int(((p == 0) & (t > 0)).sum())
    wrong = false_cell + missed
    wrapped = np.abs(pred - target).astype(np.float64)  # uint8 arithmetic: 0 - 255 wraps to 1
    return [
        (1 - wrong / n, "that is the pixel accuracy, the share of pixels that AGREE; the pixel error is "
                        "1 - accuracy, the share that disagree"),
        (float(wrong), "that is the number of wrong pixels; the pixel error is their share: divide by the "
                       "number of pixels (or take the mean of a boolean array)"),
        (wrapped.mean(), "uint8 subtraction wraps around (0 - 255 is 1 in uint8, not -255): compare the masks "
                         "with != instead, or convert them to int first"),
        (wrapped.mean() / 255, "uint8 subtraction wraps around (0 - 255 is 1 in uint8, not -255): compare the "
                               "masks with != instead, or convert them to int first"),
        (255 * wrong / n, "that is 255 times the error: the masks hold 0 and 255, not 0 and 1; compare them "
                          "with != and take the mean"),
        (false_cell / n, "that counts only pixels predicted cell where the truth is membrane; count every "
                         "pixel where the two masks disagree, both ways"),
        (missed / n, "that counts only true cell pixels predicted as membrane; count every pixel where the "
                     "two masks disagree, both ways"),
        (wrong / max(int((t > 0).sum()), 1), "that divides by the number of cell pixels; the pixel error "
                                             "divides by ALL pixels of the slice"),
        (wrong / max(int((t == 0).sum()), 1), "that divides by the number of membrane pixels; the pixel error "
                                              "divides by ALL pixels of the slice"),
    ]


def check_pixel_error(pixel_error: Callable[..., Any]) -> None:
    """Exercise 1: `pixel_error(pred, target)` for two uint8 (H, W) masks with 255 = cell
    and 0 = membrane -> one float, the share of pixels where the two masks disagree (1 - pixel accuracy). Lesson 13."""
    from ..em_metrics import pixel_error as reference

    for pred, target, what in _pixel_cases():
        call = f"pixel_error(pred, target) on {what}"
        got = one_number(call_answer(pixel_error, "pixel_error", pred.copy(), target.copy()), call,
                         meaning="the error over the whole slice: average over all pixels (.mean() without an axis)")
        want = reference(pred, target)
        if np.isclose(got, want, rtol=1e-6, atol=1e-9):
            continue
        for wrong, hint in _pixel_hints(pred, target):
            if np.isclose(got, wrong, rtol=1e-6, atol=1e-9):
                fail(f"{call} returned {got:.6g}; expected {want:.6g}: {hint}.")
        n_wrong = int((pred != target).sum())
        fail(f"{call} returned {got:.6g}; expected {n_wrong} wrong pixels / {pred.size} pixels = {want:.6g}.")
    passed("the pixel error is the share of pixels where prediction and truth disagree; it matches "
           "course_utils.em_metrics.pixel_error.")


# ------------------------------------------------------------- exercise 2: the cells of a mask

def _cell_cases() -> list[tuple[np.ndarray, str]]:
    """Masks (uint8 0/255) that tell 4- from 8-connectivity and cells from membranes apart."""
    diagonal = _masks(["###.", "##.#", "#.##", ".###"])  # a diagonal membrane: 2 cells, 1 with 8-connectivity
    several = _masks(["###.##.##",
                      "###.##.##",
                      "....#....",
                      "##.#.#.##",
                      "##..#..##",
                      ".#.#.#.#.",
                      "#.#####.#"])  # cells at the border, cells meeting only at corners, a wavy one
    ring = _masks(["#####", "#...#", "#.#.#", "#...#", "#####"])  # a ring cell around a membrane, a cell inside
    return [(several, "a 7 x 9 mask with 11 cells, some meeting only at a corner"),
            (diagonal, "a 4 x 4 mask with a diagonal membrane"),
            (ring, "a 5 x 5 ring of cell around a membrane with one cell pixel inside"),
            (np.zeros((3, 4), np.uint8), "a 3 x 4 mask of membrane only"),
            (np.full((3, 4), CELL, np.uint8), "a 3 x 4 mask that is one cell")]


def _same_cells(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images split the pixels the same way (membrane 0 in both; any numbering)."""
    if not np.array_equal(a == 0, b == 0):
        return False
    on = a != 0
    pairs = np.unique(np.stack([a[on], b[on]]), axis=1) if on.any() else np.zeros((2, 0))
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def _labels(got: Any, call: str, shape: tuple[int, ...]) -> np.ndarray:
    """The learner's answer as an int64 label image of `shape`, or a sentence saying why it is not one."""
    if isinstance(got, tuple) and len(got) == 2 and np.ndim(got[1]) == 0:
        fail(f"{call} returned a pair ({type(got[0]).__name__}, {type(got[1]).__name__}): scipy.ndimage.label returns "
             f"(labels, number of cells); return the labels only (labels, n = ndimage.label(...); return labels).")
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    try:
        arr = np.asarray(got)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        fail(f"{call} returned a {type(got).__name__}; expected an array of integer labels (H, W).")
    if arr.shape != shape:
        fail(f"{call} returned shape {arr.shape}; expected {shape}: one label per pixel.")
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        fail(f"{call} returned fractional labels; labels are whole numbers, 0 for membrane and 1..K for the cells.")
    return arr.astype(np.int64)


def _cell_hint(got: np.ndarray, mask: np.ndarray) -> str | None:
    """What the usual mistakes look like on this mask, or None."""
    from scipy import ndimage

    cells = mask > 0
    eight = ndimage.label(cells, structure=np.ones((3, 3), int))[0]
    membrane_parts = ndimage.label(~cells)[0]
    if _same_cells(got, eight) and not _same_cells(eight, ndimage.label(cells)[0]):
        return ("it joins cells that touch only at a corner, across a diagonal membrane: that is 8-connectivity "
                "(the default of skimage.measure.label). The challenge counts cells with 4-connectivity: "
                "scipy.ndimage.label's default structure, or skimage.measure.label(mask, connectivity=1)")
    if cells.any() and (~cells).any() and (_same_cells(got, membrane_parts) or np.array_equal(got != 0, ~cells)):
        return "it labels the membrane pixels (0); the cells are the 255 pixels: label mask > 0 (or mask == 255)"
    if np.array_equal(got == 0, ~cells) and len(np.unique(got[cells])) == 1 and ndimage.label(cells)[1] > 1:
        return ("every cell pixel carries the same label; each connected group of cell pixels needs its own "
                "number: scipy.ndimage.label(mask > 0)")
    if (~cells).any() and not np.any(got[~cells] == 0):
        return "the membrane pixels must be 0; the cells are numbered 1..K"
    return None


def check_cells(cells_of: Callable[..., Any]) -> None:
    """Exercise 2: `cells_of(mask)` for a uint8 (H, W) mask with 255 = cell, 0 = membrane ->
    int labels (H, W): 0 on the membrane, 1..K one number per cell, a cell being a 4-connected group of
    cell pixels (neighbours up, down, left and right, never across a corner). Lesson 13."""
    from ..data.isbi2012 import cell_labels

    for mask, what in _cell_cases():
        call = f"cells_of(mask) on {what}"
        got = _labels(call_answer(cells_of, "cells_of", mask.copy()), call, mask.shape)
        want = cell_labels(mask)
        if _same_cells(got, want):
            k = int(want.max())
            if sorted(np.unique(got[got != 0]).tolist()) != list(range(1, k + 1)):
                fail(f"{call}: the cells are right, but numbered {sorted(np.unique(got[got != 0]).tolist())}; "
                     f"number them 1..{k}, so that labels.max() is the number of cells.")
            continue
        hint = _cell_hint(got, mask)
        n_got = len(np.unique(got[got != 0]))
        if hint:
            fail(f"{call}: {hint}.")
        fail(f"{call} found {n_got} cells; expected {int(want.max())}, the 4-connected groups of 255 pixels "
             f"(membrane 0). Mask:\n{_draw(mask)}")
    passed("cells are the 4-connected groups of cell pixels, numbered 1..K with the membrane 0; a diagonal "
           "membrane keeps its two sides apart. Matches course_utils.data.cell_labels.")


def _draw(mask: np.ndarray) -> str:
    return "\n".join("  " + "".join("#" if v else "." for v in row) for row in mask)
