"""ISBI 2012 EM membranes (lesson 13): the paper's own first experiment, through the same engine.

Greyscale slices in, one logit per pixel (cell vs membrane) out. Training draws random tiles from
the training slices with the paper's augmentation (elastic 3 x 3 grid, rotations, flips); the
held-out slices (default 25-29, never trained on) are predicted whole and scored with the
challenge's pixel and Rand error (course_utils.em_metrics.EMScores): at threshold 0.5, and each
at its best threshold of 0.1, ..., 0.9, as the leaderboard scored submissions. best.pt is the
epoch with the lowest Rand error at its best threshold (val_rand_error_best; the threshold is
recorded as val_rand_threshold, and the predict CLI uses it for EM stacks).

padding="valid" is the paper's network: a tile of image_size (572) gives the centre
image_size - 2 * margin (388) of labels; a held-out slice is mirror-padded by the margin so one
pass predicts all of it, which equals overlap-tile inference (course_utils.inference).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import albumentations as A
import cv2
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from ..data.isbi2012_download import ensure_isbi2012
from ..data.isbi2012 import ISBI2012Dataset, em_train_transform, held_out_split
from ..em_metrics import EMScores
from ..tiling import context_margin, mirror_pad
from ..model import UNet, output_length
from .base import Task


def resolve_isbi_dir(cfg: Any) -> Path:
    """The folder with the three stacks: cfg.data_dir, else data_root()/isbi2012, downloaded on first
    use (24 MB; ensure_isbi2012). Lesson 13."""
    root = Path(cfg.data_dir).expanduser() if cfg.data_dir else None
    if root is not None and not (root / "train-labels.tif").is_file():
        raise FileNotFoundError(f"no ISBI 2012 stacks at {root} (it needs train-volume.tif and train-labels.tif). "
                                f"Download them with\n  python -m course_utils.data download isbi2012 --root {root}\n"
                                f"or leave out --data-dir to use (and on first use download) <data root>/isbi2012.")
    return root if root is not None else ensure_isbi2012()


def crop_to(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The top-left target-sized part of logits (B, C, h, w): a valid network's held-out pass
    predicts a little more than the slice (h >= H), and output pixel (i, j) is slice pixel (i, j). Lesson 13."""
    h, w = target.shape[-2:]
    if logits.shape[-2] < h or logits.shape[-1] < w:
        raise ValueError(f"the network predicted {tuple(logits.shape[-2:])} pixels for a target of {(h, w)}; "
                         "a valid network's input must be mirror-padded by its context margin first.")
    return logits[..., :h, :w]


