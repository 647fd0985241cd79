"""Overlap metrics for binary masks: Dice (the Carvana metric), IoU and pixel accuracy.

Lesson 07 derives them; the training loop uses `dice_score` from lesson 06 on.
Every function takes `pred` and `target` of the same shape (N, ...) holding {0, 1}
(bool, int or float: threshold logits first, e.g. ``logits > 0``) and a reduction:

- "mean":   score each image, then average: the Kaggle Carvana metric. An image where
            prediction and target are both empty scores 1.
- "none":   the per-image scores, shape (N,).
- "global": pool every pixel of the batch into one score (what many training scripts print;
            it lets big objects outweigh small ones).
"""
from __future__ import annotations

import torch

REDUCTIONS = ("mean", "none", "global")


def _flat_binary(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P) boolean views of pred and target, after checking they are comparable masks."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}.")
    if pred.ndim < 2:
        raise ValueError(f"expected a batch (N, ...) of masks, got shape {tuple(pred.shape)}; use x.unsqueeze(0).")
    for name, t in (("pred", pred), ("target", target)):
        if t.dtype != torch.bool and not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{name} must hold only 0 and 1; threshold it first (probabilities > 0.5, or logits > 0).")
    return pred.reshape(pred.shape[0], -1).bool(), target.reshape(target.shape[0], -1).bool()


def overlap_counts(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image true positives, false positives, false negatives, true negatives, each (N,)."""
    p, t = _flat_binary(pred, target)
    tp = (p & t).sum(1)
    fp = (p & ~t).sum(1)
    fn = (~p & t).sum(1)
    tn = p.shape[1] - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _reduce(num: torch.Tensor, den: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {REDUCTIONS}.")
    num, den = num.double(), den.double()
    if reduction == "global":
        n, d = num.sum(), den.sum()
        return torch.where(d > 0, n / d.clamp(min=1), torch.ones_like(d))
    per_image = torch.where(den > 0, num / den.clamp(min=1), torch.ones_like(den))  # empty vs empty = 1
    return per_image if reduction == "none" else per_image.mean()


def dice_score(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Dice = 2|P & T| / (|P| + |T|). reduction="mean" is the Kaggle Carvana score."""
    c = overlap_counts(pred, target)
    return _reduce(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"], reduction)


def iou_score(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Intersection over union (Jaccard) = |P & T| / |P | T|; IoU = Dice / (2 - Dice) per image."""
    c = overlap_counts(pred, target)
    return _reduce(c["tp"], c["tp"] + c["fp"] + c["fn"], reduction)


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Fraction of pixels labelled right. High even for useless masks when the object is small."""
    c = overlap_counts(pred, target)
    return _reduce(c["tp"] + c["tn"], c["tp"] + c["tn"] + c["fp"] + c["fn"], reduction)
