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

from .encoders import EncoderUNet
from .model import TwoHeadUNet, UNet


def model_from_config(config: dict) -> nn.Module:
    """Rebuild a UNet, TwoHeadUNet or EncoderUNet from its `.config` (what checkpoints store), untrained:
    the checkpoint's weights are loaded next. Lesson 06."""
    config = dict(config)
    if config.pop("kind", None) == "encoder":  # EncoderUNet: the classifier's weights come with the checkpoint
        return EncoderUNet(**{k: v for k, v in config.items() if k not in ("depth", "padding")})
    if config.pop("heads", None) == "seg+depth":
        config["num_classes"] = config.pop("out_channels")
        return TwoHeadUNet(**config)
    return UNet(**config)


def rng_states() -> dict[str, Any]:
    """torch, CUDA, python and numpy RNG states as tensors and plain lists (weights_only-safe). Lesson 06."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Inverse of rng_states(). Lesson 06."""
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write via a temp file in the same folder, then os.replace: a crash leaves the old file. Lesson 06."""
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
    """torch.save `state` to `path` atomically. Lesson 06."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, model: nn.Module | None = None, *, optimizer=None, scheduler=None,
                    map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint with weights_only=True; returns (model, checkpoint dict).

    model=None rebuilds the U-Net from the file alone (its `model_config`). A given model
    must have the same architecture, else a ValueError names what differs. Optimizer and
    scheduler, when given, get their saved state too.

    >>> model, ckpt = load_checkpoint("runs/quick-demo/best.pt")   # doctest: +SKIP
    >>> ckpt["epoch"], ckpt["best_dice"]                            # doctest: +SKIP

    Lesson 06.
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
    """The checkpoint dict at `path`, with clear errors for a missing or unreadable file. Lesson 06."""
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
    """ValueError naming each constructor argument that differs between checkpoint and model. Lesson 06."""
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


def training_state(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                   scaler: torch.amp.GradScaler | None, *, epoch: int, best: float, score: str,
                   history: list[dict], config: dict[str, Any], image_size: list[int]) -> dict[str, Any]:
    """What a run's checkpoint holds: the weights and constructor arguments (enough to predict), the
    optimizer, schedule, GradScaler and RNG states, epoch and history (enough to resume exactly), the
    run's settings, its training image size, and the best held-out `score` so far. Lesson 06."""
    state = dict(model=model.state_dict(), model_config=dict(getattr(model, "config", {})),
                 optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), epoch=epoch,
                 best_score=best, score=score, history=history, config=config, image_size=list(image_size),
                 rng=rng_states(), scaler=scaler.state_dict() if scaler is not None else {})
    if score == "val_dice":
        state["best_dice"] = best  # the name lessons 06-07 read
    return state


def restore_training_state(resume: str | Path | dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: Any, scaler: torch.amp.GradScaler | None = None) -> dict[str, Any]:
    """Put a training_state back (weights, optimizer, schedule, RNG states) and return it.

    The GradScaler's state (its current loss scale) is restored only when both runs use one
    (fp16): a run resumed on a device with another precision starts its own scale. Lesson 06."""
    ckpt = resume if isinstance(resume, dict) else read_checkpoint(resume)
    check_same_architecture(ckpt, model, resume if not isinstance(resume, dict) else "checkpoint")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and scaler.is_enabled() and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    set_rng_states(ckpt["rng"])
    return ckpt


def best_score(ckpt: dict[str, Any]) -> float | None:
    """The best held-out score a run's checkpoint records (older files call it best_dice). Lesson 06."""
    return ckpt.get("best_score", ckpt.get("best_dice"))


def best_of(ckpt: dict[str, Any]) -> str:
    """'Dice 0.9773', 'mIoU 0.4120' or 'Rand error 0.0812': the held-out score a checkpoint was
    chosen by. Lesson 06."""
    from .tasks import task_of_score  # here: the tasks import the data package, slow to import

    return f"{task_of_score(ckpt.get('score', 'val_dice')).score_label} {best_score(ckpt):.4f}"