class EMLoss(nn.Module):
    """Binary cross-entropy per pixel, weighted by the paper's weight map when the target carries one
    ({"mask", "weight"}), averaged: the paper's loss (Section 3) for one logit. Lesson 13."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        mask = target["mask"] if isinstance(target, dict) else target
        per_pixel = F.binary_cross_entropy_with_logits(crop_to(logits, mask).float(), mask.float(), reduction="none")
        if isinstance(target, dict) and "weight" in target:
            per_pixel = per_pixel * target["weight"]
        return per_pixel.mean()


class CroppedEMScores(EMScores):
    """EMScores of the target-sized part of the logits (see crop_to). Lesson 13."""

    def update(self, logits, target, loss: float) -> None:
        mask = target["mask"] if isinstance(target, dict) else target
        super().update(crop_to(logits, mask), target, loss)


class Tiles(Dataset):
    """Training tiles: each slice drawn `per_slice` times an epoch (item i is slice i % n), and for a
    valid network the target cut to the centre the network predicts (margin pixels off each side). Lesson 13."""

    def __init__(self, slices: ISBI2012Dataset, per_slice: int, margin: int) -> None:
        self.slices, self.per_slice, self.margin = slices, per_slice, margin
        self.transform = slices.transform  # SeededAugment seeds it per item

    def __len__(self) -> int:
        return len(self.slices) * self.per_slice

    def __getitem__(self, i: int):
        image, target = self.slices[i % len(self.slices)]
        if not self.margin:
            return image, target
        m = self.margin
        cut = (lambda t: t[..., m:-m, m:-m])
        return image, {k: cut(v) for k, v in target.items()} if isinstance(target, dict) else cut(target)

    def __getattr__(self, name: str):
        if name == "slices":
            raise AttributeError(name)
        return getattr(self.slices, name)


class WithContext(Dataset):
    """Held-out slices whole, the image mirror-padded so a valid network's one pass covers the slice:
    `before` pixels on top and left (the context margin), `after` on bottom and right (a little more,
    so the padded side is a size the network takes). Lesson 13."""

    def __init__(self, slices: ISBI2012Dataset, before: int, after: int) -> None:
        self.slices, self.before, self.after = slices, before, after

    def __len__(self) -> int:
        return len(self.slices)

    def __getitem__(self, i: int):
        image, target = self.slices[i]
        b, a = self.before, self.after
        return (mirror_pad(image, b, a, b, a) if b or a else image), target

    def __getattr__(self, name: str):
        if name == "slices":
            raise AttributeError(name)
        return getattr(self.slices, name)


def valid_padding(side: int, depth: int) -> tuple[int, int]:
    """(before, after): mirror padding that lets the valid network of `depth` predict a whole side. Lesson 13."""
    margin = context_margin(depth)
    extra = 0
    while output_length(side + 2 * margin + extra, depth, "valid") is None:
        extra += 1
    return margin, margin + extra


def train_tiles_transform(cfg: Any, margin: int) -> A.Compose:
    """em_train_transform at the tile size, the slice first mirror-padded by the valid network's
    margin, so output tiles reach the slice's border with mirrored context (the paper's Figure 2). Lesson 13."""
    tiles = em_train_transform(tuple(cfg.image_size))
    if not margin:
        return tiles
    return A.Compose([A.Pad(margin, border_mode=cv2.BORDER_REFLECT_101), *tiles.transforms])


class ISBI2012(Task):
    """The ISBI 2012 EM stacks as the engine sees them: tiles of the training slices, whole held-out
    slices, best.pt by Rand error. Lesson 13."""
    name, title = "isbi2012", "ISBI 2012"
    # quick: a same-padded base-16 U-Net on 192 x 192 tiles; full: the paper's valid network on 572 tiles.
    # Both weight the loss by the paper's map: on the quick budget it reached the same Rand error as
    # plain cross-entropy (0.149 vs 0.150, each at its best threshold), but at threshold 0.5 (0.359 plain).
    profiles = {"quick": dict(image_size=(192, 192), base_channels=16, batch_size=4, epochs=8, lr=3e-3,
                              crops_per_slice=4, weight_map=True),
                "full": dict(image_size=(572, 572), base_channels=64, batch_size=4, epochs=60, lr=1e-3,
                             padding="valid", weight_map=True, crops_per_slice=8)}
    # best.pt: the lowest held-out Rand error at its best threshold, as the leaderboard scored
    score, higher_is_better, score_label, run_prefix = "val_rand_error_best", False, "Rand error", "isbi2012-"

    def check(self, cfg: Any) -> None:
        held_out_split(30, cfg.held_out)  # a ValueError for indices outside 0-29 or nothing left to train on
        if cfg.crops_per_slice < 1:
            raise ValueError(f"crops_per_slice must be at least 1, got {cfg.crops_per_slice}.")

    def datasets(self, cfg: Any) -> tuple[Dataset, Dataset]:
        root = resolve_isbi_dir(cfg)
        train_slices, val_slices = held_out_split(30, cfg.held_out)
        margin = context_margin(cfg.depth) if cfg.padding == "valid" else 0
        train = ISBI2012Dataset(root, slices=train_slices, transform=train_tiles_transform(cfg, margin),
                                weight_map=cfg.weight_map)
        val = ISBI2012Dataset(root, slices=val_slices, weight_map=cfg.weight_map)
        pad = valid_padding(val.images.shape[-1], cfg.depth) if cfg.padding == "valid" else (0, 0)
        return Tiles(train, cfg.crops_per_slice, margin), WithContext(val, *pad)

    def split_text(self, cfg: Any) -> str:
        return f"held out: slices {', '.join(map(str, cfg.held_out))}, whole; training tiles drawn at random"

    def build_model(self, cfg: Any) -> nn.Module:
        return UNet(in_channels=1, out_channels=1, base_channels=cfg.base_channels, depth=cfg.depth,
                    padding=cfg.padding, batch_norm=cfg.batch_norm)

    def loss(self, cfg: Any, train_set: Dataset) -> Callable:
        return EMLoss()

    def scores(self, model: nn.Module) -> CroppedEMScores:
        return CroppedEMScores()

    def figure(self, model: nn.Module, val_set: Dataset, path: Path, device: torch.device) -> Path | None:
        return None  # lesson 13 and the viewer draw the slices


TASK = ISBI2012()
