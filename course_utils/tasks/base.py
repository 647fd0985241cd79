"""The interface every training task implements; see course_utils.tasks for what each part is for."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset


class HeldOut(Protocol):
    """A held-out score accumulator: batch by batch, then summed over processes, then computed. Lesson 06."""

    def update(self, out: Any, target: Any, loss: float) -> None: ...

    def sums(self) -> dict[str, torch.Tensor]: ...  # int64 counts and float64 sums, added as they are

    def load_sums(self, sums: dict[str, torch.Tensor]) -> None: ...

    def compute(self) -> dict[str, float]: ...


class Task:
    """One data set as the engine sees it. Subclasses fill in the methods; see course_utils.tasks. Lesson 06."""

    name = ""
    title = ""  # e.g. "Carvana", for messages
    profiles: dict[str, dict[str, Any]] = {}  # profile -> TrainConfig settings it changes for this task
    score = "val_dice"  # the history key best.pt is chosen by
    higher_is_better = True
    score_label = "Dice"  # how best_of() names the score
    run_prefix = ""  # run folders are runs/<prefix><profile>-<date>-<time>

    def check(self, cfg: Any) -> None:
        """Raise a ValueError for settings this data set cannot take (the common ones are checked already)."""

    def datasets(self, cfg: Any) -> tuple[Dataset, Dataset]:
        raise NotImplementedError

    def split_text(self, cfg: Any) -> str:
        """What the held-out set is, for the run's first lines."""
        return "held out"

    def build_model(self, cfg: Any) -> nn.Module:
        raise NotImplementedError

    def loss(self, cfg: Any, train_set: Dataset) -> Callable:
        raise NotImplementedError

    def scores(self, model: nn.Module) -> HeldOut:
        raise NotImplementedError

    def figure(self, model: nn.Module, val_set: Dataset, path: Path, device: torch.device) -> Path | None:
        """Draw the end-of-run figure at `path` and return it, or return None (no figure for this task)."""
        return None

    def is_better(self, score: float, best: float | None) -> bool:
        """True when `score` beats `best` (None: nothing yet)."""
        if best is None:
            return True
        return score > best if self.higher_is_better else score < best

