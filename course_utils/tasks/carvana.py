"""Carvana (lessons 05-07): RGB photos in, one logit per pixel (car vs background), held-out Dice.

The held-out cars are never trained on (split by car, lesson 05); best.pt is chosen by the
Kaggle metric, mean per-image Dice.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import CarvanaDataset, ensure_toy_carvana, eval_transform, split_cars, train_transform
from ..environment import dataset_dir
from ..losses import BCEDiceLoss
from ..metrics import BinaryMetrics
from ..model import UNet
from .base import Task


def resolve_data_dir(cfg: Any) -> Path:
    """The Carvana-layout folder to train on; makes the toy set when the quick profile needs it. Lesson 06."""
    if cfg.data_dir is None and cfg.profile == "quick":
        return ensure_toy_carvana()
    root = Path(cfg.data_dir).expanduser() if cfg.data_dir else dataset_dir("carvana")
    if not (root / "train").is_dir() or not (root / "train_masks").is_dir():
        raise FileNotFoundError(
            f"no Carvana data at {root} (it needs train/ and train_masks/). Download the real set with\n"
            f"  python -m course_utils.data download carvana   (Kaggle account; lesson 05)\n"
            f"or train on the toy set: leave out --data-dir and use --profile quick (it is made on first use)."
        )
    return root


class DiceScores:
    """Held-out loss and mean per-image Dice (the Kaggle metric): BinaryMetrics, the accumulator
    `evaluate` uses too, plus the loss; a process group adds its sums once before computing.
    Lesson 06."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold, self.metrics = threshold, BinaryMetrics()
        self.loss_sum = torch.zeros(1, dtype=torch.float64)

    def update(self, logits: torch.Tensor, masks: torch.Tensor, loss: float) -> None:
        self.metrics.update(torch.sigmoid(logits) > self.threshold, masks > 0.5)
        self.loss_sum += loss * len(logits)

    def sums(self) -> dict[str, torch.Tensor]:
        return {"loss": self.loss_sum.clone(), **self.metrics.sums()}

    def load_sums(self, sums: dict[str, torch.Tensor]) -> None:
        self.loss_sum = sums["loss"].double()
        self.metrics.load_sums(sums)

    def compute(self) -> dict[str, float]:
        n = max(self.metrics.n_images, 1)
        return {"val_loss": self.loss_sum.item() / n, "val_dice": self.metrics.score_sums[0].item() / n}


class Carvana(Task):
    """Carvana as the engine sees it: photos split by car, one logit per pixel, BCE + Dice, held-out Dice.
    Lesson 06."""
    name, title = "carvana", "Carvana"

    def datasets(self, cfg: Any) -> tuple[Dataset, Dataset]:
        root = resolve_data_dir(cfg)
        train_ids, val_ids = split_cars(root, val_fraction=cfg.val_fraction, by="car", seed=cfg.seed)
        size = tuple(cfg.image_size)
        fast = dict(size=size) if cfg.cache else {}  # decode + resize every image once, not every epoch
        return (CarvanaDataset(root, train_ids, transform=train_transform(size), **fast),
                CarvanaDataset(root, val_ids, transform=eval_transform(size), **fast))

    def split_text(self, cfg: Any) -> str:
        return "split by car"

    def build_model(self, cfg: Any) -> nn.Module:
        if getattr(cfg, "encoder", None):  # a torchvision classifier as the contracting path (lesson 14)
            from ..encoders import EncoderUNet  # here: torchvision is imported only when asked for

            return EncoderUNet(cfg.encoder, 3, 1, weights=cfg.encoder_weights, batch_norm=cfg.batch_norm)
        return UNet(in_channels=3, out_channels=1, base_channels=cfg.base_channels, depth=cfg.depth,
                    batch_norm=cfg.batch_norm)

    def loss(self, cfg: Any, train_set: Dataset) -> Callable:
        return BCEDiceLoss(cfg.bce_weight)

    def scores(self, model: nn.Module) -> DiceScores:
        return DiceScores()

    def figure(self, model: nn.Module, val_set: Dataset, path: Path, device: torch.device) -> Path:
        from ..viz import save_prediction_figure

        return save_prediction_figure(model, val_set, path, n=4, device=device)


TASK = Carvana()
