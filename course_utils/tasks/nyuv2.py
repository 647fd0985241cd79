"""NYU Depth V2 (lessons 10 and 11): 13 or 40 classes, optionally depth from a second head; held-out mIoU.

The pieces (datasets, loss, held-out scores) live in course_utils.segdepth, which lessons 10 and 11 teach.
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn
from torch.utils.data import Dataset

from ..data import IGNORE_INDEX
from ..model import TwoHeadUNet, UNet
from ..segdepth import TASK_CHOICES, WEIGHTINGS, HeldOutScores, nyuv2_datasets, nyuv2_loss
from .base import Task


class NYUv2(Task):
    """NYU Depth V2 as the engine sees it: 13 or 40 classes, an optional depth head, held-out mIoU. Lessons 10 and 11."""
    name, title = "nyuv2", "NYU Depth V2"
    # the toy rooms are drawn at 96x128 (the real 480x640 is 4:3 too)
    profiles = {"quick": dict(image_size=(96, 128), batch_size=4, epochs=20, lr=1e-2),
                "full": dict(image_size=(480, 640), base_channels=64, batch_size=8, epochs=60, lr=1e-3)}
    score, score_label, run_prefix = "val_miou", "mIoU", "nyuv2-"

    def check(self, cfg: Any) -> None:
        if cfg.num_classes not in (13, 40):
            raise ValueError(f"NYUv2 comes labelled with 13 or 40 classes, got num_classes={cfg.num_classes}.")
        if cfg.tasks not in TASK_CHOICES or cfg.class_weighting not in WEIGHTINGS:
            raise ValueError(f"tasks must be one of {TASK_CHOICES} and class_weighting one of {WEIGHTINGS}, "
                             f"got {cfg.tasks!r} and {cfg.class_weighting!r}.")
        if cfg.depth_loss not in ("l1", "silog") or not cfg.depth_weight >= 0:
            raise ValueError(f"depth_loss must be l1 or silog and depth_weight 0 or more, got "
                             f"{cfg.depth_loss!r} and {cfg.depth_weight}.")

    def datasets(self, cfg: Any) -> tuple[Dataset, Dataset]:
        return nyuv2_datasets(cfg)

    def split_text(self, cfg: Any) -> str:
        return "held out: the last train frames, whole scenes"

    def build_model(self, cfg: Any) -> nn.Module:
        if cfg.tasks == "seg+depth":
            return TwoHeadUNet(3, cfg.num_classes, base_channels=cfg.base_channels, depth=cfg.depth,
                               batch_norm=cfg.batch_norm)
        return UNet(in_channels=3, out_channels=cfg.num_classes, base_channels=cfg.base_channels, depth=cfg.depth,
                    batch_norm=cfg.batch_norm)

    def loss(self, cfg: Any, train_set: Dataset) -> Callable:
        return nyuv2_loss(cfg, train_set)

    def scores(self, model: nn.Module) -> HeldOutScores:
        return HeldOutScores(getattr(model, "config", {}).get("out_channels", 1), IGNORE_INDEX)


TASK = NYUv2()
