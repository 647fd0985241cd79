"""Where the course runs: the profile (quick or full), the data root, the device, and a doctor.

Introduced in lesson 00. Every notebook and the training CLI call `profile()` to pick
sizes, so the same code runs on a laptop CPU (quick) and on a GPU with the real data (full).
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path

PROFILES = ("quick", "full")
REPO_ROOT = Path(__file__).resolve().parent.parent

# What each data set needs to count as present, and how to get it when it is not.
DATASETS: dict[str, tuple[str, str]] = {
    "carvana": ("train_masks.csv", "python -m course_utils.data download carvana  (Kaggle; lesson 05)"),
    "toy_carvana": ("train_masks.csv", "made on first use, or: python -c 'import course_utils as c; c.ensure_toy_carvana()'"),
    "nyuv2": ("nyu_depth_v2_labeled.mat", "python -m course_utils.data download nyuv2  (2.97 GB; lesson 08)"),
    "toy_nyuv2": ("nyu_depth_v2_labeled.mat", "python -m course_utils.data toy nyuv2  (or ensure_toy_nyuv2(); lesson 08)"),
    "isbi2012": ("train-labels.tif", "python -m course_utils.data download isbi2012  (24 MB; lesson 10)"),
}


def data_root() -> Path:
    """The one folder holding every data set: $UNET_COURSE_DATA, else ./data at the repo root. Lesson 00."""
    env = os.environ.get("UNET_COURSE_DATA")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "data"


def has_dataset(name: str, root: Path | None = None) -> bool:
    """True when data set `name` (a key of DATASETS) is laid out under the data root. Lesson 05."""
    marker, _ = DATASETS[name]
    return ((root or data_root()) / name / marker).is_file()


def has_gpu() -> bool:
    """True when CUDA is usable. Imports torch lazily so `profile()` stays cheap. Lesson 00."""
    import torch

    return torch.cuda.is_available()


def profile(dataset: str = "carvana") -> str:
    """'quick' (CPU, toy data, narrow nets) or 'full' (GPU and real data, paper sizes).

    $UNET_COURSE_PROFILE=quick|full overrides the automatic choice. The profile changes sizes
    and counts, never which code runs. Lesson 00.
    """
    forced = os.environ.get("UNET_COURSE_PROFILE", "").strip().lower()
    if forced:
        if forced not in PROFILES:
            raise ValueError(
                f"UNET_COURSE_PROFILE={forced!r} is not a profile; use one of {PROFILES} or unset it."
            )
        return forced
    return "full" if has_gpu() and has_dataset(dataset) else "quick"


def pick_device(prefer: str | None = None) -> "torch.device":  # noqa: F821
    """The best device here: CUDA, then Apple MPS, then CPU; `prefer` ('cpu', 'cuda', ...) wins. Lesson 06."""
    import torch

    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (weights init); data order and augmentation use their own seeds.
    Lesson 06."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(threads: int) -> None:
    """Use `threads` CPU threads in torch (0: leave torch's default, one per core).

    The quick profile uses 1: its small convolutions gain little from a second thread, and
    when other programs keep the same cores busy, torch's threads wait for each other at every
    operation. On a 2-core machine shared with other training jobs we measured 2 threads 20x
    slower than 1 (4 vs 83 images/s at 64x96, base_channels 8). Lesson 05.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)


def _ram_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * page_size / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _version(module: str) -> str:
    try:
        return getattr(importlib.import_module(module), "__version__", "installed")
    except ImportError:
        return "not installed"


def doctor(print_report: bool = True) -> dict:
    """Check this machine for the course: device, GPU, RAM, versions, data present, profile.

    Prints a short report (what is missing comes with the command that fixes it) and
    returns the same facts as a dict so a notebook can assert on them. Lesson 00.
    """
    import torch

    device = pick_device()
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else None
    bf16 = bool(device.type == "cuda" and torch.cuda.is_bf16_supported())
    root = data_root()
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": device.type,
        "gpu": gpu,
        "bf16": bf16,
        "cpu_threads": torch.get_num_threads(),
        "ram_gib": _ram_gib(),
        "versions": {m: _version(m) for m in ("torch", "numpy", "albumentations", "matplotlib", "ipywidgets", "PIL")},
        "data_root": str(root),
        "data": {name: has_dataset(name, root) for name in DATASETS},
        "profile": profile(),
        "colab": "google.colab" in sys.modules,
    }
    if print_report:
        _print_doctor(report)
    return report


def _print_doctor(r: dict) -> None:
    ram = f"{r['ram_gib']:.1f} GiB" if r["ram_gib"] else "unknown"
    gpu = f"{r['gpu']} ({'bf16' if r['bf16'] else 'fp16'} mixed precision)" if r["gpu"] else "none"
    print(f"python {r['python']} on {r['platform']}" + ("  [Colab]" if r["colab"] else ""))
    print(f"device: {r['device']}   GPU: {gpu}   CPU threads: {r['cpu_threads']}   RAM: {ram}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()))
    print(f"data root: {r['data_root']}  (set UNET_COURSE_DATA to move it)")
    for name, present in r["data"].items():
        print(f"  {name:12s} {'present' if present else 'missing -> ' + DATASETS[name][1]}")
    why = "" if r["profile"] == "full" else "  (no GPU or no real Carvana: toy data, narrow nets)"
    print(f"profile: {r['profile']}{why}")
