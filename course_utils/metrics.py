"""Segmentation and depth metrics: binary overlap scores (lesson 07), confusion matrix and mIoU,
depth errors (lesson 11), and accumulators that score a whole loader batch by batch.

Binary functions take `pred` and `target` of the same shape (N, ...) holding {0, 1}
(bool, int or float: threshold logits first, e.g. ``logits > 0``) and a reduction:

- "mean":   score each image, then average: the Kaggle Carvana metric. An image where
            prediction and target are both empty scores 1.
- "none":   the per-image scores, shape (N,).
- "global": pool every pixel of the batch into one score (what many training scripts print;
            it lets big objects outweigh small ones).

A score whose denominator is 0 is 1 when prediction and target are both empty (nothing
there, nothing claimed: right) and 0 otherwise; e.g. precision of an empty prediction on a
car is 0 and recall of any prediction on an empty image is 0.
Accumulators keep counts, never masks, so a loader of any size is scored exactly, not as an
average of per-batch averages.
"""
from __future__ import annotations

import math

import torch

REDUCTIONS = ("mean", "none", "global")

# ---------------------------------------------------------------------------- binary masks (lesson 07)


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
    """Per-image true positives, false positives, false negatives, true negatives, each (N,). Lesson 07."""
    p, t = _flat_binary(pred, target)
    tp = (p & t).sum(1)
    fp = (p & ~t).sum(1)
    fn = (~p & t).sum(1)
    tn = p.shape[1] - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _ratio(num: torch.Tensor, den: torch.Tensor, both_empty: torch.Tensor) -> torch.Tensor:
    """num / den in float64; where den is 0: 1 if prediction and target are both empty, else 0."""
    num, den = num.double(), den.double()
    return torch.where(den > 0, num / den.clamp(min=1), both_empty.double())


