"""Train a U-Net on Carvana (or NYU Depth V2): the loop lesson 06 teaches, and the CLI behind it.

    python -m course_utils.train                      # quick profile: toy Carvana on a CPU
    python -m course_utils.train --profile full       # real Carvana on a GPU
    python -m course_utils.train --resume runs/RUN/last.pt   # continue a stopped run
    torchrun --nproc_per_node=4 -m course_utils.train --profile full   # 4 GPUs of one machine
    torchrun --nproc_per_node=2 -m course_utils.train --device cpu      # 2 CPU processes (gloo)

Under torchrun (it sets RANK, WORLD_SIZE and LOCAL_RANK) each process trains a replica wrapped
in DistributedDataParallel on its own GPU (cuda:LOCAL_RANK, nccl) or on the CPU (gloo), on a
disjoint shard of each epoch's shuffle; --batch-size is per process. Validation metrics are
summed over the processes, so they equal one process's; only rank 0 prints and writes files
(course_utils.distributed holds those pieces, course_utils.data.sampling the reproducible order).

The pieces are small functions a notebook can call one by one: `build_model`,
`make_loaders`, `train_one_epoch`, `validate`, `fit`, `load_checkpoint`. A run folder holds
`history.json` (one object per epoch), `last.pt` (every epoch), `best.pt` (best held-out
Dice) and `predictions.png`. Checkpoints are written atomically and hold everything needed to
resume bit-for-bit on CPU: weights, optimizer, schedule, epoch, history and RNG states.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import (atomic_write, check_same_architecture, load_checkpoint, read_checkpoint, rng_states,
                         save_checkpoint, set_rng_states)
from .data.sampling import EpochShuffle, SeededAugment, Shard, ShardedEpochShuffle
from .distributed import all_reduce_sum, dist_info, init_distributed, launched_by_torchrun
from .data.download import DownloadError
from .environment import PROFILES, data_root, pick_device, profile, seed_everything, set_threads  # noqa: F401
from .losses import BCEDiceLoss
from .model import nearest_valid_sizes, output_length
from .segdepth import to_device
from .tasks import TASK_NAMES, Task, get_task, task_for_model, task_of_score
from .tasks.carvana import resolve_data_dir  # noqa: F401 (importable from here, as before)

# ---------------------------------------------------------------------------- configuration

# The TrainConfig defaults are the quick profile (CPU, toy Carvana, small images, a narrow net);
# the full profile (GPU, the Kaggle set at half resolution, the paper's widths) changes these.
FULL_PROFILE: dict[str, Any] = dict(image_size=(640, 960), base_channels=64, batch_size=8, epochs=5, lr=1e-3,
                                    num_workers=min(8, os.cpu_count() or 1), threads=0)

# Each data set (--task) changes some of these for its profiles: see its module in course_utils.tasks.
TASKS = TASK_NAMES

AMP_CHOICES = ("auto", "off", "bf16", "fp16")

# Options that belong to one invocation, not to the run: never inherited from a checkpoint.
_PER_INVOCATION = ("out", "resume", "stop_after", "device", "num_workers", "progress")


@dataclass
class TrainConfig:
    """Every setting of a training run; stored in each checkpoint (lesson 06).

    The defaults are the quick profile; `TrainConfig.for_profile("full")` gives the GPU one.
    data_dir=None means the profile's data set under data_root(): toy_carvana (made on first
    use) for quick, carvana for full.
    """

    profile: str = "quick"
    data_dir: str | None = None
    out: str | None = None
    epochs: int = 8
    batch_size: int = 8
    lr: float = 3e-3  # peak of the warm-up + cosine schedule
    image_size: tuple[int, int] = (64, 96)  # (H, W) the images are resized to
    base_channels: int = 8
    depth: int = 4
    seed: int = 0
    num_workers: int = 0  # 0: load in the training process (fastest for the cached toy set)
    resume: str | None = None
    device: str | None = None  # None: the best available (pick_device)
    val_fraction: float = 0.2  # share of *cars* held out
    weight_decay: float = 1e-4
    warmup: float = 0.05  # share of all steps spent warming the learning rate up
    bce_weight: float = 0.5
    cache: bool = True  # read images from the one-time resized cache (lesson 05's fast loader)
    threads: int = 1  # torch CPU threads for the CLI (0: torch's default); see set_threads
    stop_after: int | None = None  # stop after this epoch, as if interrupted; resume later
    progress: bool = True
    amp: str = "auto"  # mixed precision: auto (bf16/fp16 on CUDA, off elsewhere), off, bf16, fp16
    channels_last: bool | None = None  # None: on for CUDA (faster convolutions there), off elsewhere
    clip_grad: float | None = None  # max gradient norm; None or 0: no clipping (see train_step)
    compile: bool = False  # torch.compile the model (slow first epoch, faster later ones on GPUs)
    task: str = "carvana"  # or "nyuv2" (lesson 08): classes, optionally depth; or "isbi2012" (lesson 10): EM
    padding: str = "same"  # "valid": the paper's unpadded network (isbi2012; image_size is then the input tile)
    batch_norm: bool = True  # False: the paper's network (no BatchNorm; its convs have biases)
    num_classes: int = 13  # nyuv2: 13 or 40
    tasks: str = "seg"  # nyuv2: "seg", or "seg+depth" for the two-headed U-Net
    depth_loss: str = "l1"  # nyuv2 with depth: "l1" (metres) or "silog"
    depth_weight: float = 1.0  # nyuv2 with depth: weight of the depth loss next to cross-entropy
    class_weighting: str = "none"  # nyuv2: "none", "median" (frequency balancing) or "inverse_sqrt"
    weight_map: bool = False  # isbi2012: weight each pixel's loss by the paper's weight map (w0 10, sigma 5)
    held_out: tuple[int, ...] = (25, 26, 27, 28, 29)  # isbi2012: training slices held out, never trained on
    crops_per_slice: int = 8  # isbi2012: random training tiles drawn from each training slice per epoch

    @classmethod
    def for_profile(cls, name: str | None = None, task: str = "carvana") -> "TrainConfig":
        """The defaults of profile `name` (default: course_utils.profile(task): full with a GPU and the
        task's real data) for `task`."""
        name = name or profile(task)
        if name not in PROFILES:
            raise ValueError(f"profile {name!r} is not one of {PROFILES}.")
        if task not in TASKS:
            raise ValueError(f"task {task!r} is not one of {TASKS}.")
        settings = dict(FULL_PROFILE) if name == "full" else {}
        return cls(profile=name, task=task, **(settings | get_task(task).profiles.get(name, {})))

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, not tuples), so it fits JSON and weights_only checkpoints."""
        d = dataclasses.asdict(self)
        d["image_size"], d["held_out"] = list(self.image_size), list(self.held_out)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of to_dict; keys this version does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        for key in ("image_size", "held_out"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def validate(self) -> "TrainConfig":
        """Raise a ValueError that says what to change when a setting cannot work."""
        if self.profile not in PROFILES:
            raise ValueError(f"profile {self.profile!r} is not one of {PROFILES}.")
        for name in ("epochs", "batch_size", "base_channels", "depth"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}.")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1 (e.g. 0.2), got {self.val_fraction}.")
        if self.num_workers < 0 or self.threads < 0:
            raise ValueError(f"num_workers and threads must be 0 or more, got {self.num_workers}, {self.threads}.")
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"amp must be one of {AMP_CHOICES}, got {self.amp!r}.")
        if self.clip_grad is not None and not (self.clip_grad >= 0 and math.isfinite(self.clip_grad)):
            raise ValueError(f"clip_grad must be a positive number (or 0 for no clipping), got {self.clip_grad}.")
        if self.padding not in ("same", "valid"):
            raise ValueError(f"padding must be same or valid, got {self.padding!r}.")
        check_image_size(self.image_size, self.depth, self.padding)
        get_task(self.task).check(self)
        return self


def check_image_size(image_size: tuple[int, int], depth: int, padding: str = "same") -> None:
    """A same-padded U-Net of `depth` halves each side `depth` times: sides must divide by 2**depth.
    A valid one also loses pixels at every conv: its input tile must be one of valid_input_sizes."""
    m = 2**depth
    if len(image_size) != 2 or any(int(s) < 1 for s in image_size):
        raise ValueError(f"image size must be two positive numbers H W, got {tuple(image_size)}.")
    if padding == "valid":
        for s in image_size:
            if output_length(int(s), depth, "valid") is None:
                near = " or ".join(str(n) for n in nearest_valid_sizes(int(s), depth, "valid") if n is not None)
                raise ValueError(f"the valid network of depth {depth} cannot take a tile side of {s}; nearest that "
                                 f"work: {near} (the paper's tile is 572).")
        return
    if all(int(s) % m == 0 for s in image_size):
        return
    below = [max(m, s // m * m) for s in image_size]
    above = [(s // m + 1) * m if s % m else s for s in image_size]
    raise ValueError(
        f"image size {image_size[0]}x{image_size[1]} does not work with depth {depth}: each side must be "
        f"a multiple of 2**{depth} = {m}. Nearest that work: {below[0]}x{below[1]} or {above[0]}x{above[1]}."
    )


# ---------------------------------------------------------------------------- model and data


def build_model(cfg: TrainConfig) -> nn.Module:
    """The U-Net of the config's task (course_utils.tasks): Carvana one logit per pixel (car vs
    background); NYUv2 num_classes logits, plus a depth map for tasks="seg+depth"; ISBI 2012 a
    greyscale U-Net with one logit (cell vs membrane), same or valid padding."""
    return get_task(cfg.task).build_model(cfg)


def make_loaders(cfg: TrainConfig) -> tuple[DataLoader, DataLoader]:
    """Train and validation loaders of the config's task. Carvana is split by car (the validation
    cars are never trained on); NYUv2 holds out the last train frames, whole scenes
    (course_utils.segdepth); ISBI 2012 holds out slices 25-29 (cfg.held_out).

    In a process group (torchrun) each loader holds this process's shard (ShardedEpochShuffle,
    Shard) and batch_size is per process."""
    train_ds, val_ds = get_task(cfg.task).datasets(cfg)
    train_ds = SeededAugment(train_ds, cfg.seed)
    # persistent workers skip re-forking (and re-opening the cache) every epoch; the epoch reaches
    # them through EpochShuffle's (epoch, index) pairs, so augmentation stays reproducible
    common = dict(num_workers=cfg.num_workers, pin_memory=torch.cuda.is_available(),
                  persistent_workers=cfg.num_workers > 0)
    rank, world = dist_info()
    sampler = EpochShuffle(train_ds, cfg.seed) if world == 1 else ShardedEpochShuffle(train_ds, cfg.seed, rank, world)
    train = DataLoader(train_ds, cfg.batch_size, sampler=sampler, drop_last=len(sampler) > cfg.batch_size, **common)
    val = DataLoader(val_ds, cfg.batch_size, sampler=Shard(val_ds, rank, world) if world > 1 else None,
                     shuffle=False, **common)
    return train, val


# ---------------------------------------------------------------------------- speed options


def resolve_amp(amp: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device`, or None for full float32 (lesson 06).

    auto: bfloat16 on a CUDA GPU that supports it (Ampere and later: float32's range, so no
    loss scaling), float16 on older CUDA GPUs (needs a GradScaler), and off on CPU and MPS:
    there the gain depends on the processor (benchmarks/train_step.py measures it; bf16 was
    1.6x faster on our 2-core CPU) and float32 keeps the course's CPU results exactly
    reproducible. bf16 and fp16 force that type on any device.
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}.")
    kind = torch.device(device).type
    cuda_bf16 = kind == "cuda" and torch.cuda.is_bf16_supported()
    if amp == "auto":
        return (torch.bfloat16 if cuda_bf16 else torch.float16) if kind == "cuda" else None
    if amp == "bf16" and kind == "cuda" and not cuda_bf16:
        raise ValueError("this GPU has no bfloat16 support; use --amp fp16 (with loss scaling) or --amp off.")
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def make_scaler(device: torch.device | str, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for float16: its small range turns small gradients into 0
    unless the loss is multiplied up first (and the gradients divided back before the step)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=amp_dtype == torch.float16)


def use_channels_last(channels_last: bool | None, device: torch.device | str) -> bool:
    """None: channels_last on CUDA (cuDNN's fast convolution kernels want it), off elsewhere."""
    return torch.device(device).type == "cuda" if channels_last is None else bool(channels_last)


def forward(model: nn.Module, images: torch.Tensor, amp_dtype: torch.dtype | None = None,
            channels_last: bool = False) -> torch.Tensor:
    """The model's logits in float32: computed under autocast(amp_dtype), images in channels_last
    if asked. Losses and metrics then work in float32, where sums over many pixels stay exact."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(images.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        logits = model(images)
    if isinstance(logits, dict):  # the two-headed U-Net (lesson 08)
        return {k: v.float() for k, v in logits.items()}
    return logits.float()


def train_step(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, loss_fn: Callable,
               optimizer: torch.optim.Optimizer, *, amp_dtype: torch.dtype | None = None,
               scaler: torch.amp.GradScaler | None = None, clip_grad: float | None = None,
               channels_last: bool = False) -> torch.Tensor:
    """One optimisation step on a batch already on the model's device; returns the loss (a tensor).

    Forward under autocast (amp_dtype), the loss in float32, backward through the scaler
    (fp16), optional gradient clipping to norm `clip_grad` (after unscaling, so the limit is
    in true gradient units), then the step (the scaler skips it if gradients overflowed).
    The loss is returned before the step, unchecked: the caller decides what non-finite means.
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


# ---------------------------------------------------------------------------- one epoch


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before the bad step was applied."""


class OutOfMemoryError(RuntimeError):
    """The GPU ran out of memory in a training step; the message says what to lower."""


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
    (overflowing fp16 gradients are the scaler's business: it skips that step and scales down).
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


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, loss_fn: Callable, device: torch.device | str,
             scores: Any = None, *, amp_dtype: torch.dtype | None = None,
             channels_last: bool = False) -> dict[str, float]:
    """Held-out loss and scores: the task's accumulator (`scores`, default the one of the task the
    model fits: course_utils.tasks.task_for_model) is fed batch by batch, summed over the processes
    of a process group (torchrun: `loader` holds this process's shard), then computed once, so every
    process returns the metrics of the whole held-out set, equal to one process's. For Carvana
    val_dice is the Kaggle metric: the Dice of each image (sigmoid > 0.5), averaged once over all
    images (not per batch). amp_dtype, channels_last: as in training (losses and scores in float32)."""
    model.eval()
    scores = scores if scores is not None else task_for_model(model).scores(model)
    for images, target in loader:
        images, target = images.to(device, non_blocking=True), to_device(target, device)
        out = forward(model, images, amp_dtype, channels_last)
        scores.update(out, target, loss_fn(out, target).item())
    scores.load_sums(all_reduce_sum(scores.sums(), device))
    return scores.compute()


# ---------------------------------------------------------------------------- optimisation


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 1e-4) -> torch.optim.Optimizer:
    """AdamW: Adam's per-weight step sizes (forgiving about lr), with decoupled weight decay."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor at `step`: linear 0 -> 1 over warmup_steps, then cosine 1 -> 0.

    Warm-up: Adam's first steps use poor variance estimates and BatchNorm statistics are still
    settling, so a full lr at step 0 can throw the weights far off. Cosine decay: a large lr
    early makes fast progress, a small one at the end settles into a minimum, and the curve
    needs no tuning beyond the run length. Stepped per batch, so even a 3-epoch run is smooth
    (the shape of OneCycle, with a short warm-up).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.05):
    """LambdaLR over `total_steps` batches with warmup_cosine; `warmup` is a fraction of them."""
    warmup_steps = max(1, round(warmup * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, warmup_steps))


# ---------------------------------------------------------------------------- the loop


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, *, epochs: int, lr: float,
        device: torch.device | str | None = None, out: str | Path | None = None, loss_fn: Callable | None = None,
        weight_decay: float = 1e-4, warmup: float = 0.05, resume: str | Path | dict | None = None,
        config: dict[str, Any] | None = None, stop_after: int | None = None, progress: bool = True,
        verbose: bool = True, amp: str = "auto", channels_last: bool | None = None,
        clip_grad: float | None = None, compile: bool = False, task: str | Task | None = None) -> list[dict[str, float]]:
    """Train for `epochs` with AdamW and a warm-up + cosine schedule; returns the history.

    Each epoch: train, evaluate on `val_loader` (held-out scores), print one line, and with
    `out` write last.pt, best.pt (on a new best held-out score) and history.json there.
    task: the data set (a name or course_utils.tasks.Task; default: the one the model fits),
        which says how held-out scores are computed and which one picks best.pt (Carvana: Dice).
    resume: a checkpoint (path or dict) to continue from, at its epoch + 1. With the same
        epochs as the first run the result equals an uninterrupted run; with more, the
        cosine schedule is stretched to the new length from the step reached.
    stop_after: stop after that epoch as if interrupted (resume later with the same epochs).
    config: what to store as the run's settings (the CLI passes TrainConfig.to_dict()).
    device defaults to the best available; loss_fn to BCEDiceLoss(). Lesson 06 teaches it.
    amp ("auto", "off", "bf16", "fp16"; see resolve_amp), channels_last (None: on for CUDA),
    clip_grad (max gradient norm, None: off) and compile (torch.compile) make it faster or
    steadier; the defaults change nothing on a CPU. The fp16 GradScaler is checkpointed too.

    >>> cfg = TrainConfig()                                                  # doctest: +SKIP
    >>> train_loader, val_loader = make_loaders(cfg)                         # doctest: +SKIP
    >>> history = fit(build_model(cfg), train_loader, val_loader, epochs=2, lr=3e-3)  # doctest: +SKIP
    >>> history[-1]["val_dice"]                                              # doctest: +SKIP
    """
    device = pick_device(device) if not isinstance(device, torch.device) else device
    model.to(device)
    amp_dtype, fast_layout = resolve_amp(amp, device), use_channels_last(channels_last, device)
    if fast_layout:
        model.to(memory_format=torch.channels_last)
    rank, world = dist_info()
    verbose, progress = verbose and rank == 0, progress and rank == 0
    out = out if rank == 0 else None  # one process writes the run folder
    net = model
    if world > 1:  # each process's gradients are averaged over all of them in backward
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net = torch.compile(net) if compile else net  # shares model's weights; checkpoints save model's
    step_options = dict(amp_dtype=amp_dtype, scaler=make_scaler(device, amp_dtype), clip_grad=clip_grad,
                        channels_last=fast_layout)
    loss_fn = loss_fn or BCEDiceLoss()
    task = get_task(task) if isinstance(task, str) else (task or task_for_model(model))
    optimizer = make_optimizer(model, lr, weight_decay)
    scheduler = make_scheduler(optimizer, epochs * len(train_loader), warmup)
    config = config or dict(epochs=epochs, lr=lr, weight_decay=weight_decay, warmup=warmup)
    image_size = config.get("image_size") or list(val_loader.dataset[0][0].shape[-2:])
    start, best, history = 0, None, []
    if resume is not None:
        start, best, history = _restore(resume, model, optimizer, scheduler, verbose, step_options["scaler"])
        if start >= epochs and verbose:
            tqdm.write(f"the checkpoint is at epoch {start} of {epochs}: nothing left to train (raise epochs).")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.tmp"):  # a write cut short by a kill; the real file is intact
            stale.unlink(missing_ok=True)
    for epoch in range(start + 1, epochs + 1):
        record = _run_epoch(net, train_loader, val_loader, loss_fn, optimizer, scheduler, device,
                            epoch, epochs, progress, step_options, task, eval_model=model if world > 1 else net)
        history.append(record)
        score = record[task.score]
        is_best = task.is_better(score, best)
        best = score if is_best else best
        if out is not None:
            state = dict(model=model.state_dict(), model_config=dict(getattr(model, "config", {})),
                         optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), epoch=epoch,
                         best_score=best, score=task.score, history=history, config=config, image_size=list(image_size),
                         rng=rng_states(), scaler=step_options["scaler"].state_dict())
            if state["score"] == "val_dice":
                state["best_dice"] = best  # the name lessons 06-07 read
            _write_run_files(out, state, is_best)
        if verbose:
            tqdm.write(_summary_line(record, epochs, is_best))
        if stop_after is not None and stop_after <= epoch < epochs:
            if verbose:
                where = out / "last.pt" if out is not None else "a checkpoint"
                tqdm.write(f"stopped after epoch {epoch} as asked; continue with --resume {where}")
            break
    return history


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


