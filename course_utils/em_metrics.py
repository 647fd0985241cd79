"""The ISBI 2012 challenge's metrics: pixel error and Rand error, per slice and held out (lesson 13).

Masks follow the labels' convention: cell = True / 1 / 255, membrane = False / 0. Cells are the
connected components of the cell pixels (4-connectivity, as the organisers' Fiji code labels them).

- Pixel error = 1 - pixel accuracy. It counts pixels, so a one-pixel gap in a membrane, which
  merges two cells, costs one pixel: nearly nothing.
- Rand error = 1 - the foreground-restricted Rand F-score. Take every pair of pixels inside true
  cells; a pair is "together" in the truth when both lie in one cell, and in the prediction when
  both lie in one predicted cell. Precision = pairs together in both / pairs together in the
  prediction (merges lower it); recall = pairs together in both / pairs together in the truth
  (splits, and membranes drawn too thick, lower it). The same one-pixel gap costs every pair
  across the two merged cells. See `rand_scores` for what the prediction's membrane pixels count as.
- Warping error (not computed here): the truth is first deformed towards the prediction by
  flipping only "simple" pixels, those whose flip changes no topology (no cell split, merged,
  created or removed); the pixels still wrong are the errors that do change topology. It forgives
  where exactly a membrane runs and punishes only splits, merges and holes: U-Net ranked first on it.

The organisers scored each 2-D slice on its own (pairs never span slices) and, for a stack,
added the pair counts of all slices before taking the F-score, at the best of the thresholds
0.0, 0.1, ..., 1.0 applied to the submitted probabilities. `rand_error` on an (N, H, W) stack pools
the same way; `em_scores_per_slice` + `mean_scores`, and `EMScores` during training, average the
per-slice errors at one fixed threshold, so they are a little stricter than the leaderboard.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from skimage.metrics import adapted_rand_error

from .metrics import dice_score

Array = np.ndarray | torch.Tensor

# the thresholds the leaderboard tried on each submission's probabilities (0 and 1 left out: all
# membrane or all cell)
LEADERBOARD_THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))

# ---------------------------------------------------------------------------- masks and cells


def _numpy(x: Array) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _squeeze(x: np.ndarray, name: str) -> np.ndarray:
    """(H, W) or a stack (N, H, W); (N, 1, H, W) and leading axes of size 1 are dropped."""
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    while x.ndim > 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim not in (2, 3):
        raise ValueError(f"{name} must be one slice (H, W) or a stack (N, H, W), got shape {x.shape}.")
    return x


def _mask(x: Array, name: str) -> np.ndarray:
    """A boolean cell mask (H, W) or (N, H, W) from bool, 0/1 or 0/255 values (numpy or torch)."""
    return _values(_squeeze(_numpy(x), name), name)


def _values(x: np.ndarray, name: str) -> np.ndarray:
    """x as booleans (cell = True), after checking it holds only 0/1 or 0/255; any shape."""
    if x.dtype != bool:
        if not ((x == 0) | (x == 1) | (x == 255)).all():
            raise ValueError(f"{name} must be a mask (cell = True, 1 or 255; membrane = 0), got values "
                             f"{np.unique(x)[:6].tolist()}...; threshold probabilities first (em_scores does).")
        x = x != 0
    return x


def _pair(pred: Array, target: Array) -> tuple[np.ndarray, np.ndarray]:
    p, t = _mask(pred, "pred"), _mask(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {p.shape} and {t.shape}.")
    return p, t


def _cells(mask: np.ndarray) -> np.ndarray:
    """Labels 1..K of the cells of one (H, W) mask, 0 = membrane: the data module's definition."""
    from .data.isbi2012 import cell_labels  # imported here: the data package is slow to import

    return cell_labels(mask)


def _cells_stack(mask: np.ndarray) -> np.ndarray:
    """_cells of one slice, or of each slice of a stack with labels unique across the stack."""
    if mask.ndim == 2:
        return _cells(mask).astype(np.int64)
    labels, offset = [], 0
    for m in mask:
        lab = _cells(m).astype(np.int64)
        labels.append(np.where(lab > 0, lab + offset, 0))
        offset += int(lab.max())
    return np.stack(labels)


