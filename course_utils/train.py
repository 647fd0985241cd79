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

This module is the command line and what it assembles from a TrainConfig (`build_model`,
`make_loaders`, `run`, `load_or_train`); the settings are in course_utils.config, the loop
(`train_one_epoch`, `validate`, `fit`) in course_utils.engine, precision in course_utils.precision. A run folder holds
`history.json` (one object per epoch), `last.pt` (every epoch), `best.pt` (best held-out
Dice) and `predictions.png`. Checkpoints are written atomically and hold everything needed to
resume bit-for-bit on CPU: weights, optimizer, schedule, epoch, history and RNG states.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .checkpoint import best_of, load_checkpoint, read_checkpoint
from .config import NOT_THE_MODEL, PER_INVOCATION, TASKS, TrainConfig
from .data.download import DownloadError
from .data.sampling import EpochShuffle, SeededAugment, Shard, ShardedEpochShuffle
from .distributed import dist_info, init_distributed, launched_by_torchrun
from .engine import NonFiniteLossError, OutOfMemoryError, fit
from .environment import (PROFILES, data_root, is_writable, pick_device, seed_everything, set_threads,
                          set_work_root, work_root)
from .precision import AMP_CHOICES, resolve_amp, use_channels_last
from .tasks import get_task

# ---------------------------------------------------------------------------- model and data


def build_model(cfg: TrainConfig) -> nn.Module:
    """The U-Net of the config's task (course_utils.tasks): Carvana one logit per pixel (car vs
    background); NYUv2 num_classes logits, plus a depth map for tasks="seg+depth"; ISBI 2012 a
    greyscale U-Net with one logit (cell vs membrane), same or valid padding. Lesson 06."""
    return get_task(cfg.task).build_model(cfg)


def make_loaders(cfg: TrainConfig) -> tuple[DataLoader, DataLoader]:
    """Train and validation loaders of the config's task. Carvana is split by car (the validation
    cars are never trained on); NYUv2 holds out the last train frames, whole scenes
    (course_utils.segdepth); ISBI 2012 holds out slices 25-29 (cfg.held_out).

    In a process group (torchrun) each loader holds this process's shard (ShardedEpochShuffle,
    Shard) and batch_size is per process. Lesson 06."""
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


def model_summary(model: nn.Module) -> str:
    """One line for the run's log: which network, and how many weights it trains. Lesson 06."""
    c = getattr(model, "config", {})
    kind = (f"EncoderUNet, {c['encoder']} encoder" if c.get("kind") == "encoder" else
            f"{type(model).__name__}, base_channels {c.get('base_channels')}, depth {c.get('depth')}, {c.get('padding')}")
    return f"{kind}, {sum(p.numel() for p in model.parameters() if p.requires_grad):,} weights"


# ---------------------------------------------------------------------------- CLI


def run(cfg: TrainConfig) -> Path:
    """Everything the CLI does for a validated config; returns the run folder. Lesson 06."""
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
    say(f"model: {model_summary(model)}", flush=True)
    loss_fn = task.loss(cfg, train_loader.dataset)
    fit(model, train_loader, val_loader, cfg, out=out, loss_fn=loss_fn, resume=cfg.resume, task=task, device=str(device))
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