def _score(c: dict[str, torch.Tensor], num: torch.Tensor, den: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {REDUCTIONS}.")
    both_empty = (c["tp"] + c["fp"] + c["fn"]) == 0
    if reduction == "global":
        return _ratio(num.sum(), den.sum(), both_empty.all())
    per_image = _ratio(num, den, both_empty)
    return per_image if reduction == "none" else per_image.mean()


def dice_score(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Dice = 2|P & T| / (|P| + |T|). reduction="mean" is the Kaggle Carvana score. Defined
    where the loss is built from it, then studied: Lessons 06 and 07."""
    c = overlap_counts(pred, target)
    return _score(c, 2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"], reduction)


def iou_score(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Intersection over union (Jaccard) = |P & T| / |P | T|; IoU = Dice / (2 - Dice) per image. Lesson 07."""
    c = overlap_counts(pred, target)
    return _score(c, c["tp"], c["tp"] + c["fp"] + c["fn"], reduction)


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Fraction of pixels labelled right. High even for useless masks when the object is small. Lesson 07."""
    c = overlap_counts(pred, target)
    return _score(c, c["tp"] + c["tn"], c["tp"] + c["tn"] + c["fp"] + c["fn"], reduction)


def precision_score(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Precision = |P & T| / |P|: of the pixels called car, the fraction that are car.
    Nothing predicted scores 1 on an empty image, 0 when there was something to find. Lesson 07."""
    c = overlap_counts(pred, target)
    return _score(c, c["tp"], c["tp"] + c["fp"], reduction)


def recall_score(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Recall = |P & T| / |T|: of the car pixels, the fraction found.
    An empty target scores 1 when nothing is predicted, 0 for any false alarm. Lesson 07."""
    c = overlap_counts(pred, target)
    return _score(c, c["tp"], c["tp"] + c["fn"], reduction)


class BinaryMetrics:
    """The course's one per-image accumulator of binary masks: per-image Dice and IoU summed image by
    image (the Kaggle metric is their mean), and pixel counts pooled over every image. Training's
    held-out Dice (tasks.carvana.DiceScores) and `evaluate`'s per-image records both come from it.

    >>> m = BinaryMetrics()
    >>> for images, masks in loader:
    ...     m.update(predict(images) > 0.5, masks)
    >>> m.compute()["dice"]   # the Kaggle mean per-image Dice of the whole loader

    update() returns the batch's per-image values; sums()/load_sums() let a process group add its
    parts (counts as int64, exactly) before compute(): dice and iou are per-image means (Kaggle),
    dice_global pools every pixel, and so do pixel_accuracy, precision and recall. Lesson 07.
    """

    COUNTS = ("n_images", "tp", "fp", "fn", "tn")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.score_sums = torch.zeros(2, dtype=torch.float64)  # sum of per-image Dice, of per-image IoU
        self.counts = torch.zeros(len(self.COUNTS), dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Add a batch: pred and target binary masks (N, ...) of the same shape. Returns this batch's
        per-image dice and iou (float64) and tp, fp, fn, tn counts (int64), each of shape (N,)."""
        c = overlap_counts(pred, target)
        both_empty = (c["tp"] + c["fp"] + c["fn"]) == 0
        per_image = {"dice": _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"], both_empty).double(),
                     "iou": _ratio(c["tp"], c["tp"] + c["fp"] + c["fn"], both_empty).double(),
                     **{k: c[k].long() for k in ("tp", "fp", "fn", "tn")}}
        self.score_sums += torch.stack([per_image["dice"].sum(), per_image["iou"].sum()])
        self.counts += torch.stack([torch.tensor(len(c["tp"]))] + [per_image[k].sum() for k in self.COUNTS[1:]])
        return per_image

    def sums(self) -> dict[str, torch.Tensor]:
        return {"scores": self.score_sums.clone(), "counts": self.counts.clone()}

    def load_sums(self, sums: dict[str, torch.Tensor]) -> None:
        self.score_sums, self.counts = sums["scores"].double(), sums["counts"].long()

    @property
    def n_images(self) -> int:
        return int(self.counts[0])

    def compute(self) -> dict[str, float]:
        """dice, dice_global, iou, pixel_accuracy, precision, recall (floats) and n_images."""
        if not self.n_images:
            raise ValueError("BinaryMetrics has seen no images yet: call .update(pred, target) first.")
        c = dict(zip(self.COUNTS, self.counts))
        both_empty = c["tp"] + c["fp"] + c["fn"] == 0
        pooled = {
            "dice_global": _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"], both_empty),
            "pixel_accuracy": _ratio(c["tp"] + c["tn"], c["tp"] + c["fp"] + c["fn"] + c["tn"], both_empty),
            "precision": _ratio(c["tp"], c["tp"] + c["fp"], both_empty),
            "recall": _ratio(c["tp"], c["tp"] + c["fn"], both_empty),
        }
        dice, iou = (self.score_sums / self.n_images).tolist()
        return {"dice": dice, "iou": iou, **{k: float(v) for k, v in pooled.items()}, "n_images": self.n_images}


# ---------------------------------------------------------------------------- classes (lesson 10)


def _labels(x: torch.Tensor, name: str) -> torch.Tensor:
    """x as int64 labels; floats must hold whole numbers (a label map, not probabilities)."""
    if x.is_floating_point():
        if not bool((x == x.round()).all()):
            raise ValueError(f"{name} holds fractions: pass class labels (integers), or class scores of shape "
                             "(N, C, H, W) for pred.")
    return x.long()


def _check_range(x: torch.Tensor, num_classes: int, name: str, ignore_index: int | None) -> None:
    if x.numel() == 0:
        return
    lo, hi = int(x.min()), int(x.max())
    if lo < 0:
        hint = "" if name == "pred" else f"; if {lo} marks unlabelled pixels, pass ignore_index={lo}"
        raise ValueError(f"{name} holds the negative label {lo}: labels must be 0..{num_classes - 1}{hint}.")
    if hi >= num_classes:
        hint = (f"; if {hi} marks unlabelled pixels, pass ignore_index={hi}" if name == "target" and ignore_index is None
                else f"; is num_classes={num_classes} right?")
        raise ValueError(f"{name} holds the label {hi}, but num_classes={num_classes} allows 0..{num_classes - 1}{hint}.")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int | None = None) -> torch.Tensor:
    """(C, C) int64 pixel counts: row = true class, column = predicted class.

    pred: labels of target's shape (e.g. (N, H, W) ints; binary masks {0, 1} with num_classes=2),
    or class scores / logits (N, C, H, W) whose argmax over C is taken. Pixels whose target is
    ignore_index (e.g. NYUv2's unlabelled 0 or 255) are skipped. Lesson 10.
    """
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}.")
    if pred.is_floating_point() and pred.ndim == target.ndim + 1 and pred.ndim >= 2:
        if pred.shape[1] != num_classes:
            raise ValueError(f"pred looks like class scores {tuple(pred.shape)} with {pred.shape[1]} channels, but "
                             f"num_classes={num_classes}. One-channel logits: pass (logits > 0).long() as labels "
                             "with num_classes=2.")
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape "
                         "(labels), or pred must be scores (N, C, H, W) for a target (N, H, W).")
    pred, target = _labels(pred, "pred"), _labels(target, "target")
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    _check_range(target, num_classes, "target", ignore_index)
    _check_range(pred, num_classes, "pred", ignore_index)
    flat = target.reshape(-1) * num_classes + pred.reshape(-1)
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes).cpu()