def _restore(resume, model, optimizer, scheduler, verbose, scaler=None) -> tuple[int, float, list]:
    """Load model, optimizer, schedule, GradScaler and RNG states; returns (epoch, best_dice, history).

    The scaler's state (its current loss scale) is restored only when both runs use one (fp16):
    a run resumed on a device with another precision starts its own scale."""
    ckpt = resume if isinstance(resume, dict) else read_checkpoint(resume)
    check_same_architecture(ckpt, model, resume if not isinstance(resume, dict) else "checkpoint")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and scaler.is_enabled() and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    set_rng_states(ckpt["rng"])
    if verbose:
        tqdm.write(f"resumed at epoch {ckpt['epoch']} (best held-out {best_of(ckpt)})")
    return ckpt["epoch"], ckpt.get("best_score", ckpt.get("best_dice")), list(ckpt["history"])


def best_of(ckpt: dict[str, Any]) -> str:
    """'Dice 0.9773', 'mIoU 0.4120' or 'Rand error 0.0812': the held-out score a checkpoint was chosen by."""
    name = task_of_score(ckpt.get("score", "val_dice")).score_label
    return f"{name} {ckpt.get('best_score', ckpt.get('best_dice')):.4f}"


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


# ---------------------------------------------------------------------------- CLI


def run(cfg: TrainConfig) -> Path:
    """Everything the CLI does for a validated config; returns the run folder."""
    threads = torch.get_num_threads()
    set_threads(cfg.threads)
    try:
        return _run(cfg)
    finally:
        torch.set_num_threads(threads)  # a notebook calling run() keeps its own setting


