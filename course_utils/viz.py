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


def load_history(history_or_run_dir: Sequence[dict] | str | Path) -> list[dict]:
    """The per-epoch records of a run: a list of dicts as `fit` returns, or read from a run folder's
    history.json (a path to the file itself works too)."""
    if isinstance(history_or_run_dir, (str, Path)):
        path = Path(history_or_run_dir)
        path = path / "history.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"no history.json at {path}: give a run folder written by fit(..., out=...) "
                                    f"or `python -m course_utils.train --out FOLDER`, or fit's returned list.")
        import json

        return json.loads(path.read_text())
    return list(history_or_run_dir)


def plot_history(history_or_run_dir: Sequence[dict] | str | Path) -> Figure:
    """A Figure of a run's curves (lesson 06): train and held-out loss per epoch (left), held-out
    Dice per epoch (right), with the best epoch (highest val_dice, what best.pt holds) marked.

    history_or_run_dir: fit's returned list of dicts (epoch, train_loss, val_loss, val_dice, ...),
    or a run folder holding history.json.
    """
    history = load_history(history_or_run_dir)
    if not history:
        raise ValueError("the history is empty: train at least one epoch before plotting it.")
    epochs = [r["epoch"] for r in history]
    best = max(history, key=lambda r: r["val_dice"])
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    loss_ax, dice_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train loss")
    loss_ax.plot(epochs, [r["val_loss"] for r in history], "s-", label="held-out loss")
    loss_ax.set(xlabel="epoch", ylabel="loss (BCE + Dice)", title="loss")
    dice_ax.plot(epochs, [r["val_dice"] for r in history], "o-", color="tab:green", label="held-out Dice")
    dice_ax.set(xlabel="epoch", ylabel="Dice (per image, mean)", title="held-out Dice")
    for ax in (loss_ax, dice_ax):
        ax.axvline(best["epoch"], color="gray", linestyle=":",
                   label=f"best epoch {best['epoch']} (Dice {best['val_dice']:.4f})")
        ax.set_xticks(epochs if len(epochs) <= 20 else ax.get_xticks())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig
