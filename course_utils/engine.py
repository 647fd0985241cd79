"""The training engine: one step, one epoch, the held-out pass, and `fit`, which repeats them,
keeps best.pt by the task's score and resumes a stopped run exactly. Lesson 06 builds it.

Under torchrun each process trains a DistributedDataParallel replica on its shard of the epoch;
held-out sums are added over the processes once, so every process gets one process's metrics.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import atomic_write, best_of, best_score, restore_training_state, save_checkpoint, training_state
from .config import TrainConfig
from .distributed import all_reduce_sum, all_reduce_sums, dist_info
from .environment import pick_device
from .losses import BCEDiceLoss
from .inference import evaluating, forward
from .precision import make_scaler, resolve_amp, use_channels_last
from .segdepth import to_device
from .tasks import Task, get_task, task_for_model


def train_step(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, loss_fn: Callable,
               optimizer: torch.optim.Optimizer, *, amp_dtype: torch.dtype | None = None,
               scaler: torch.amp.GradScaler | None = None, clip_grad: float | None = None,
               channels_last: bool = False) -> torch.Tensor:
    """One optimisation step on a batch already on the model's device; returns the loss (a tensor).

    Forward under autocast (amp_dtype), the loss in float32, backward through the scaler
    (fp16), optional gradient clipping to norm `clip_grad` (after unscaling, so the limit is
    in true gradient units), then the step (the scaler skips it if gradients overflowed).
    The loss is returned before the step, unchecked: the caller decides what non-finite means. Lesson 06.
    """
    logits = forward(model, images, amp_dtype, channels_last)
    loss = loss_fn(logits, masks)  # logits (B, 1, H, W) vs masks (B, 1, H, W), in float32
    _backward_and_step(loss, model, optimizer, scaler, clip_grad)
    return loss.detach()


def _backward_and_step(loss, model, optimizer, scaler, clip_grad) -> None:
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if clip_grad:
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip true gradients, not scaled ones
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    if scaler is not None:
        scaler.step(optimizer)  # skipped when the fp16 gradients overflowed
        scaler.update()
    else:
        optimizer.step()


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before the bad step was applied. Lesson 06."""


class OutOfMemoryError(RuntimeError):
    """The GPU ran out of memory in a training step; the message says what to lower. Lesson 06."""


def _oom_message(epoch: int, step: int, images: torch.Tensor) -> str:
    b, _, h, w = images.shape
    return (f"the GPU ran out of memory at epoch {epoch}, step {step} (batch of {b} images of {h}x{w}). "
            f"Lower what a step holds in memory and run again:\n"
            f"  --batch-size {max(1, b // 2)}   activations shrink in proportion to the batch (per GPU under torchrun)\n"
            f"  --image-size {h // 2} {w // 2}   they shrink with H x W (sides must stay multiples of 2**depth)\n"
            f"  --base-channels 32   (or half the current width) every activation has half as many channels\n"
            f"  --amp bf16 (or --amp fp16 on GPUs without bf16)   halves activation memory\n"
            f"Checkpoints of earlier epochs are untouched: add --resume RUN/last.pt to continue.")


def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: Callable, optimizer: torch.optim.Optimizer,
                    scheduler: Any, device: torch.device | str, epoch: int = 1, *,
                    epochs: int | None = None, progress: bool = True, amp_dtype: torch.dtype | None = None,
                    scaler: torch.amp.GradScaler | None = None, clip_grad: float | None = None,
                    channels_last: bool = False) -> float:
    """One pass over `loader`; steps the scheduler every batch. Returns the mean loss per image.

    amp_dtype, scaler, clip_grad, channels_last: see train_step (defaults: plain float32).
    A non-finite loss raises NonFiniteLossError; with a GradScaler only an infinite *loss* does
    (overflowing fp16 gradients are the scaler's business: it skips that step and scales down). Lesson 06.
    """
    model.train()
    total, seen, start = 0.0, 0, time.perf_counter()
    desc = f"epoch {epoch}" + (f"/{epochs}" if epochs else "")
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch")
    world = dist_info()[1]
    for step, (images, masks) in enumerate(bar, 1):
        images, masks = images.to(device, non_blocking=True), to_device(masks, device)
        try:
            loss = loss_fn(forward(model, images, amp_dtype, channels_last), masks)  # logits (B, 1, H, W) vs masks (B, 1, H, W), in float32
            # the mean over all processes: every process sees the same value, so all stop together on NaN
            value = all_reduce_sum([loss.item()], device)[0] / world
            if not math.isfinite(value):
                raise NonFiniteLossError(_nonfinite_message(value, epoch, step, optimizer))
            _backward_and_step(loss, model, optimizer, scaler, clip_grad)
        except torch.OutOfMemoryError:
            raise OutOfMemoryError(_oom_message(epoch, step, images)) from None
        if scheduler is not None:
            scheduler.step()
        total, seen = total + value * len(images), seen + len(images)
        bar.set_postfix(loss=f"{value:.4f}", img_s=f"{seen * world / (time.perf_counter() - start):.1f}")
    return total / max(seen, 1)


def _nonfinite_message(value: float, epoch: int, step: int, optimizer: torch.optim.Optimizer) -> str:
    lr = optimizer.param_groups[0]["lr"]
    return (f"the loss became {value} at epoch {epoch}, step {step} (learning rate {lr:.3g}); training "
            f"stopped before applying that step, and the checkpoints of earlier epochs are untouched. "
            f"Try a lower learning rate (e.g. --lr {lr / 10:.1g}); if it keeps happening, look for "
            f"images or masks with bad values.")


def validate(model: nn.Module, loader: DataLoader, loss_fn: Callable, device: torch.device | str,
             scores: Any = None, *, amp_dtype: torch.dtype | None = None,
             channels_last: bool = False) -> dict[str, float]:
    """Held-out loss and scores: the task's accumulator (`scores`, default the one of the task the
    model fits: course_utils.tasks.task_for_model) is fed batch by batch, summed over the processes
    of a process group (torchrun: `loader` holds this process's shard), then computed once, so every
    process returns the metrics of the whole held-out set, equal to one process's. For Carvana
    val_dice is the Kaggle metric: the Dice of each image (sigmoid > 0.5), averaged once over all
    images (not per batch). amp_dtype, channels_last: as in training (losses and scores in float32). Lesson 06."""
    scores = scores if scores is not None else task_for_model(model).scores(model)
    with evaluating(model):
        for images, target in loader:
            images, target = images.to(device, non_blocking=True), to_device(target, device)
            out = forward(model, images, amp_dtype, channels_last)
            scores.update(out, target, loss_fn(out, target).item())
    scores.load_sums(all_reduce_sums(scores.sums(), device))
    return scores.compute()


