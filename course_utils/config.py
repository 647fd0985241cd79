"""Every setting of a training run in one dataclass, `TrainConfig`, and the checks that say
what to change when a setting cannot work. The CLI, `fit` and the checkpoints all read it.
Lesson 06.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from .environment import PROFILES, profile
from .model import nearest_valid_sizes, output_length
from .precision import AMP_CHOICES
from .tasks import TASK_NAMES, get_task

ENCODER_DEPTHS = {"vgg11": 4, "resnet34": 5}  # how often each torchvision encoder halves the image

# The TrainConfig defaults are the quick profile (CPU, toy Carvana, small images, a narrow net);
# the full profile (GPU, the Kaggle set at half resolution, the paper's widths) changes these.
FULL_PROFILE: dict[str, Any] = dict(image_size=(640, 960), base_channels=64, batch_size=8, epochs=5, lr=1e-3,
                                    num_workers=min(8, os.cpu_count() or 1), threads=0)

# Each data set (--task) changes some of these for its profiles: see its module in course_utils.tasks.
TASKS = TASK_NAMES

# Options that belong to one invocation, not to the run: never inherited from a checkpoint.
PER_INVOCATION = ("out", "resume", "stop_after", "device", "num_workers", "progress")


@dataclass
class TrainConfig:
    """Every setting of a training run; stored in each checkpoint.

    The defaults are the quick profile; `TrainConfig.for_profile("full")` gives the GPU one.
    data_dir=None means the profile's data set under data_root(): toy_carvana (made on first
    use) for quick, carvana for full. Lesson 06.
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
    task: str = "carvana"  # or "nyuv2" (lessons 10, 11): classes, optionally depth; or "isbi2012" (lesson 13): EM
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
    encoder: str | None = None  # carvana: "vgg11" or "resnet34", a torchvision classifier as the contracting path
    encoder_weights: str = "none"  # with encoder: "none", "imagenet" or the path of a torchvision state dict

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

    def summary(self) -> str:
        """One line: image size, width, depth, batch, epochs and lr (what a log should say)."""
        net = (f"{self.encoder} encoder ({self.encoder_weights} weights)" if self.encoder
               else f"base_channels {self.base_channels}, depth {self.depth}")
        return (f"{self.image_size[0]}x{self.image_size[1]} images, {net}, batch {self.batch_size}, "
                f"{self.epochs} epochs, lr {self.lr:g}")

    def check(self) -> "TrainConfig":
        """This config, or a ValueError that says what to change when a setting cannot work."""
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
        if self.encoder is not None:
            if self.encoder not in ENCODER_DEPTHS:
                raise ValueError(f"encoder must be one of {tuple(ENCODER_DEPTHS)}, got {self.encoder!r}.")
            if self.task != "carvana":
                raise ValueError("--encoder builds an RGB, one-logit EncoderUNet: it trains on --task carvana.")
        depth, padding = (ENCODER_DEPTHS[self.encoder], "same") if self.encoder else (self.depth, self.padding)
        check_image_size(self.image_size, depth, padding)
        get_task(self.task).check(self)
        return self


def check_image_size(image_size: tuple[int, int], depth: int, padding: str = "same") -> None:
    """A same-padded U-Net of `depth` halves each side `depth` times: sides must divide by 2**depth.
    A valid one also loses pixels at every conv: its input tile must be one of valid_input_sizes. Lessons 02 and 04."""
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


# Settings that change how a run is carried out, not the model it ends with (data_dir: the same
# set may sit in another folder); load_or_train ignores them when it compares runs.
NOT_THE_MODEL = (*PER_INVOCATION, "threads", "data_dir")
