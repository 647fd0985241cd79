"""Prediction figures: image | ground truth | prediction, one row per image (lessons 06-07).

Built on matplotlib's `Figure` directly (not pyplot), so they work the same in a notebook
(the returned figure displays once) and in a script with no display.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset

from .metrics import dice_score


def pick_indices(dataset: Dataset, n: int) -> list[int]:
    """Up to n indices from different cars, at different angles, when the dataset knows its
    image ids (Carvana ids are '<car>_<angle>'); else n indices spread evenly over it."""
    n = min(n, len(dataset))
    ids = getattr(dataset, "ids", None)
    if ids is not None and len(ids) == len(dataset):
        by_car: dict[str, list[int]] = {}
        for i, image_id in enumerate(ids):
            by_car.setdefault(str(image_id).rsplit("_", 1)[0], []).append(i)
        cars = list(by_car.values())
        if len(cars) >= n:
            chosen = [cars[k * len(cars) // n] for k in range(n)]
            return [car[(5 * k + 1) % len(car)] for k, car in enumerate(chosen)]
    return [k * len(dataset) // n for k in range(n)]


@torch.no_grad()
def predict_masks(model: nn.Module, images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Binary masks (N, 1, H, W) for images (N, 3, H, W): sigmoid(logits) > threshold.
    Runs on the model's device in eval mode (and restores train mode after)."""
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        logits = model(images.to(param.device, param.dtype))
    finally:
        model.train(was_training)
    return (torch.sigmoid(logits) > threshold).cpu()


def show_predictions(model: nn.Module, dataset: Dataset, n: int = 4, device: torch.device | str | None = None,
                     indices: Sequence[int] | None = None, threshold: float = 0.5) -> Figure:
    """A Figure with one row per image: image | ground truth | prediction, titled with its Dice.

    dataset items are (image (3, H, W) in [0, 1], mask (1, H, W) {0, 1}); indices default to
    n images from different cars. device: move the model there first (default: where it is).
    """
    indices = list(indices) if indices is not None else pick_indices(dataset, n)
    items = [dataset[i] for i in indices]
    images = torch.stack([torch.as_tensor(img) for img, _ in items])
    masks = torch.stack([torch.as_tensor(m) for _, m in items])
    if device is not None:
        model.to(device)
    preds = predict_masks(model, images, threshold)
    dice = dice_score(preds, masks > 0.5, reduction="none")
    fig = Figure(figsize=(9, 2.2 * len(items) + 0.3), layout="constrained")
    axes = fig.subplots(len(items), 3, squeeze=False)
    for row, (i, img, mask, pred, d) in enumerate(zip(indices, images, masks, preds, dice)):
        panels = [(img.permute(1, 2, 0).clamp(0, 1).numpy(), f"image {_name(dataset, i)}"),
                  (mask[0].numpy(), "ground truth"), (pred[0].float().numpy(), f"prediction  Dice {d:.4f}")]
        for ax, (picture, title) in zip(axes[row], panels):
            ax.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    return fig


def _name(dataset: Dataset, i: int) -> str:
    ids = getattr(dataset, "ids", None)
    return str(ids[i]) if ids is not None else f"#{i}"


def save_prediction_figure(model: nn.Module, dataset: Dataset, path: str | Path, n: int = 4,
                           device: torch.device | str | None = None, dpi: int = 100) -> Path:
    """show_predictions(...) written to `path` (PNG); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    show_predictions(model, dataset, n=n, device=device).savefig(path, dpi=dpi)
    return path