# ---------------------------------------------------------------------------- optimisation


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 1e-4) -> torch.optim.Optimizer:
    """AdamW: Adam's per-weight step sizes (forgiving about lr), with decoupled weight decay. Lessons 06 and 12."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor at `step`: linear 0 -> 1 over warmup_steps, then cosine 1 -> 0.

    Warm-up: Adam's first steps divide by second-moment estimates made from a gradient or two, so
    each weight moves by about the full lr whatever its gradient; on freshly initialised weights a
    full lr at step 0 can throw them far off. Cosine decay: a large lr
    early makes fast progress, a small one at the end settles into a minimum, and the curve
    needs no tuning beyond the run length. Stepped per batch, so even a 3-epoch run is smooth
    (the shape of OneCycle, with a short warm-up). Lesson 06.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.05):
    """LambdaLR over `total_steps` batches with warmup_cosine; `warmup` is a fraction of them. Lesson 06."""
    warmup_steps = max(1, round(warmup * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, warmup_steps))


# ---------------------------------------------------------------------------- the loop


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, config: TrainConfig | None = None, *,
        out: str | Path | None = None, loss_fn: Callable | None = None, resume: str | Path | dict | None = None,
        task: str | Task | None = None, verbose: bool = True, **settings: Any) -> list[dict[str, float]]:
    """Train with AdamW and a warm-up + cosine schedule; returns the history (one dict per epoch).

    config: the run's TrainConfig, taken whole (the CLI passes its own); `settings` override its
        fields by name, so `fit(model, tl, vl, epochs=2, lr=3e-3)` needs no config. fit reads
        epochs, lr, weight_decay, warmup, device, stop_after, progress, amp, channels_last,
        clip_grad and compile; a config given whole is also what the checkpoints store.
    Each epoch: train, score `val_loader` (held-out), print one line, and with `out` write
    last.pt, best.pt (on a new best held-out score) and history.json there.
    task: the data set (a name or course_utils.tasks.Task; default: the one the model fits),
        which says how held-out scores are computed and which one picks best.pt (Carvana: Dice).
    resume: a checkpoint (path or dict) to continue from, at its epoch + 1. With the same
        epochs as the first run the result equals an uninterrupted run; with more, the
        cosine schedule is stretched to the new length from the step reached.
    loss_fn defaults to BCEDiceLoss(). amp, channels_last, clip_grad and compile make a GPU run
    faster or steadier; their defaults change nothing on a CPU.

    >>> cfg = TrainConfig()                                                  # doctest: +SKIP
    >>> history = fit(build_model(cfg), *make_loaders(cfg), cfg)             # doctest: +SKIP
    >>> history[-1]["val_dice"]                                              # doctest: +SKIP

    Lesson 06.
    """
    cfg = _settings(config, settings)
    net, device, step_options = _placed(model, cfg)
    rank, world = dist_info()
    verbose, progress = verbose and rank == 0, cfg.progress and rank == 0
    out = _run_folder(out) if out is not None and rank == 0 else None  # one process writes the run folder
    loss_fn = loss_fn or BCEDiceLoss()
    task = get_task(task) if isinstance(task, str) else (task or task_for_model(model))
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg.epochs * len(train_loader), cfg.warmup)
    stored = cfg.to_dict() if config is not None else {k: getattr(cfg, k) for k in _FIT_SETTINGS}
    image_size = list(cfg.image_size) if config is not None else list(val_loader.dataset[0][0].shape[-2:])
    start, best, history = 0, None, []
    if resume is not None:
        ckpt = restore_training_state(resume, model, optimizer, scheduler, step_options["scaler"])
        start, best, history = ckpt["epoch"], best_score(ckpt), list(ckpt["history"])
        _say(verbose, f"resumed at epoch {start} (best held-out {best_of(ckpt)})" + (
            f"; it is at epoch {start} of {cfg.epochs}: nothing left to train (raise epochs)."
            if start >= cfg.epochs else ""))
    for epoch in range(start + 1, cfg.epochs + 1):
        record = _run_epoch(net, train_loader, val_loader, loss_fn, optimizer, scheduler, device,
                            epoch, cfg.epochs, progress, step_options, task, eval_model=model if world > 1 else net)
        history.append(record)
        is_best = task.is_better(record[task.score], best)
        best = record[task.score] if is_best else best
        if out is not None:
            _write_run_files(out, training_state(model, optimizer, scheduler, step_options["scaler"], epoch=epoch,
                                                 best=best, score=task.score, history=history, config=stored,
                                                 image_size=image_size), is_best)
        _say(verbose, _summary_line(record, cfg.epochs, is_best))
        if cfg.stop_after is not None and cfg.stop_after <= epoch < cfg.epochs:
            where = out / "last.pt" if out is not None else "a checkpoint"
            _say(verbose, f"stopped after epoch {epoch} as asked; continue with --resume {where}")
            break
    return history


def _placed(model: nn.Module, cfg: TrainConfig) -> tuple[nn.Module, torch.device, dict[str, Any]]:
    """The model on its device (channels_last if asked), what to train (DDP-wrapped under torchrun,
    compiled if asked; both share the model's weights) and train_step's precision options."""
    device = pick_device(None if cfg.device is None else str(cfg.device))
    model.to(device)
    amp_dtype, fast_layout = resolve_amp(cfg.amp, device), use_channels_last(cfg.channels_last, device)
    if fast_layout:
        model.to(memory_format=torch.channels_last)
    net = model
    if dist_info()[1] > 1:  # each process's gradients are averaged over all of them in backward
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net = torch.compile(net) if cfg.compile else net  # checkpoints save model's weights, the same tensors
    return net, device, dict(amp_dtype=amp_dtype, scaler=make_scaler(device, amp_dtype),
                             clip_grad=cfg.clip_grad or None, channels_last=fast_layout)


def _run_folder(out: str | Path) -> Path:
    """The run folder, made if missing, without the temp files of a write a kill cut short."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp"):  # the real file next to it is intact
        stale.unlink(missing_ok=True)
    return out


