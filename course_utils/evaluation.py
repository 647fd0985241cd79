"""Score a trained model image by image: probabilities, per-image records, threshold choice.

Lesson 07 uses these to find the worst cases and choose a threshold, lesson 08 to compare flip
test-time augmentation; lesson 10 scores multi-class models with a confusion matrix.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, SequentialSampler, Subset

from .metrics import BinaryMetrics, ConfusionMatrix, dice_score
from .inference import predict_probabilities


# ---------------------------------------------------------------------------- per-image records (lesson 07)


def _check_sequential(loader: DataLoader, what: str) -> None:
    """Records are matched to dataset positions by order: refuse a loader that reorders."""
    if not isinstance(loader, DataLoader):
        raise TypeError(f"{what} takes a DataLoader, got {type(loader).__name__}; wrap a dataset as "
                        "DataLoader(dataset, batch_size=8).")
    batch_sampler = loader.batch_sampler
    sequential = isinstance(loader.sampler, SequentialSampler) and (
        batch_sampler is None or isinstance(getattr(batch_sampler, "sampler", None), SequentialSampler))
    if not sequential:
        raise ValueError(f"{what} needs a loader that keeps the dataset's order, so each record gets the right id; "
                         "this one shuffles or samples. Make one with DataLoader(dataset, batch_size=8, shuffle=False).")


def _id_of(dataset: Dataset) -> Callable[[int], str | int]:
    """index -> the dataset's id for it (`.ids`, also through a Subset), else the index itself."""
    if isinstance(dataset, Subset):
        inner = _id_of(dataset.dataset)
        return lambda i: inner(int(dataset.indices[i]))
    ids = getattr(dataset, "ids", None)
    return (lambda i: str(ids[i])) if ids is not None else (lambda i: i)


def _binary_batches(model: nn.Module, loader: DataLoader, tta: bool, amp_dtype: torch.dtype | None):
    """Yields (probabilities (B, 1, H, W), true masks (B, 1, H, W) bool) for each batch of the loader."""
    for batch in loader:
        images, masks = batch[0], torch.as_tensor(batch[1])
        probs = predict_probabilities(model, images, tta=tta, amp_dtype=amp_dtype)
        if probs.shape[1] != 1:
            raise ValueError(f"the model gives {probs.shape[1]} channels: evaluate and threshold_sweep score one-channel "
                             "(binary) models; use evaluate_segmentation(model, loader, num_classes) for classes.")
        masks = masks.reshape(probs.shape) if masks.numel() == probs.numel() else masks
        if masks.shape != probs.shape:
            raise ValueError(f"masks {tuple(masks.shape)} do not match the model's output {tuple(probs.shape)}: "
                             "a same-padded U-Net keeps the image size; crop masks for a valid-padded one.")
        yield probs, masks.cpu() > 0.5


def evaluate(model: nn.Module, loader: DataLoader, *, threshold: float = 0.5, tta: bool = False,
             amp_dtype: torch.dtype | None = None) -> list[dict]:
    """One record per image, in the dataset's order, for a one-channel (binary) model.

    Each record holds plain Python values, ready to sort, tabulate or plot: index (position in
    the dataset), id (`dataset.ids[index]` when the dataset has ids, else the index), dice, iou,
    foreground and predicted_foreground (fractions of the image), true_positives,
    false_positives, false_negatives and pixels (counts). The prediction is
    probability > threshold; tta averages in the mirrored image's prediction.
    The loader must not shuffle (else ids would not match): DataLoader(dataset, shuffle=False). Lesson 07.
    """
    _check_sequential(loader, "evaluate")
    id_of, records, metrics = _id_of(loader.dataset), [], BinaryMetrics()
    for probs, masks in _binary_batches(model, loader, tta, amp_dtype):
        per_image = {k: v.tolist() for k, v in metrics.update(probs > threshold, masks).items()}
        pixels = masks[0].numel()
        for j in range(len(masks)):
            i = len(records)
            tp, fp, fn = per_image["tp"][j], per_image["fp"][j], per_image["fn"][j]
            records.append({"index": i, "id": id_of(i), "dice": per_image["dice"][j], "iou": per_image["iou"][j],
                            "foreground": (tp + fn) / pixels, "predicted_foreground": (tp + fp) / pixels,
                            "true_positives": tp, "false_positives": fp, "false_negatives": fn, "pixels": pixels})
    return records


