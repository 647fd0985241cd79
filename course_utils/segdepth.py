"""Training on NYU Depth V2 with the same engine: loaders, loss and held-out scores (lessons 10 and 11).

course_utils.train calls these when `TrainConfig.task == "nyuv2"`; everything else (the
optimiser, schedule, mixed precision, checkpoints, resume, torchrun) is the Carvana engine's.

Held-out frames: the last `val_fraction` of the official *train* frames. The labeled frames
are stored scene by scene, so a block at the end holds whole scenes the model never trains on
(at most one scene is cut at the border), and the official test split stays untouched for
the final numbers that lessons 10 and 11 report (`evaluate_segmentation`, `DepthMetrics`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .environment import dataset_dir
from .losses import SegDepthLoss, class_weights
from .metrics import ConfusionMatrix, DepthMetrics

TASK_CHOICES = ("seg", "seg+depth")
WEIGHTINGS = ("none", "median", "inverse_sqrt")


def dataset_tasks(tasks: str) -> str | tuple[str, ...]:
    """"seg" -> "seg" (items (image, labels)); "seg+depth" -> ("seg", "depth") (items (image,
    {"seg", "depth"})): what NYUv2Dataset(tasks=...) takes. Lessons 10 and 11."""
    if tasks not in TASK_CHOICES:
        raise ValueError(f"tasks must be one of {TASK_CHOICES}, got {tasks!r}.")
    return tasks if tasks == "seg" else tuple(tasks.split("+"))


def resolve_nyuv2_dir(data_dir: str | None, profile_name: str) -> Path:
    """The NYUv2 folder to train on; makes the toy set when the quick profile needs it. Lesson 10."""
    from .data import ensure_toy_nyuv2

    if data_dir is None and profile_name == "quick":
        return ensure_toy_nyuv2()
    root = Path(data_dir).expanduser() if data_dir else dataset_dir("nyuv2")
    if not (root / "nyu_depth_v2_labeled.mat").is_file():
        raise FileNotFoundError(
            f"no NYU Depth V2 data at {root} (it needs nyu_depth_v2_labeled.mat and the three mapping files). "
            f"Download it with\n  python -m course_utils.data download nyuv2   (2.97 GB; lesson 10)\n"
            f"or train on the toy rooms: leave out --data-dir and use --profile quick (made on first use).")
    return root


def nyuv2_datasets(cfg: Any) -> tuple[Dataset, Dataset]:
    """(train, held-out) NYUv2 datasets at cfg.image_size: the official train frames, the last
    cfg.val_fraction of them held out as a block of whole scenes (see the module docstring). Lesson 10."""
    from .data import NYUv2Dataset, eval_transform, train_transform

    root = resolve_nyuv2_dir(cfg.data_dir, cfg.profile)
    size, tasks = tuple(cfg.image_size), dataset_tasks(cfg.tasks)

    def frames(transform, part: slice | None = None) -> NYUv2Dataset:
        ds = NYUv2Dataset(root, "train", num_classes=cfg.num_classes, transform=transform, tasks=tasks)
        if part is not None:
            ds.indices = ds.indices[part]  # a block of the official train frames
        return ds

    n = len(frames(None))
    n_val = max(1, round(n * cfg.val_fraction))
    if n - n_val < 1:
        raise ValueError(f"{n} training frames cannot spare {n_val} for validation; lower val_fraction.")
    return frames(train_transform(size), slice(0, n - n_val)), frames(eval_transform(size), slice(n - n_val, n))


def nyuv2_loss(cfg: Any, train_set: Dataset) -> SegDepthLoss:
    """Cross-entropy (unlabelled pixels ignored, classes weighted as cfg.class_weighting says)
    plus cfg.depth_weight x the depth loss when the run predicts depth. Lessons 10 and 11."""
    from .data import IGNORE_INDEX, label_frequencies

    weights = None
    if cfg.class_weighting != "none":
        weights = class_weights(torch.as_tensor(label_frequencies(train_set)), cfg.class_weighting)
    return SegDepthLoss(ignore_index=IGNORE_INDEX, class_weights=weights, depth_loss=cfg.depth_loss,
                        depth_weight=cfg.depth_weight)


def is_multiclass(model: nn.Module) -> bool:
    """True for a model whose output is class scores (C > 1) or a {"seg", "depth"} dict. Lessons 10 and 11."""
    config = getattr(getattr(model, "module", model), "config", {})
    return config.get("out_channels", 1) > 1 or "heads" in config


def to_device(target: torch.Tensor | dict[str, torch.Tensor], device) -> torch.Tensor | dict[str, torch.Tensor]:
    """A batch target (a tensor, or NYUv2's {"seg", "depth"} dict) on `device`. Lessons 10 and 11."""
    if isinstance(target, dict):
        return {k: v.to(device, non_blocking=True) for k, v in target.items()}
    return target.to(device, non_blocking=True)


class HeldOutScores:
    """Loss, mIoU and pixel accuracy over labelled pixels, and depth errors, summed batch by
    batch, so a process group can add its parts (`sums`, `load_sums`) before `compute`. Lessons 10 and 11."""

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        self.cm, self.depth = ConfusionMatrix(num_classes, ignore_index), DepthMetrics()
        self.loss_sum, self.n = 0.0, 0

    def update(self, out, target, loss: float) -> None:
        out = out if isinstance(out, dict) else {"seg": out}
        target = target if isinstance(target, dict) else {"seg": target}
        self.loss_sum, self.n = self.loss_sum + loss * len(out["seg"]), self.n + len(out["seg"])
        self.cm.update(out["seg"].argmax(1).cpu(), target["seg"].cpu())
        if "depth" in out:
            self.depth.update(out["depth"].cpu(), target["depth"].cpu())

    def sums(self) -> dict[str, torch.Tensor]:
        """Integer counts as int64 (the confusion matrix, images, depth pixels), sums as float64."""
        depth = {k: v for k, v in self.depth.sums.items() if k != "n_pixels"}
        return {"loss": torch.tensor([self.loss_sum], dtype=torch.float64),
                "counts": torch.tensor([self.n, self.depth.sums["n_pixels"]], dtype=torch.int64),
                "confusion": self.cm.matrix.clone(), "depth": torch.tensor(list(depth.values()), dtype=torch.float64)}

    def load_sums(self, sums: dict[str, torch.Tensor]) -> None:
        self.loss_sum = sums["loss"].item()
        self.n, n_pixels = (int(v) for v in sums["counts"])
        self.cm.matrix = sums["confusion"].long()
        keys = [k for k in self.depth.sums if k != "n_pixels"]
        self.depth.sums = dict(zip(keys, sums["depth"].tolist())) | {"n_pixels": n_pixels}

    def compute(self) -> dict[str, float]:
        seg = self.cm.compute()
        scores = {"val_loss": self.loss_sum / max(self.n, 1), "val_miou": seg["mean_iou"],
                  "val_pixel_acc": seg["pixel_accuracy"]}
        if self.depth.sums["n_pixels"]:
            d = self.depth.compute()
            scores |= {"val_abs_rel": d["abs_rel"], "val_rmse": d["rmse"], "val_delta1": d["delta1"]}
        return scores
