"""Checkpoints that survive a kill and load safely (lesson 06).

A checkpoint is a plain dict of tensors, lists and numbers, so it loads with
`torch.load(path, weights_only=True)` (no pickled code runs). It holds the weights and the
model's constructor arguments (`model_config`), so `load_checkpoint(path)` rebuilds the U-Net
from the file alone; `fit` (course_utils.train) adds the optimizer, schedule, epoch, history
and RNG states needed to resume exactly. Files are written atomically: a temp file in the same
folder, then os.replace, so a kill mid-write leaves the previous checkpoint whole.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .model import model_from_config


def rng_states() -> dict[str, Any]:
    """torch, CUDA, python and numpy RNG states as tensors and plain lists (weights_only-safe)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Inverse of rng_states()."""
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write via a temp file in the same folder, then os.replace: a crash leaves the old file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """torch.save `state` to `path` atomically."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, model: nn.Module | None = None, *, optimizer=None, scheduler=None,
                    map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint with weights_only=True; returns (model, checkpoint dict).

    model=None rebuilds the U-Net from the file alone (its `model_config`). A given model
    must have the same architecture, else a ValueError names what differs. Optimizer and
    scheduler, when given, get their saved state too.

    >>> model, ckpt = load_checkpoint("runs/quick-demo/best.pt")   # doctest: +SKIP
    >>> ckpt["epoch"], ckpt["best_dice"]                            # doctest: +SKIP
    """
    ckpt = read_checkpoint(path, map_location)
    if model is None:
        model = model_from_config(ckpt["model_config"])
    else:
        check_same_architecture(ckpt, model, path)
    model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    return model, ckpt


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at `path`, with clear errors for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; a run folder holds last.pt and best.pt.")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # cut short, damaged, not a torch file, or holds pickled code
        detail = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        raise ValueError(f"{path} is not a readable checkpoint: it is cut short, damaged, or was not written by "
                         f"course_utils.train ({type(e).__name__}: {detail}). Use the run's other checkpoint "
                         f"(last.pt or best.pt) or start a new run.") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise ValueError(f"{path} is not a checkpoint written by course_utils.train (no model/model_config).")
    return ckpt


def check_same_architecture(ckpt: dict[str, Any], model: nn.Module, path: str | Path = "checkpoint") -> None:
    """ValueError naming each constructor argument that differs between checkpoint and model."""
    theirs, ours = ckpt["model_config"], getattr(model, "config", None)
    if ours is not None:
        diffs = [f"checkpoint has {k}={theirs.get(k)!r}, model has {ours.get(k)!r}"
                 for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    else:  # not a course UNet: compare parameter names and shapes
        mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        saved = {k: tuple(v.shape) for k, v in ckpt["model"].items()}
        diffs = [f"{k}: checkpoint {saved.get(k)}, model {mine.get(k)}"
                 for k in sorted(set(mine) | set(saved)) if mine.get(k) != saved.get(k)][:3]
    if diffs:
        raise ValueError(f"{path} holds a different U-Net: " + "; ".join(diffs) + ". Build the model with "
                         "the checkpoint's settings, or let load_checkpoint(path) rebuild it.")
