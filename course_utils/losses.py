"""Losses: binary segmentation (lesson 06), then classes and depth for NYU Depth V2 (lesson 10).

The network outputs logits (N, 1, H, W); the targets are masks of the same shape with values
{0, 1}. Why two terms:

- BCE (binary cross-entropy on logits) gives every pixel its own gradient, so training starts
  fast and stays stable even when the prediction is still far from the mask.
- Soft Dice is the competition's metric made differentiable (probabilities instead of 0/1
  pixels). It scores each image by overlap, so a small car on a big background counts as much
  as a big one: it is not swamped by the easy background pixels the way a per-pixel loss is.

Their sum trains quickly *and* optimises what we are graded on.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def soft_dice(probs: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Per-image soft Dice (N,) of probabilities `probs` against a {0,1} `target`, both (N, ...).

    Dice = (2 |P.T| + smooth) / (|P| + |T| + smooth), sums over all pixels of one image.
    `smooth` keeps an empty prediction of an empty mask at Dice 1 instead of 0/0. Lesson 06.
    """
    probs, target = probs.flatten(1), target.flatten(1).to(probs.dtype)  # (N, pixels)
    intersection = (probs * target).sum(1)
    total = probs.sum(1) + target.sum(1)
    return (2 * intersection + smooth) / (total + smooth)


class DiceLoss(nn.Module):
    """1 - soft Dice, computed per image on sigmoid probabilities, then averaged over the batch.

    Args:
        smooth: added to numerator and denominator (default 1.0), so empty-vs-empty scores 1.

    Shapes: logits and target (N, 1, H, W) (any (N, ...) works); returns a scalar.

    >>> loss = DiceLoss()
    >>> mask = torch.zeros(2, 1, 8, 8); mask[:, :, 2:6, 2:6] = 1
    >>> round(loss(mask * 40 - 20, mask).item(), 4)  # confident and right: loss near 0
    0.0

    Lesson 06.
    """

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return 1 - soft_dice(torch.sigmoid(logits), target, self.smooth).mean()


class BCEDiceLoss(nn.Module):
    """bce_weight * BCEWithLogits + (1 - bce_weight) * DiceLoss, the course's training loss.

    Args:
        bce_weight: share of the BCE term, in [0, 1] (default 0.5: both count equally).
        smooth: the Dice smoothing term (default 1.0).

    BCE gives well-scaled per-pixel gradients from the first step; Dice matches the
    per-image metric and does not care how much of the image is background. Lesson 06.
    """

    def __init__(self, bce_weight: float = 0.5, smooth: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= bce_weight <= 1.0:
            raise ValueError(f"bce_weight must be between 0 and 1, got {bce_weight}.")
        self.bce_weight = bce_weight
        self.dice = DiceLoss(smooth)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        target = target.to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        return self.bce_weight * bce + (1 - self.bce_weight) * self.dice(logits, target)


# ---------------------------------------------------------------------------- lessons 10 and 11: classes and depth


def class_weights(counts: Tensor, method: str = "median") -> Tensor:
    """Cross-entropy class weights from per-class pixel counts (C,), so rare classes count more.

    "median": median frequency balancing (Eigen & Fergus 2015): median(freq) / freq_c, so a
    class of median frequency weighs 1. "inverse_sqrt": 1 / sqrt(freq_c), milder; rescaled
    to average 1 over the classes. A class never seen gets weight 0 (it has no pixels to weigh). Lesson 10.
    """
    counts = torch.as_tensor(counts, dtype=torch.float64)
    seen = counts > 0
    if not bool(seen.any()):
        raise ValueError("every class count is 0: count the labels of the training set first.")
    freq = counts / counts.sum()
    weights = torch.zeros_like(freq)
    if method == "median":
        weights[seen] = freq[seen].median() / freq[seen]
    elif method == "inverse_sqrt":
        weights[seen] = 1 / freq[seen].sqrt()
        weights[seen] /= weights[seen].mean()
    else:
        raise ValueError(f"method={method!r} is not 'median' or 'inverse_sqrt'.")
    return weights.float()


def masked_l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean |pred - target| over valid pixels (target > 0: NYUv2 marks missing depth with 0). Lesson 11."""
    valid = target > 0
    if not bool(valid.any()):
        return pred.sum() * 0  # no valid pixel in the batch: no signal, but keep the graph
    return (pred[valid] - target[valid]).abs().mean()


def silog_loss(pred: Tensor, target: Tensor, variance_focus: float = 0.85) -> Tensor:
    """Scale-invariant log loss (Eigen et al. 2014) over valid pixels (target > 0).

    With g = log pred - log target: mean(g^2) - variance_focus * mean(g)^2. variance_focus = 1
    ignores a global scale error entirely; 0 is plain squared log error; 0.85 (common since
    BTS, 2019) mostly ignores it. Returns the square root, which is on the scale of log depth. Lesson 11.
    """
    valid = target > 0
    if not bool(valid.any()):
        return pred.sum() * 0
    g = torch.log(pred[valid].clamp(min=1e-3)) - torch.log(target[valid])
    return (g.pow(2).mean() - variance_focus * g.mean().pow(2)).clamp(min=0).sqrt()


class SegDepthLoss(nn.Module):
    """seg_weight * cross-entropy (ignoring unlabelled pixels) + depth_weight * depth loss.

    The model gives {"seg": logits (N, C, H, W), "depth": metres (N, 1, H, W)}; the target is
    {"seg": labels (N, H, W) int64, "depth": metres (N, 1, H, W), 0 = missing}. Either key may be
    missing from both (a segmentation-only or depth-only model). depth_loss: "l1" (metres) or
    "silog". The default weights: cross-entropy starts near log(C) (2.6 for 13 classes) and L1
    near 1 m, so equal weights give both tasks a similar pull at the start. Lesson 11.
    """

    def __init__(self, ignore_index: int = 255, class_weights: Tensor | None = None, depth_loss: str = "l1",
                 seg_weight: float = 1.0, depth_weight: float = 1.0) -> None:
        super().__init__()
        if depth_loss not in ("l1", "silog"):
            raise ValueError(f"depth_loss={depth_loss!r} is not 'l1' or 'silog'.")
        self.class_weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.ignore_index = ignore_index
        self.depth_fn = masked_l1 if depth_loss == "l1" else silog_loss
        self.seg_weight, self.depth_weight = seg_weight, depth_weight

    def parts(self, out: dict[str, Tensor], target: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each task's loss, unweighted: {"seg": ..., "depth": ...} for the keys present."""
        losses = {}
        if "seg" in out:
            logits = out["seg"].float()
            weight = None if self.class_weights is None else self.class_weights.to(logits.device)  # CPU -> GPU
            losses["seg"] = F.cross_entropy(logits, target["seg"], weight=weight, ignore_index=self.ignore_index)
        if "depth" in out:
            losses["depth"] = self.depth_fn(out["depth"].float(), target["depth"].to(out["depth"].device).float())
        return losses

    def forward(self, out: dict[str, Tensor] | Tensor, target: dict[str, Tensor] | Tensor) -> Tensor:
        if not isinstance(out, dict):  # a plain segmentation UNet: logits
            out = {"seg": out}
        if not isinstance(target, dict):  # labels alone
            target = {"seg": target}
        weights = {"seg": self.seg_weight, "depth": self.depth_weight}
        return sum(weights[k] * v for k, v in self.parts(out, target).items())