def summarize(records: list[dict]) -> dict[str, float | int | str]:
    """The set's scores from `evaluate` records: dice (Kaggle mean per-image Dice), iou (mean),
    dice_global (every pixel pooled), worst_dice and worst_id, n_images. Lesson 07."""
    if not records:
        raise ValueError("no records to summarize: was the loader empty?")
    tp, fp, fn = (sum(r[k] for r in records) for k in ("true_positives", "false_positives", "false_negatives"))
    worst = min(records, key=lambda r: r["dice"])
    return {"n_images": len(records),
            "dice": math.fsum(r["dice"] for r in records) / len(records),
            "iou": math.fsum(r["iou"] for r in records) / len(records),
            "dice_global": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
            "worst_dice": worst["dice"], "worst_id": worst["id"]}


def default_thresholds() -> list[float]:
    """The thresholds threshold_sweep tries by default: 0.05, 0.10, ..., 0.95. Lesson 07."""
    return [round(0.05 * k, 2) for k in range(1, 20)]


def threshold_sweep(model: nn.Module, loader: DataLoader, thresholds: Sequence[float] | None = None, *,
                    tta: bool = False, amp_dtype: torch.dtype | None = None) -> dict:
    """Mean per-image Dice (Kaggle) at each threshold, from one forward pass per batch.

    Returns thresholds, dice (one per threshold), best_threshold, best_dice, n_images. Ties go to
    the threshold nearest 0.5. Choose the threshold on validation images, never on the test set. Lesson 07.
    """
    thresholds = [float(t) for t in (default_thresholds() if thresholds is None else thresholds)]
    if not thresholds or not all(0 <= t <= 1 for t in thresholds):
        raise ValueError(f"thresholds must be probabilities between 0 and 1, got {thresholds}.")
    sums, n = torch.zeros(len(thresholds), dtype=torch.float64), 0
    for probs, masks in _binary_batches(model, loader, tta, amp_dtype):
        for k, t in enumerate(thresholds):
            sums[k] += dice_score(probs > t, masks, "none").sum()
        n += len(probs)
    if n == 0:
        raise ValueError("the loader gave no images to score.")
    dice = (sums / n).tolist()
    top = max(dice)
    best = min((t for t, d in zip(thresholds, dice) if d >= top - 1e-12), key=lambda t: abs(t - 0.5))
    return {"thresholds": thresholds, "dice": dice, "best_threshold": best, "best_dice": dice[thresholds.index(best)],
            "n_images": n}


# ---------------------------------------------------------------------------- classes (lesson 10)


def evaluate_segmentation(model: nn.Module, loader: DataLoader, num_classes: int, *, ignore_index: int | None = None,
                          tta: bool = False, amp_dtype: torch.dtype | None = None,
                          channels: slice | None = None) -> dict:
    """Scores of a multi-class model (class scores (N, C, H, W)) over a loader of (image, labels),
    labels (N, H, W) or a dict whose "seg" holds them (NYUv2Dataset with several tasks).
    channels: which output channels are the class scores, e.g. slice(0, 13) when a depth channel
    follows them; default all.

    One confusion matrix summed over every labelled pixel (labels == ignore_index skipped), so
    the scores are exact for the whole set: confusion_matrix ((C, C) int64 tensor, rows true),
    iou_per_class, mean_iou (over classes present), pixel_accuracy, mean_accuracy, n_images. Lessons 10 and 11.
    """
    cm = ConfusionMatrix(num_classes, ignore_index)
    n = 0
    for batch in loader:
        images, labels = batch[0], batch[1]
        labels = torch.as_tensor(labels["seg"] if isinstance(labels, dict) else labels)
        probs = predict_probabilities(model, images, tta=tta, amp_dtype=amp_dtype, channels=channels)
        if labels.ndim == probs.ndim:  # (N, 1, H, W) label maps
            labels = labels.squeeze(1)
        cm.update(probs, labels.cpu())
        n += len(images)
    return {"confusion_matrix": cm.matrix, **cm.compute(), "n_images": n}