def iou_per_class(cm: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """(C,) float64 IoU of each class from a confusion matrix: TP / (TP + FP + FN);
    nan for a class in neither prediction nor target (nothing to score), and for ignore_index
    when it is one of the C labels (predicting it on a labelled pixel still counts as a miss). Lesson 10."""
    cm = torch.as_tensor(cm).double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    if ignore_index is not None and 0 <= ignore_index < len(iou):
        iou[ignore_index] = float("nan")
    return iou


def confusion_scores(cm: torch.Tensor, ignore_index: int | None = None) -> dict[str, float | list[float]]:
    """Scores of a confusion matrix (rows true, columns predicted), counting labelled pixels only:
    mean_iou (over classes present in prediction or target), iou_per_class (nan: absent),
    pixel_accuracy, and mean_accuracy (per-class recall averaged over classes in the target).
    A matrix with no pixels gives nan everywhere. ignore_index: as for `iou_per_class`. Lesson 10."""
    cm = torch.as_tensor(cm).double()
    iou = iou_per_class(cm, ignore_index)
    per_class_recall = cm.diagonal() / cm.sum(1)  # nan for classes absent from the target
    total = cm.sum()
    return {
        "mean_iou": float(iou.nanmean()),
        "iou_per_class": iou.tolist(),
        "pixel_accuracy": float(cm.diagonal().sum() / total) if total > 0 else float("nan"),
        "mean_accuracy": float(per_class_recall.nanmean()),
    }


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> float:
    """Mean IoU from one confusion matrix over all the pixels given (pooled, as for PASCAL VOC and
    NYUv2), averaged over the classes present in prediction or target. Lesson 10."""
    return confusion_scores(confusion_matrix(pred, target, num_classes, ignore_index), ignore_index)["mean_iou"]


class ConfusionMatrix:
    """A confusion matrix summed batch by batch: exact mIoU of a whole loader.

    >>> cm = ConfusionMatrix(13, ignore_index=255)
    >>> for images, labels in loader:
    ...     cm.update(model(images), labels)    # scores (N, C, H, W) or labels (N, H, W)
    >>> cm.mean_iou(), cm.pixel_accuracy()

    Lesson 10.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.reset()

    def reset(self) -> None:
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch (arguments as for `confusion_matrix`)."""
        self.matrix += confusion_matrix(torch.as_tensor(pred).detach(), target, self.num_classes, self.ignore_index)

    def iou_per_class(self) -> torch.Tensor:
        return iou_per_class(self.matrix, self.ignore_index)

    def mean_iou(self) -> float:
        return self.compute()["mean_iou"]

    def pixel_accuracy(self) -> float:
        return self.compute()["pixel_accuracy"]

    def compute(self) -> dict[str, float | list[float]]:
        """`confusion_scores` of the matrix so far."""
        return confusion_scores(self.matrix, self.ignore_index)


# ---------------------------------------------------------------------------- depth (lesson 11)

DELTA = 1.25


def _depth_sums(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Sums over the valid pixels (target > 0 and finite) that the depth errors are made of."""
    pred, target = torch.as_tensor(pred).double(), torch.as_tensor(target).double()
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} depth maps must have the same "
                         "shape; take the depth channel of the output, e.g. out[:, -1:].")
    valid = (target > 0) & torch.isfinite(target)
    p, t = pred[valid], target[valid]
    ratio = torch.where(p > 0, torch.maximum(p / t, t / p), torch.full_like(p, math.inf))  # p <= 0 is never right
    return {"abs_rel": float(((p - t).abs() / t).sum()), "sq_err": float(((p - t) ** 2).sum()),
            **{f"delta{k}": float((ratio < DELTA**k).sum()) for k in (1, 2, 3)}, "n_pixels": int(valid.sum())}


def _depth_scores(s: dict[str, float]) -> dict[str, float]:
    n = s["n_pixels"]
    if n == 0:
        raise ValueError("no valid depth pixels (target > 0 and finite) to score: is the target a depth map in metres?")
    return {"abs_rel": s["abs_rel"] / n, "rmse": math.sqrt(s["sq_err"] / n),
            **{f"delta{k}": s[f"delta{k}"] / n for k in (1, 2, 3)}, "n_pixels": n}


def depth_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Depth errors over the valid pixels (target > 0 and finite; 0 marks missing depth):
    abs_rel = mean |p - t| / t, rmse = sqrt(mean (p - t)^2) (in the target's unit, metres for
    NYUv2), delta1/2/3 = fraction with max(p/t, t/p) < 1.25, 1.25^2, 1.25^3 (a prediction <= 0
    never counts). All pixels of the batch are pooled, as `DepthMetrics` pools a test set. Lesson 11.
    """
    return _depth_scores(_depth_sums(pred, target))


class DepthMetrics:
    """Depth errors summed batch by batch over every valid pixel of the test set.

    Pooled per pixel, not averaged per image: Eigen et al. (NIPS 2014) write each error as a
    mean over the set T of evaluated pixels, (1/|T|) sum over T, and we take T to be all valid
    pixels of the set. Pooling keeps an image with few valid pixels from counting as much as a
    full one, and sums make the result exact however the loader is batched. (Some later code
    averages per-image errors instead; the two differ slightly, so compare like with like.) Lesson 11.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums = {"abs_rel": 0.0, "sq_err": 0.0, "delta1": 0.0, "delta2": 0.0, "delta3": 0.0, "n_pixels": 0}
        self.n_images = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and true depth maps (same shape, (N, 1, H, W) or (N, H, W))."""
        for k, v in _depth_sums(torch.as_tensor(pred).detach(), target).items():
            self.sums[k] += v
        self.n_images += len(target)

    def compute(self) -> dict[str, float]:
        """abs_rel, rmse, delta1, delta2, delta3, n_pixels and n_images."""
        return {**_depth_scores(self.sums), "n_images": self.n_images}


# ---------------------------------------------------------------------------- outlines (lesson 14)


def _spatial_masks(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) float view of a batch of masks given as (N, H, W) or (N, 1, H, W)."""
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected masks (N, H, W) or (N, 1, H, W), got shape {tuple(x.shape)}.")
    return x.float()


def outline_band(target: torch.Tensor, width: int = 2) -> torch.Tensor:
    """The pixels within `width` pixels of the true outline, on either side: bool of target's shape.

    target: binary masks (N, H, W) or (N, 1, H, W). A pixel is in the band when its
    (2 width + 1) x (2 width + 1) neighbourhood holds both car and background, i.e. when a pixel
    of the other class is at most `width` steps away (a diagonal step counts as one). That is
    the dilated mask minus the eroded one, both by max-pooling; the image's edge is no outline.

    >>> outline_band(torch.tensor([[[0, 0, 0, 1, 1, 1, 1, 1]]]), width=2).int()  # 2 pixels either side
    tensor([[[0, 1, 1, 1, 1, 0, 0, 0]]], dtype=torch.int32)

    Lessons 07, 09 and 14.
    """
    if int(width) < 1:
        raise ValueError(f"width must be at least 1 pixel, got {width}.")
    _flat_binary(target, target)  # 0/1 values, a batch
    t, k = _spatial_masks(torch.as_tensor(target)), 2 * int(width) + 1
    dilated = torch.nn.functional.max_pool2d(t, k, stride=1, padding=int(width)) > 0.5  # some car nearby
    eroded = -torch.nn.functional.max_pool2d(-t, k, stride=1, padding=int(width)) > 0.5  # only car nearby
    return (dilated & ~eroded).reshape(torch.as_tensor(target).shape)


def outline_band_error(pred: torch.Tensor, target: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Per image, the share of wrong pixels within `width` pixels of the true outline: float64 (N,).

    pred, target: binary masks of the same shape, (N, H, W) or (N, 1, H, W) (threshold first).
    Dice is dominated by a car's inside, which every model gets right; this error looks only at
    the band `outline_band(target, width)` where coarse upsampling (FCN's 8x) blurs the outline.
    An image without an outline (no car, or all car) has an empty band: NaN (torch.nanmean skips it).

    >>> target = torch.zeros(1, 8, 8); target[:, 2:6, 2:6] = 1
    >>> outline_band_error(target, target), outline_band_error(1 - target, target, width=1)
    (tensor([0.], dtype=torch.float64), tensor([1.], dtype=torch.float64))

    Lessons 09 and 14.
    """
    p, t = _flat_binary(pred, target)
    band = outline_band(target, width).reshape(t.shape)
    wrong = ((p != t) & band).sum(1).double()
    return wrong / band.sum(1).double()  # 0 / 0 = NaN where there is no outline
