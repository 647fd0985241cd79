"""Checks for lesson 07's exercises: per-image Dice of a batch (with the empty-mask rule) and Dice
pooled over a batch.

Each check runs the learner's function on small masks built to tell the usual mistakes apart
(an empty image, a big and a small car), compares it with course_utils.metrics and says in words
what differs.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ._common import call_answer, fail, passed

__all__ = ["check_per_image_dice", "check_pooled_dice"]


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