def _run(cfg: TrainConfig) -> Path:
    if not launched_by_torchrun():
        return _run_one(cfg, pick_device(cfg.device))
    device = init_distributed(pick_device(cfg.device))
    try:
        out = _run_one(cfg, device)
        torch.distributed.barrier()  # rank 0 may still be writing files: leave the group together
        return out
    finally:
        torch.distributed.destroy_process_group()


def _run_one(cfg: TrainConfig, device: torch.device) -> Path:
    """The run of one process (of several under torchrun: then only rank 0 prints and writes)."""
    rank, world = dist_info()
    seed_everything(cfg.seed)  # the same initial weights everywhere (DDP also copies rank 0's)
    if rank > 0:  # rank 0 first: it may draw the toy set or build the loader cache
        torch.distributed.barrier()
    train_loader, val_loader = make_loaders(cfg)  # first: a data problem stops us before anything is written
    if rank == 0 and world > 1:
        torch.distributed.barrier()
    out = Path(cfg.out) if cfg.out else default_run_dir(cfg.profile)
    amp_dtype = resolve_amp(cfg.amp, device)
    say = print if rank == 0 else (lambda *a, **k: None)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if world > 1:
        say(f"{world} processes (torchrun, {torch.distributed.get_backend()}): batch {cfg.batch_size} per "
            f"process, {cfg.batch_size * world} per step", flush=True)
    say(f"run folder: {out}   profile: {cfg.profile}   device: {device.type}   precision: "
          f"{str(amp_dtype or torch.float32).removeprefix('torch.')}"
          f"{'   channels_last' if use_channels_last(cfg.channels_last, device) else ''}"
          f"{'   compiled' if cfg.compile else ''}", flush=True)
    task = get_task(cfg.task)
    say(f"data: {len(train_loader.dataset)} train / {len(val_loader.dataset)} held-out images "
          f"({task.split_text(cfg)}) at {cfg.image_size[0]}x{cfg.image_size[1]}", flush=True)
    model = build_model(cfg)
    loss_fn = task.loss(cfg, train_loader.dataset)
    fit(model, train_loader, val_loader, epochs=cfg.epochs, lr=cfg.lr, device=device, out=out,
        loss_fn=loss_fn, weight_decay=cfg.weight_decay, warmup=cfg.warmup,
        resume=cfg.resume, config=cfg.to_dict(), stop_after=cfg.stop_after, progress=cfg.progress,
        amp=cfg.amp, channels_last=cfg.channels_last, clip_grad=cfg.clip_grad or None, compile=cfg.compile,
        task=task)
    if os.environ.get("UNET_COURSE_TEST_DUMP_DIR"):  # tests: every process's final weights
        torch.save(model.state_dict(), Path(os.environ["UNET_COURSE_TEST_DUMP_DIR"]) / f"rank{rank}.pt")
    if rank == 0 and (out / "best.pt").is_file():
        model, ckpt = load_checkpoint(out / "best.pt", model)
        files = "history.json, last.pt, best.pt"
        figure = task.figure(model, val_loader.dataset, out / "predictions.png", device)
        if figure is not None:
            files += f", {figure.name}"
        print(f"best held-out {best_of(ckpt)} (epoch {ckpt['epoch']}); wrote {out}/: {files}")
    return out


# Settings that change how a run is carried out, not the model it ends with (data_dir: the same
# set may sit in another folder).
_NOT_THE_MODEL = (*_PER_INVOCATION, "threads", "data_dir")


def load_or_train(cfg: TrainConfig | None = None, *, name: str | None = None,
                  verbose: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """The course's trained U-Net for the lessons after 06: (model, checkpoint).

    Loads data_root()/runs/<name>-<profile>/best.pt (name: default cfg.task) when an earlier lesson trained it with the
    same settings (cfg, default the profile's); otherwise trains it once with `run(cfg)` into
    that folder, so lessons 07-09 share one model instead of each training their own.
    """
    cfg = cfg or TrainConfig.for_profile()
    out = data_root() / "runs" / f"{name or cfg.task}-{cfg.profile}"
    best = out / "best.pt"
    wanted = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_THE_MODEL}
    resume = None
    if best.is_file() and (out / "last.pt").is_file():
        last = read_checkpoint(out / "last.pt")
        saved = {k: v for k, v in last.get("config", {}).items() if k not in _NOT_THE_MODEL}
        if saved == wanted and last["history"][-1]["epoch"] >= cfg.epochs:
            model, ckpt = load_checkpoint(best)
            if verbose:
                print(f"loaded {best}: held-out {best_of(ckpt)}, trained by an earlier lesson")
            return model, ckpt
        if saved == wanted:  # interrupted earlier: carry on from its last epoch
            resume = str(out / "last.pt")
    if resume is None and out.exists():
        shutil.rmtree(out)  # trained with other settings: start again
    if verbose and resume:
        print(f"resuming the interrupted training in {out}")
    elif verbose:
        print(f"training once into {out} ({_config_summary(cfg)}); later lessons load it")
    run(dataclasses.replace(cfg, out=str(out), resume=resume, stop_after=None, progress=False))
    return load_checkpoint(best)


def _config_summary(c: TrainConfig) -> str:
    return (f"{c.image_size[0]}x{c.image_size[1]} images, base_channels {c.base_channels}, depth {c.depth}, "
            f"batch {c.batch_size}, {c.epochs} epochs, lr {c.lr:g}")


def default_run_dir(profile_name: str) -> Path:
    """runs/<profile>-<YYYYmmdd-HHMMSS> under the current folder (a suffix if it exists)."""
    base = Path("runs") / f"{profile_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 1
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


def _profile_summary(name: str, task: str = "carvana") -> str:
    return _config_summary(TrainConfig.for_profile(name, task))


def profiles_help() -> str:
    """The --help epilog: what each profile trains, and what to expect from it."""
    return f"""\
profiles (--profile; default course_utils.profile(): full with a GPU and the real data, else quick):
  quick  the toy Carvana under the data root (made on first use, 40 cars x 16 angles),
         {_profile_summary("quick")}, 1 CPU thread.
         Measured: held-out Dice 0.977 in about 65 s on 2 quiet CPU cores (70-100 s on busy
         ones), drawing the toy set included; with one seed, the same numbers on every run.
  full   the Kaggle set in <data root>/carvana (python -m course_utils.data download carvana),
         {_profile_summary("full")}, up to 8 loader workers.
         Expectations, not measured here: forward + backward cost 2.7 TFLOP per image, so
         a few minutes per epoch on an A100/H100-class GPU (far longer on a T4); batch 8
         needs about 30 GB of GPU memory in float32, less with the mixed precision that
         --amp auto turns on for CUDA (on a 16 GB GPU try --batch-size 2);
         held-out Dice about 0.99 after a few epochs.

NYU Depth V2 (--task nyuv2, lesson 08): 13 or 40 classes (--num-classes), and depth with the
two-headed U-Net (--tasks seg+depth); best.pt is chosen by held-out mIoU.
  quick  the toy rooms under the data root (made on first use, 200 frames at 96x128),
         {_profile_summary("quick", "nyuv2")}.
         Measured on 2 CPU cores: about 50 s; held-out mIoU 0.33-0.36 (seeds 0, 1),
         pixel accuracy 0.84-0.86 for classes only.
  full   the labeled set in <data root>/nyuv2 (python -m course_utils.data download nyuv2),
         {_profile_summary("full", "nyuv2")}. Not measured here.

ISBI 2012 EM membranes (--task isbi2012, lesson 10): the paper's own data, 30 greyscale slices of
512x512 (24 MB, downloaded on first use); slices 25-29 held out; best.pt by held-out Rand error.
  quick  {_profile_summary("quick", "isbi2012")} (random tiles),
         same padding, the paper's weight map, elastic deformation, flips and rotations.
         Measured on 2 CPU cores: 3 min 21 s; held-out Rand error 0.149 and pixel error 0.126
         at threshold 0.5 (0.083 at its best threshold).
  full   {_profile_summary("full", "isbi2012")},
         the valid network with the paper's weight map. Not measured here.

Options not given take the profile's defaults. A run folder (--out, default
runs/<profile>-<date>-<time>) gets history.json, last.pt, best.pt and predictions.png.
A stopped run continues with the same command plus --resume RUN/last.pt (options left
out are then taken from the checkpoint).

Many GPUs (or CPU processes): torchrun --nproc_per_node=N -m course_utils.train [options]
trains with DistributedDataParallel; --batch-size is per process, so a step sees N x that.
"""