# ---------------------------------------------------------------------------- pixel and Rand error


def pixel_error(pred: Array, target: Array) -> float:
    """1 - pixel accuracy of a predicted cell mask against the true one ((H, W), or a stack).

    >>> pixel_error(np.array([[255, 0]]), np.array([[255, 255]]))
    0.5

    Lesson 13.
    """
    p, t = _pair(pred, target)
    return float((p != t).mean())


def _pairs(sizes: np.ndarray) -> int:
    """Ordered pairs of distinct pixels that share a segment, summed over segments of these sizes."""
    sizes = sizes.astype(np.int64)
    return int((sizes * (sizes - 1)).sum())


def rand_scores(pred: Array, target: Array) -> dict[str, float | int]:
    """Foreground-restricted Rand scores of a predicted cell mask against the true one.

    Returns rand_error (1 - F-score of precision and recall, see the module docstring), precision,
    recall, n_true_cells, n_pred_cells. Both inputs are masks; cells are labelled here. A stack
    (N, H, W) is scored the organisers' way: slice by slice, pair counts added over slices.

    Computed with skimage.metrics.adapted_rand_error, which ignores the pixels whose TRUE label is 0
    (the true membranes). Predicted membrane pixels that lie on a true cell each count as a segment
    of their own: a membrane drawn too thick loses the pairs of those pixels (recall) but never
    joins the cells on its two sides. This is what the organisers' Fiji code does (it prunes the
    prediction's zero component and counts its pixels as singletons). skimage's default instead
    makes all predicted membrane one segment that merges every cell it touches: on the 30 real
    slices, the truth with its membranes dilated by 1 px (4-neighbours) scores 0.065-0.183 (mean
    0.109) that way against 0.035-0.057 (mean 0.043) here; the truth itself scores 0 both ways.
    skimage counts pairs of distinct pixels; Fiji's N^2 form also pairs each pixel with itself,
    which moved these errors by about 1e-5. skimage (through 0.26 at least, issue #6485) returns
    precision and recall swapped against its own docstring; they are returned here as defined above.
    Degenerate cases follow Fiji: no wrongly joined pair means precision 1, no wrongly parted pair
    means recall 1.

    >>> truth = np.array([[255, 255, 0, 255, 255]] * 4)    # two cells of 8 pixels
    >>> rand_scores(np.full((4, 5), 255), truth)["rand_error"]   # predicted as one: 4/11
    0.36363636363636365

    Lesson 13.
    """
    p, t = _pair(pred, target)
    true_labels, pred_labels = _cells_stack(t), _cells_stack(p)
    on_cells = true_labels > 0
    n_true, n_pred = int(true_labels.max()), int(pred_labels.max())  # labels run 1..n
    single = on_cells & (pred_labels == 0)  # predicted membrane inside a true cell: one segment per pixel
    pred_labels[single] = n_pred + 1 + np.arange(single.sum())
    true_pairs = _pairs(np.bincount(true_labels[on_cells]))
    pred_pairs = _pairs(np.bincount(pred_labels[on_cells]))
    if true_pairs and pred_pairs:
        error, recall, precision = adapted_rand_error(true_labels, pred_labels, ignore_labels=(0,))  # see #6485
        error, precision, recall = float(error), float(precision), float(recall)
    else:  # nothing joined in the prediction (precision 1) or in the truth (recall 1); no pair shared
        precision, recall = float(pred_pairs == 0), float(true_pairs == 0)
        error = 0.0 if precision and recall else 1.0
    return {"rand_error": error, "precision": precision, "recall": recall,
            "n_true_cells": n_true, "n_pred_cells": n_pred}


def rand_error(pred: Array, target: Array) -> float:
    """1 - the foreground-restricted Rand F-score of a predicted cell mask; see rand_scores. Lesson 13."""
    return rand_scores(pred, target)["rand_error"]