def _say(verbose: bool, line: str) -> None:
    if verbose:
        tqdm.write(line)


# What fit stores as the run's settings when it was given settings instead of a whole TrainConfig.
_FIT_SETTINGS = ("epochs", "lr", "weight_decay", "warmup")


def _settings(config: TrainConfig | None, settings: dict[str, Any]) -> TrainConfig:
    """`config` (default TrainConfig()) with `settings` replacing fields; unknown names are named."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"fit() got {', '.join(map(repr, unknown))}, which TrainConfig does not have; "
                        f"its settings are: {', '.join(sorted(known))}.")
    if isinstance(settings.get("device"), torch.device):
        settings["device"] = str(settings["device"])
    return dataclasses.replace(config or TrainConfig(), **settings)


def _run_epoch(model, train_loader, val_loader, loss_fn, optimizer, scheduler, device, epoch, epochs,
               progress, step_options, task, eval_model=None) -> dict[str, float]:
    """Train and evaluate one epoch; the history record (what history.json stores).

    eval_model: the model to evaluate (default `model`); under DDP the unwrapped module, whose
    BatchNorm statistics are first made rank 0's on every process (each process updated its own)."""
    for part in (train_loader.sampler, train_loader.dataset):  # reproducible order and augmentation
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)
    t0 = time.perf_counter()
    train_loss = train_one_epoch(model, train_loader, loss_fn, optimizer, scheduler, device, epoch,
                                 epochs=epochs, progress=progress, **step_options)
    train_seconds = time.perf_counter() - t0
    eval_model = model if eval_model is None else eval_model
    world = dist_info()[1]
    if world > 1:
        for buffer in eval_model.buffers():
            torch.distributed.broadcast(buffer, src=0)
    metrics = validate(eval_model, val_loader, loss_fn, device, task.scores(eval_model),
                       amp_dtype=step_options["amp_dtype"],
                       channels_last=step_options["channels_last"])
    batch = train_loader.batch_size
    n_images = len(train_loader) * batch if batch and train_loader.drop_last else len(train_loader.sampler)
    n_images *= world
    return dict(epoch=epoch, train_loss=train_loss, **metrics, lr=optimizer.param_groups[0]["lr"],
                seconds=time.perf_counter() - t0, images_per_s=n_images / train_seconds)


def _write_run_files(out: Path, state: dict[str, Any], is_best: bool) -> None:
    """best.pt first, then last.pt (the resume point), then history.json; each atomically."""
    if is_best:
        save_checkpoint(state, out / "best.pt")
    save_checkpoint(state, out / "last.pt")
    text = json.dumps(state["history"], indent=2).encode()
    atomic_write(out / "history.json", lambda f: f.write(text))


_SHOWN = ("val_dice", "val_miou", "val_pixel_acc", "val_abs_rel", "val_delta1", "val_pixel_error", "val_rand_error",
          "val_rand_error_best", "val_rand_threshold")


def _summary_line(r: dict[str, float], epochs: int, is_best: bool) -> str:
    scores = "  ".join(f"{k} {r[k]:.4f}" for k in _SHOWN if k in r)
    return (f"epoch {r['epoch']:>2}/{epochs}  train_loss {r['train_loss']:.4f}  val_loss {r['val_loss']:.4f}  "
            f"{scores}{' *' if is_best else '  '}  {r['seconds']:.1f}s  ({r['images_per_s']:.0f} img/s)")