def get_args_parser() -> argparse.ArgumentParser:
    """The CLI's options; each defaults to the profile's value (argparse.SUPPRESS = 'not given')."""
    p = argparse.ArgumentParser(
        prog="python -m course_utils.train", epilog=profiles_help(), argument_default=argparse.SUPPRESS,
        description="Train a U-Net on Carvana or NYU Depth V2 (toy or real): prints the held-out score each epoch and "
                    "writes a run folder.", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=PROFILES, help="quick or full (see below)")
    p.add_argument("--data-dir", help="a folder in the Kaggle Carvana layout (default: the profile's, under the data root)")
    p.add_argument("--out", help="run folder (default runs/<profile>-<date>-<time>; with --resume, the checkpoint's folder)")
    p.add_argument("--epochs", type=int, help="total epochs, counting those before a resume")
    p.add_argument("--batch-size", type=int, help="images per step; under torchrun per process "
                   "(N processes: N x this per step)")
    p.add_argument("--lr", type=float, help="peak learning rate of AdamW's warm-up + cosine schedule")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="training size; multiples of 2**depth")
    p.add_argument("--base-channels", type=int, help="channels of the first U-Net level (paper: 64)")
    p.add_argument("--depth", type=int, help="down (and up) steps of the U-Net (paper: 4)")
    p.add_argument("--seed", type=int, help="seeds the split, the weights, the data order and augmentation (default 0)")
    p.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    p.add_argument("--threads", type=int, help="torch CPU threads (quick: 1, robust on a busy machine; 0: one per core)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its last.pt")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--val-fraction", type=float, help="share of cars held out for validation (default 0.2)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 1e-4)")
    p.add_argument("--stop-after", type=int, metavar="EPOCH", help="stop after this epoch (e.g. to spread a run over sessions)")
    p.add_argument("--amp", choices=AMP_CHOICES, help="mixed precision (default auto: bf16 on CUDA GPUs "
                   "that have it, else fp16 with loss scaling; off on CPU and MPS)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="NHWC memory layout (default: on for CUDA, off elsewhere)")
    p.add_argument("--clip-grad", type=float, metavar="NORM",
                   help="clip the gradient norm to NORM (default: off; 1.0 is a common choice)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (default off)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    nyu = p.add_argument_group("NYU Depth V2 (lesson 08)")
    nyu.add_argument("--task", choices=TASKS, help="carvana (binary masks, default), nyuv2 (classes, depth) or "
                     "isbi2012 (the paper's EM membranes, lesson 10)")
    nyu.add_argument("--num-classes", type=int, choices=(13, 40), help="nyuv2 labelling (default 13)")
    nyu.add_argument("--tasks", choices=("seg", "seg+depth"), help="nyuv2: classes only, or classes and depth "
                     "with the two-headed U-Net (default seg)")
    nyu.add_argument("--depth-loss", choices=("l1", "silog"), help="nyuv2 depth loss (default l1, in metres)")
    nyu.add_argument("--depth-weight", type=float, help="nyuv2: weight of the depth loss (default 1)")
    nyu.add_argument("--class-weighting", choices=("none", "median", "inverse_sqrt"),
                     help="nyuv2: cross-entropy class weights from training label frequencies (default none)")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction,
                   help="BatchNorm after each conv (default on; --no-batch-norm is the paper's network)")
    em = p.add_argument_group("ISBI 2012 EM membranes (lesson 10)")
    em.add_argument("--padding", choices=("same", "valid"), help="valid: the paper's unpadded network; --image-size "
                    "is then its input tile (paper: 572 572). Default same (full profile of isbi2012: valid)")
    em.add_argument("--weight-map", action=argparse.BooleanOptionalAction,
                    help="weight the loss by the paper's map (w0 10, sigma 5) that stresses membranes between "
                         "touching cells (isbi2012 default: on)")
    em.add_argument("--held-out", type=int, nargs="+", metavar="SLICE",
                    help="training slices (0-29) held out, never trained on (default 25 26 27 28 29)")
    em.add_argument("--crops-per-slice", type=int, metavar="N", help="random tiles drawn from each training "
                    "slice per epoch")
    return p


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Profile defaults, then (with --resume) the checkpoint's settings, then what argv gives."""
    parser = get_args_parser()
    given = vars(parser.parse_args(argv))
    for key in ("image_size", "held_out"):
        if key in given:
            given[key] = tuple(given[key])
    given.setdefault("progress", sys.stderr.isatty())  # no bars in logs and CI
    try:
        base = TrainConfig.for_profile(given.get("profile"), given.get("task", "carvana"))
        if "resume" in given:
            saved = read_checkpoint(given["resume"]).get("config", {})
            base = TrainConfig.for_profile(given.get("profile") or saved.get("profile"),
                                           given.get("task") or saved.get("task", "carvana"))
            inherited = {k: v for k, v in saved.items() if k not in _PER_INVOCATION}
            base = TrainConfig.from_dict(base.to_dict() | inherited)
            given.setdefault("out", str(Path(given["resume"]).parent))
        return dataclasses.replace(base, **given).validate()
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))


def main(argv: list[str] | None = None) -> int:
    """The CLI: `python -m course_utils.train [options]`; returns the exit status."""
    cfg = parse_config(argv)
    cfg.out = cfg.out or str(default_run_dir(get_task(cfg.task).run_prefix + cfg.profile))
    if "matplotlib.pyplot" not in sys.modules:  # not inside a notebook: never open a window
        import matplotlib

        matplotlib.use("Agg")
    try:
        run(cfg)
    except (OSError, ValueError, NonFiniteLossError, OutOfMemoryError, DownloadError) as e:  # missing data, bad files, ...
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with the same command plus --resume {Path(cfg.out) / 'last.pt'}",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