# ---------------------------------------------------------------------------- slices and stacks


def _cell_prediction(prob_or_mask: Array, threshold: float) -> np.ndarray:
    """A cell mask from probabilities (cell where prob > threshold) or from a mask as it is."""
    x = _numpy(prob_or_mask)
    if x.dtype.kind != "f":
        return _mask(x, "prediction")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"probabilities must lie in [0, 1], got {x.min():.3g}..{x.max():.3g}; "
                         f"pass torch.sigmoid(logits), or a mask of 0/255.")
    return _squeeze(x, "prediction") > threshold


def em_scores(prob_or_mask: Array, target: Array, threshold: float = 0.5) -> dict[str, float]:
    """Pixel and Rand error of one slice: probabilities in [0, 1] (cell where prob > threshold) or
    a mask, against the true mask. Lesson 13."""
    pred = _cell_prediction(prob_or_mask, threshold)
    return {"pixel_error": pixel_error(pred, target), "rand_error": rand_error(pred, target)}


def _stack(x: Array, name: str) -> np.ndarray:
    x = _numpy(x)
    x = x[:, 0] if x.ndim == 4 and x.shape[1] == 1 else x
    if x.ndim != 3:
        raise ValueError(f"{name} must be a stack (N, H, W) or (N, 1, H, W), got shape {x.shape}.")
    return x


def em_scores_per_slice(probs: Array, targets: Array, threshold: float = 0.5) -> list[dict[str, float]]:
    """em_scores of each slice of a stack, as records {"slice", "pixel_error", "rand_error"}. Lesson 13."""
    probs, targets = _stack(probs, "probs"), _stack(targets, "targets")
    if len(probs) != len(targets):
        raise ValueError(f"{len(probs)} predicted slices but {len(targets)} true ones; give one per slice.")
    return [{"slice": k, **em_scores(p, t, threshold)} for k, (p, t) in enumerate(zip(probs, targets))]


