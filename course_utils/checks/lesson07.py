"""Checks for lesson 07's exercises: per-image Dice of a batch (with the empty-mask rule), Dice
pooled over a batch, and a mask encoded in Kaggle's run-length format.

Each check runs the learner's function on small masks built to tell the usual mistakes apart
(an empty image, a big and a small car, runs touching the first and the last pixel), compares
it with course_utils.metrics / course_utils.rle and says in words what differs.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ._common import call_answer, fail, passed

__all__ = ["check_per_image_dice", "check_pooled_dice", "check_rle_encode"]


# ------------------------------------------------------------- exercises 1 and 2: Dice of a batch

def _box(h: int, w: int, top: int, left: int, bottom: int, right: int):
    import torch

    m = torch.zeros(1, h, w, dtype=torch.bool)
    m[:, top:bottom, left:right] = True
    return m


def _dice_batch():
    """(pred, target, what each image is): bool (4, 1, 8, 12) masks that tell the mistakes apart.

    0: a big car, found with a few pixels too many; 1: a small car, half of it missed;
    2: no car and nothing predicted (Dice 1 by Kaggle's rule); 3: a car shifted by 2 columns.
    """
    import torch

    h, w = 8, 12
    target = torch.stack([_box(h, w, 1, 1, 7, 11), _box(h, w, 3, 3, 5, 7),
                          _box(h, w, 0, 0, 0, 0), _box(h, w, 2, 2, 6, 8)])
    pred = torch.stack([_box(h, w, 1, 1, 7, 12), _box(h, w, 3, 3, 5, 5),
                        _box(h, w, 0, 0, 0, 0), _box(h, w, 2, 4, 6, 10)])
    what = ["a big car found with one column too many", "a small car, half of it missed",
            "an image with no car and nothing predicted", "a car shifted by 2 columns"]
    return pred, target, what


def _counts(pred, target):
    p, t = pred.flatten(1), target.flatten(1)
    return (p & t).sum(1).double(), p.sum(1).double(), t.sum(1).double()


def _as_scores(got: Any, call: str):
    """The learner's answer as a float64 tensor, or a sentence saying why it is not one."""
    import torch

    if isinstance(got, (int, float)) and not isinstance(got, bool):
        return torch.tensor(float(got), dtype=torch.float64)
    try:
        return torch.as_tensor(np.asarray(got.detach().cpu() if hasattr(got, "detach") else got, dtype=np.float64))
    except (TypeError, ValueError):
        fail(f"{call} returned a {type(got).__name__}; expected numbers (a tensor).")


def check_per_image_dice(per_image_dice: Callable[..., Any]) -> None:
    """Exercise 1: `per_image_dice(pred, target)` for bool masks (N, 1, H, W) ->
    float tensor (N,), 2|P & T| / (|P| + |T|) per image, and 1 where both masks are empty. Lesson 07."""
    import torch

    from ..metrics import dice_score, iou_score

    pred, target, what = _dice_batch()
    call = f"per_image_dice(pred, target) on bool masks of shape {tuple(pred.shape)}"
    got = _as_scores(call_answer(per_image_dice, "per_image_dice", pred.clone(), target.clone()), call)
    want = dice_score(pred, target, reduction="none")
    n = len(want)
    if got.ndim == 0 or got.numel() == 1:
        pooled, mean = dice_score(pred, target, reduction="global"), want.mean()
        hint = ("that is the mean of the per-image scores" if torch.isclose(got.reshape(()), mean) else
                "that is the Dice of all pixels pooled" if torch.isclose(got.reshape(()), pooled) else
                "one number for the whole batch")
        fail(f"{call} returned one number ({got.reshape(()).item():.4f}): {hint}. Return one score per image, "
             f"shape ({n},): sum over dims 1, 2, 3 (or flatten(1) and sum(1)), not over everything.")
    if tuple(got.shape) == (n, 1):
        fail(f"{call} returned shape {tuple(got.shape)}; expected ({n},): the channel dimension is left over. "
             f"Sum over dims (1, 2, 3), or flatten(1) and sum(1).")
    if tuple(got.shape) != (n,):
        fail(f"{call} returned shape {tuple(got.shape)}; expected ({n},), one score per image. Sum over "
             f"the pixels of each image (flatten(1), then .sum(1)).")
    for k in range(n):
        if not torch.isclose(got[k], want[k], atol=1e-6):
            break
    else:
        passed("Dice per image, 1 for an image where prediction and mask are both empty; "
               "matches dice_score(pred, target, reduction='none').")
        return
    tp, p, t = _counts(pred, target)
    shown = f"image {k} ({what[k]}) scored {got[k].item():.4f}; expected {want[k].item():.4f}"
    if k == 2:
        why = ("0/0 is not a number" if torch.isnan(got[k]) else f"you gave it {got[k].item():g}")
        fail(f"{call}: {shown}. Both masks are empty there, so |P| + |T| = 0 and {why}. Kaggle's rule: "
             f"nothing to find and nothing claimed is perfect, Dice 1 (torch.where(denominator > 0, ..., 1.0)).")
    iou = iou_score(pred, target, reduction="none")
    hints = [(iou, "that is IoU, |P & T| / |P | T|. Dice counts the overlap twice: 2|P & T| / (|P| + |T|)"),
             (tp / (p + t), "the numerator is 2 * |P & T|, twice the overlap (otherwise a perfect mask "
                            "scores 0.5)"),
             (tp / t, "that is recall, |P & T| / |T|: it ignores false alarms. Dice divides by |P| + |T|"),
             ((2 * tp + 1) / (p + t + 1), "no +1 (smoothing) here: the metric is exact; handle the empty case "
                                    "with torch.where instead")]
    for value, hint in hints:
        if torch.isclose(got[k], value[k].to(got.dtype), atol=1e-6):
            fail(f"{call}: {shown}: {hint}.")
    fail(f"{call}: {shown}. Per image: |P & T| = (pred & target).sum(), |P| = pred.sum(), |T| = target.sum(), "
         f"Dice = 2|P & T| / (|P| + |T|).")


def _pooled_reference(pred, target) -> float:
    from ..metrics import dice_score

    return float(dice_score(pred, target, reduction="global"))


def check_pooled_dice(pooled_dice: Callable[..., Any]) -> None:
    """Exercise 2: `pooled_dice(pred, target)` for bool masks (N, 1, H, W) -> one number,
    the Dice of all pixels of the batch counted together; 1 if both are empty everywhere. Lesson 07."""
    import torch

    from ..metrics import dice_score

    pred, target, _ = _dice_batch()
    cases = [("the 4-image batch (a big and a small car, an empty image, a shifted car)", pred, target),
             ("a batch of 2 images with no car and nothing predicted", torch.zeros(2, 1, 4, 4, dtype=torch.bool),
              torch.zeros(2, 1, 4, 4, dtype=torch.bool))]
    for what, p, t in cases:
        call = f"pooled_dice(pred, target) on {what}"
        got = _as_scores(call_answer(pooled_dice, "pooled_dice", p.clone(), t.clone()), call)
        if got.numel() != 1:
            fail(f"{call} returned shape {tuple(got.shape)}; expected one number for the whole batch. Sum the "
                 f"counts over every image first (pred.sum(), not pred.sum(1)), then divide once.")
        got, want = got.reshape(()).item(), _pooled_reference(p, t)
        if math.isclose(got, want, abs_tol=1e-6):
            continue
        if math.isnan(got) or (not t.any() and not p.any()):
            fail(f"{call} returned {got:g}; expected {want:g}. Nothing in any mask and nothing predicted: "
                 f"0/0, scored 1 by the same rule as a single empty image.")
        per_image_mean = dice_score(p, t, reduction="mean").item()
        if math.isclose(got, per_image_mean, abs_tol=1e-6):
            fail(f"{call} returned {got:.4f}: the mean of the per-image Dice scores (Kaggle's metric). Pooled "
                 f"means adding up |P & T|, |P| and |T| over all images first, then one division: {want:.4f}.")
        tp, sp, st = (float(x.sum()) for x in _counts(p, t))
        if math.isclose(got, tp / (sp + st), abs_tol=1e-6):
            fail(f"{call} returned {got:.4f}; expected {want:.4f}: the numerator is 2 * |P & T|.")
        if math.isclose(got, tp / (sp + st - tp), abs_tol=1e-6):
            fail(f"{call} returned {got:.4f}; expected {want:.4f}: that is the pooled IoU. Dice is "
                 f"2|P & T| / (|P| + |T|).")
        fail(f"{call} returned {got:.4f}; expected {want:.4f} = 2 * {tp:g} / ({sp:g} + {st:g}): sum the overlap "
             f"and both mask sizes over the whole batch, then divide.")
    passed("all pixels of the batch counted together, then one division; matches "
           "dice_score(pred, target, reduction='global').")


# ------------------------------------------------------------- exercise 3: Kaggle RLE

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
    """Exercise 3: `rle_encode_by_hand(mask)` for a uint8 (H, W) {0, 1} mask -> the Kaggle
    RLE string: 'start length ...', pixels numbered from 1 row by row, '' for an empty mask. Lesson 07."""
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