def load_or_train(cfg: TrainConfig | None = None, *, name: str | None = None,
                  verbose: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """The course's trained U-Net for the lessons after 06: (model, checkpoint).

    Loads work_root()/runs/<name>-<profile>/best.pt (name: default cfg.task) when an earlier lesson trained it with the
    same settings (cfg, default the profile's); else the same run under a read-only data root (one a teacher
    trained once for a whole class, see teaching/class_server.md); otherwise trains it once with `run(cfg)` into
    the work root, so the later lessons share one model instead of each training their own. The work root
    is the data root when that is writable (environment.work_root). Lessons 07-11 and 13.
    """
    cfg = cfg or TrainConfig.for_profile()
    run_name = f"{name or cfg.task}-{cfg.profile}"
    out = work_root() / "runs" / run_name
    wanted = {k: v for k, v in cfg.to_dict().items() if k not in NOT_THE_MODEL}
    for folder in dict.fromkeys((out, data_root() / "runs" / run_name)):  # ours first, then a shared one
        if _finished(folder, wanted, cfg.epochs):
            model, ckpt = load_checkpoint(folder / "best.pt")
            if verbose:
                print(f"loaded {folder / 'best.pt'}: held-out {best_of(ckpt)}, trained by an earlier lesson")
            return model, ckpt
    resume = None
    if (out / "best.pt").is_file() and (out / "last.pt").is_file():
        saved = {k: v for k, v in read_checkpoint(out / "last.pt").get("config", {}).items() if k not in NOT_THE_MODEL}
        if saved == wanted:  # interrupted earlier: carry on from its last epoch
            resume = str(out / "last.pt")
    if resume is None and out.exists():
        shutil.rmtree(out)  # trained with other settings: start again
    if verbose and resume:
        print(f"resuming the interrupted training in {out}")
    elif verbose:
        print(f"training once into {out} ({cfg.summary()}); later lessons load it")
    run(dataclasses.replace(cfg, out=str(out), resume=resume, stop_after=None, progress=False))
    return load_checkpoint(out / "best.pt")


def _finished(folder: Path, wanted: dict[str, Any], epochs: int) -> bool:
    """True when folder holds a run with these settings (all but NOT_THE_MODEL) trained for all its epochs."""
    if not ((folder / "best.pt").is_file() and (folder / "last.pt").is_file()):
        return False
    last = read_checkpoint(folder / "last.pt")
    saved = {k: v for k, v in last.get("config", {}).items() if k not in NOT_THE_MODEL}
    return saved == wanted and last["history"][-1]["epoch"] >= epochs


def default_run_dir(profile_name: str) -> Path:
    """runs/<profile>-<YYYYmmdd-HHMMSS> under the current folder (a suffix if it exists); under the work
    root instead when the current folder is read-only or inside a read-only data root. Lesson 06."""
    base = Path("runs") if is_writable(Path.cwd()) else work_root() / "runs"
    base = base / f"{profile_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 1
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


def _profile_summary(name: str, task: str = "carvana") -> str:
    return TrainConfig.for_profile(name, task).summary()


def profiles_help() -> str:
    """The --help epilog: what each profile trains, and what to expect from it. Lesson 06."""
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

NYU Depth V2 (--task nyuv2, lessons 10 and 11): 13 or 40 classes (--num-classes), and depth with the
two-headed U-Net (--tasks seg+depth); best.pt is chosen by held-out mIoU.
  quick  the toy rooms under the data root (made on first use, 200 frames at 96x128),
         {_profile_summary("quick", "nyuv2")}.
         Measured on 2 CPU cores: about 50 s; held-out mIoU 0.33-0.36 (seeds 0, 1),
         pixel accuracy 0.84-0.86 for classes only.
  full   the labeled set in <data root>/nyuv2 (python -m course_utils.data download nyuv2),
         {_profile_summary("full", "nyuv2")}. Not measured here.

ISBI 2012 EM membranes (--task isbi2012, lesson 13): the paper's own data, 30 greyscale slices of
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
    """The CLI's options; each defaults to the profile's value (argparse.SUPPRESS = 'not given'). Lesson 06."""
    p = argparse.ArgumentParser(
        prog="python -m course_utils.train", epilog=profiles_help(), argument_default=argparse.SUPPRESS,
        description="Train a U-Net on Carvana or NYU Depth V2 (toy or real): prints the held-out score each epoch and "
                    "writes a run folder.", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=PROFILES, help="quick or full (see below)")
    p.add_argument("--data-dir", help="a folder in the Kaggle Carvana layout (default: the profile's, under the data root)")
    p.add_argument("--out", help="run folder (default runs/<profile>-<date>-<time>; with --resume, the checkpoint's folder)")
    p.add_argument("--work-dir", metavar="DIR", help="where the course writes (toy set, loader cache; runs when the "
                   "current folder is read-only): default $UNET_COURSE_WORK, else the data root when writable, else "
                   "~/.cache/unet-course/work. Nothing is ever written under a read-only data root")
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
    nyu = p.add_argument_group("NYU Depth V2 (lessons 10 and 11)")
    nyu.add_argument("--task", choices=TASKS, help="carvana (binary masks, default), nyuv2 (classes, depth) or "
                     "isbi2012 (the paper's EM membranes, lesson 13)")
    nyu.add_argument("--num-classes", type=int, choices=(13, 40), help="nyuv2 labelling (default 13)")
    nyu.add_argument("--tasks", choices=("seg", "seg+depth"), help="nyuv2: classes only, or classes and depth "
                     "with the two-headed U-Net (default seg)")
    nyu.add_argument("--depth-loss", choices=("l1", "silog"), help="nyuv2 depth loss (default l1, in metres)")
    nyu.add_argument("--depth-weight", type=float, help="nyuv2: weight of the depth loss (default 1)")
    nyu.add_argument("--class-weighting", choices=("none", "median", "inverse_sqrt"),
                     help="nyuv2: cross-entropy class weights from training label frequencies (default none)")
    p.add_argument("--encoder", choices=("vgg11", "resnet34"), help="carvana: a torchvision classifier as the "
                   "contracting path (EncoderUNet; --base-channels and --depth then do not apply)")
    p.add_argument("--encoder-weights", metavar="imagenet|PATH|none", help="with --encoder: torchvision's ImageNet "
                   "weights (downloaded once), a saved torchvision state dict, or none (random; the default)")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction,
                   help="BatchNorm after each conv (default on; --no-batch-norm is the paper's network)")
    em = p.add_argument_group("ISBI 2012 EM membranes (lesson 13)")
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
    """Profile defaults, then (with --resume) the checkpoint's settings, then what argv gives. Lesson 06."""
    parser = get_args_parser()
    given = vars(parser.parse_args(argv))
    for key in ("image_size", "held_out"):
        if key in given:
            given[key] = tuple(given[key])
    given.setdefault("progress", sys.stderr.isatty())  # no bars in logs and CI
    work_dir = given.pop("work_dir", None)
    try:
        if work_dir:
            set_work_root(work_dir)  # $UNET_COURSE_WORK: DataLoader workers and torchrun ranks see it too
        base = TrainConfig.for_profile(given.get("profile"), given.get("task", "carvana"))
        if "resume" in given:
            saved = read_checkpoint(given["resume"]).get("config", {})
            base = TrainConfig.for_profile(given.get("profile") or saved.get("profile"),
                                           given.get("task") or saved.get("task", "carvana"))
            inherited = {k: v for k, v in saved.items() if k not in PER_INVOCATION}
            base = TrainConfig.from_dict(base.to_dict() | inherited)
            given.setdefault("out", str(Path(given["resume"]).parent))
        return dataclasses.replace(base, **given).check()
    except (ValueError, FileNotFoundError, PermissionError) as e:
        parser.error(str(e))


def main(argv: list[str] | None = None) -> int:
    """The CLI: `python -m course_utils.train [options]`; returns the exit status. Lesson 06."""
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