def mean_scores(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The mean of every score in per-slice records (all keys but "slice"), and n_slices. Lesson 13."""
    if not records:
        raise ValueError("no records to average: score at least one slice.")
    keys = [k for k in records[0] if k != "slice"]
    return {**{k: math.fsum(r[k] for r in records) / len(records) for k in keys}, "n_slices": len(records)}


def threshold_sweep_em(probs: Array, targets: Array, thresholds: Sequence[float] | None = None) -> list[dict]:
    """Mean per-slice pixel and Rand error at each threshold (default 0.1, ..., 0.9): records
    {"threshold", "pixel_error", "rand_error"}. Choose the threshold on held-out slices. Lesson 13."""
    thresholds = [round(0.1 * k, 2) for k in range(1, 10)] if thresholds is None else list(thresholds)
    if not thresholds or not all(0 <= t <= 1 for t in thresholds):
        raise ValueError(f"thresholds must be probabilities between 0 and 1, got {thresholds}.")
    out = []
    for t in thresholds:
        mean = mean_scores(em_scores_per_slice(probs, targets, t))
        out.append({"threshold": float(t), "pixel_error": mean["pixel_error"], "rand_error": mean["rand_error"]})
    return out


# ---------------------------------------------------------------------------- held-out scores while training


class EMScores:
    """Held-out loss, pixel error, Rand error and Dice of the cells, slice by slice, summed so a
    process group can add its parts (`sums`, `load_sums`) before `compute` (the held-out interface
    of course_utils.tasks, as segdepth.HeldOutScores). Each item the loader gives is one "slice": give whole
    512 x 512 slices for the challenge's numbers (a crop cuts cells at its border).

    compute() gives the errors at `threshold` (val_pixel_error, val_rand_error) and, as the
    leaderboard scored, each at its best of `thresholds` (val_pixel_error_best,
    val_rand_error_best, at val_rand_threshold): a threshold chosen on the held-out slices, so
    those two are a little optimistic, as the leaderboard's were.

    >>> scores = EMScores()
    >>> scores.update(logits, {"mask": masks, "weight": w}, loss=0.3)   # (B, 1, H, W) each
    >>> scores.compute()["val_rand_error"]

    Lesson 13.
    """

    def __init__(self, threshold: float = 0.5, thresholds: Sequence[float] = LEADERBOARD_THRESHOLDS) -> None:
        self.threshold, self.thresholds = threshold, [float(t) for t in thresholds]
        self.loss_sum = self.pixel_sum = self.rand_sum = self.dice_sum = 0.0
        self.n = 0
        self.pixel_at = [0.0] * len(self.thresholds)  # per-threshold sums over slices
        self.rand_at = [0.0] * len(self.thresholds)

    def update(self, logits: torch.Tensor, target: torch.Tensor | dict[str, torch.Tensor], loss: float) -> None:
        """Add a batch: logits (B, 1, H, W) (cell where sigmoid > threshold), target (B, 1, H, W) in
        {0, 1} or {"mask": ..., "weight": ...}, and the batch's mean loss."""
        mask = target["mask"] if isinstance(target, dict) else target
        probs, mask = torch.sigmoid(logits.detach().float()).cpu(), mask.detach().cpu()
        if probs.shape != mask.shape:
            raise ValueError(f"logits {tuple(probs.shape)} and target {tuple(mask.shape)} differ; both must be "
                             f"(B, 1, H, W). A 'valid' U-Net predicts the centre of its input: "
                             f"crop the target with center_crop.")
        pred, truth = probs > self.threshold, mask > 0.5
        for p, t in zip(_stack(probs, "logits"), _stack(truth, "target")):
            s = em_scores(p, t, self.threshold)
            self.pixel_sum, self.rand_sum = self.pixel_sum + s["pixel_error"], self.rand_sum + s["rand_error"]
            for k, th in enumerate(self.thresholds):
                s = em_scores(p, t, th)
                self.pixel_at[k] += s["pixel_error"]
                self.rand_at[k] += s["rand_error"]
        self.dice_sum += dice_score(pred, truth, reduction="none").sum().item()
        self.loss_sum, self.n = self.loss_sum + loss * len(probs), self.n + len(probs)

    def sums(self) -> dict[str, torch.Tensor]:
        """The number of slices as int64; the sums of errors (per slice, and per threshold) as float64."""
        f64 = dict(dtype=torch.float64)
        return {"n": torch.tensor([self.n], dtype=torch.int64),
                "scores": torch.tensor([self.loss_sum, self.pixel_sum, self.rand_sum, self.dice_sum], **f64),
                "pixel_at": torch.tensor(self.pixel_at, **f64), "rand_at": torch.tensor(self.rand_at, **f64)}

    def load_sums(self, sums: dict[str, torch.Tensor]) -> None:
        self.n = int(sums["n"][0])
        self.loss_sum, self.pixel_sum, self.rand_sum, self.dice_sum = sums["scores"].tolist()
        self.pixel_at, self.rand_at = sums["pixel_at"].tolist(), sums["rand_at"].tolist()

    def compute(self) -> dict[str, float]:
        n = max(self.n, 1)
        scores = {"val_loss": self.loss_sum / n, "val_pixel_error": self.pixel_sum / n,
                  "val_rand_error": self.rand_sum / n, "val_dice": self.dice_sum / n}
        if self.thresholds:
            best = min(range(len(self.thresholds)), key=lambda k: (self.rand_at[k], abs(self.thresholds[k] - 0.5)))
            scores |= {"val_pixel_error_best": min(self.pixel_at) / n, "val_rand_error_best": self.rand_at[best] / n,
                       "val_rand_threshold": self.thresholds[best]}
        return scores


# ---------------------------------------------------------------------------- baselines


def _grey_threshold(images: np.ndarray, cells: np.ndarray) -> int:
    """The grey value t (-1..255) for which "cell where grey > t" has the fewest wrong pixels."""
    cell_hist = np.bincount(images[cells], minlength=256)
    membrane_hist = np.bincount(images[~cells], minlength=256)
    # wrong(t) = membrane pixels brighter than t + cell pixels at most t, for t = -1, 0, ..., 255
    wrong = (membrane_hist.sum() - np.concatenate([[0], np.cumsum(membrane_hist)])
             + np.concatenate([[0], np.cumsum(cell_hist)]))
    return int(np.argmin(wrong)) - 1


def _grey(images: Array, name: str) -> np.ndarray:
    images = _stack(images, name)
    if images.dtype != np.uint8:
        raise ValueError(f"{name} must be 8-bit greyscale slices (uint8), as the ISBI stacks are; got {images.dtype}.")
    return images


def baseline_scores(train_images: Array, train_labels: Array, images: Array, labels: Array) -> dict[str, dict]:
    """Trivial predictions scored on held-out slices (mean per-slice pixel and Rand error).

    "all cell": 255 everywhere (pixel error = the share of membrane; one giant cell).
    "grey threshold": cell where the grey value > t, t chosen on the training slices to give the
    fewest wrong pixels (cells are brighter than membranes), then applied to the held-out slices.
    Each entry: pixel_error, rand_error, threshold (None for "all cell"), n_slices. Lesson 13.
    """
    train_images, images = _grey(train_images, "train_images"), _grey(images, "images")
    train_cells = _values(_stack(train_labels, "train_labels"), "train_labels")
    cells = _values(_stack(labels, "labels"), "labels")
    if train_images.shape != train_cells.shape or images.shape != cells.shape:
        raise ValueError(f"images and labels must match: {train_images.shape} vs {train_cells.shape}, "
                         f"{images.shape} vs {cells.shape}.")
    t = _grey_threshold(train_images, train_cells)
    out = {}
    for name, pred, threshold in (("all cell", np.ones_like(cells), None), ("grey threshold", images > t, t)):
        mean = mean_scores(em_scores_per_slice(pred, cells))
        out[name] = {"pixel_error": mean["pixel_error"], "rand_error": mean["rand_error"],
                     "threshold": threshold, "n_slices": mean["n_slices"]}
    return out


# ---------------------------------------------------------------------------- splits and merges


def split_merge(pred: Array, target: Array, min_pixels: int = 50, min_fraction: float = 0.1) -> dict[str, Any]:
    """Count merged and split cells of one slice, for the lesson and the viewer.

    A predicted cell and a true cell overlap substantially when they share at least `min_pixels`
    pixels and at least `min_fraction` of the smaller of the two: a predicted cell that spills a
    pixel or two over a membrane into its neighbour is not a merge. merged: predicted cells that
    substantially overlap 2+ true cells; split: true cells substantially overlapped by 2+
    predicted cells. merged_cells / split_cells list their labels in cell labels of pred / target
    (4-connected components, as rand_scores labels them), e.g. to colour them. Lesson 13.
    """
    p, t = _pair(pred, target)
    if p.ndim != 2:
        raise ValueError(f"split_merge scores one slice (H, W), got shape {p.shape}.")
    true_labels, pred_labels = _cells(t), _cells(p)
    both = (true_labels > 0) & (pred_labels > 0)
    width = int(pred_labels.max()) + 1
    codes, shared = np.unique(true_labels[both].astype(np.int64) * width + pred_labels[both], return_counts=True)
    i, j = np.divmod(codes, width)  # (true cell, predicted cell) of each overlap
    true_size, pred_size = np.bincount(true_labels.ravel()), np.bincount(pred_labels.ravel())
    strong = (shared >= min_pixels) & (shared >= min_fraction * np.minimum(true_size[i], pred_size[j]))
    merged = [int(k) for k, n in zip(*np.unique(j[strong], return_counts=True)) if n >= 2]
    split = [int(k) for k, n in zip(*np.unique(i[strong], return_counts=True)) if n >= 2]
    return {"merged": len(merged), "split": len(split), "merged_cells": merged, "split_cells": split}
