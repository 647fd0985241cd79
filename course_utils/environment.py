"""Where the course runs: the profile (quick or full), the data and work roots, the device, and a doctor.

Introduced in lesson 00. Every notebook and the training CLI call `profile()` to pick
sizes, so the same code runs on a laptop CPU (quick) and on a GPU with the real data (full).

Data apart from work: the course reads data sets from the data root ($UNET_COURSE_DATA, else
./data) and writes everything it makes (loader caches, run folders, the lessons' shared model,
toy sets, unpacked archives, downloads) under the work root. That is the data root itself when
it is writable (a laptop: one folder, as always); when it is read-only (Kaggle Notebooks'
attached data, a class's shared folder) it is $UNET_COURSE_WORK, else a private folder of the
user's (~/.cache/unet-course/work), and the course says so once.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
import tempfile
from pathlib import Path

PROFILES = ("quick", "full")
REPO_ROOT = Path(__file__).resolve().parent.parent

# What each data set needs to count as present, and how to get it when it is not.
DATASETS: dict[str, tuple[str, str]] = {
    "carvana": ("train_masks.csv", "python -m course_utils.data download carvana  (Kaggle; lesson 05)"),
    "toy_carvana": ("train_masks.csv", "made on first use, or: python -c 'import course_utils as c; c.ensure_toy_carvana()'"),
    "nyuv2": ("nyu_depth_v2_labeled.mat", "python -m course_utils.data download nyuv2  (2.97 GB; lesson 10)"),
    "toy_nyuv2": ("nyu_depth_v2_labeled.mat", "python -m course_utils.data toy nyuv2  (or ensure_toy_nyuv2(); lesson 10)"),
    "isbi2012": ("train-labels.tif", "python -m course_utils.data download isbi2012  (24 MB; lesson 13)"),
}


WORK_ENV = "UNET_COURSE_WORK"  # where the course writes; default: the data root when writable
READ_ONLY_ENV = "UNET_COURSE_DATA_READONLY"  # 1: never write under the data root, even when we could
_announced: set[tuple[str, str]] = set()  # (data root, work root) pairs already reported


def data_root() -> Path:
    """The one folder the data sets are read from: $UNET_COURSE_DATA, else ./data at the repo root. Lesson 00."""
    env = os.environ.get("UNET_COURSE_DATA")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "data"


def is_writable(path: str | Path) -> bool:
    """True when the course may create files in `path` (or, when it does not exist yet, in its nearest
    existing parent): the folder allows this user to write and its file system is not mounted read-only.
    Everything under the data root counts as read-only when $UNET_COURSE_DATA_READONLY=1 (a teacher
    who owns the shared folder, or a test). Checks without writing anything. README.md."""
    path = Path(path).expanduser().resolve()
    if os.environ.get(READ_ONLY_ENV, "").strip() not in ("", "0") and path.is_relative_to(data_root()):
        return False
    while not path.exists() and path != path.parent:
        path = path.parent
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        return False
    try:
        return not os.statvfs(path).f_flag & os.ST_RDONLY
    except (AttributeError, OSError):  # Windows has no statvfs: os.access decided
        return True


def user_work_dir() -> Path:
    """This user's private work folder, used when the data root is read-only: $XDG_CACHE_HOME/unet-course/work,
    else ~/.cache/unet-course/work (or a per-user folder in the temp dir when home is not writable). README.md."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    if is_writable(cache):
        return cache / "unet-course" / "work"
    try:
        user = os.getlogin()
    except OSError:
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"unet-course-{user}" / "work"


def work_root() -> Path:
    """The one folder the course writes under: $UNET_COURSE_WORK (or --work-dir), else the data root
    when it is writable, else user_work_dir(); in that last case it says so once.

    Caches, run folders, the lessons' shared model, toy sets and unpacked archives all go here, so
    a read-only data root (Kaggle Notebooks, a class's shared folder) is never written to. Raises
    PermissionError saying what to do when $UNET_COURSE_WORK is not writable. README.md.
    """
    env = os.environ.get(WORK_ENV, "").strip()
    if env:
        path = Path(env).expanduser().resolve()
        if not is_writable(path):
            raise PermissionError(f"The work folder {path} (set by ${WORK_ENV} or --work-dir) is not writable. "
                                  "Choose a folder of your own, e.g. --work-dir ~/unet-course-work, or unset "
                                  f"{WORK_ENV} to use {user_work_dir()}.")
        return path
    data = data_root()
    if is_writable(data):
        return data
    path = user_work_dir()
    if (str(data), str(path)) not in _announced:
        _announced.add((str(data), str(path)))
        print(f"The data root {data} is read-only: the course reads data sets there and writes its caches, runs "
              f"and generated data to {path} (set {WORK_ENV} or pass --work-dir to choose another folder).",
              flush=True)
    return path


def set_work_root(path: str | Path) -> Path:
    """Make `path` the work root of this process and of the processes it starts ($UNET_COURSE_WORK): what
    --work-dir does. Creates it; PermissionError when it cannot be written. README.md."""
    path = Path(path).expanduser().resolve()
    if not is_writable(path):  # checked first: nothing is created inside a read-only data root
        raise PermissionError(f"The work folder {path} is not writable (inside a read-only data root?); "
                              "pass --work-dir a folder you can write to, e.g. ~/unet-course-work.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"Cannot create the work folder {path} ({err.strerror or err}); "
                              "pass --work-dir a folder you can write to.") from err
    os.environ[WORK_ENV] = str(path)
    return path


def has_dataset(name: str, root: Path | None = None) -> bool:
    """True when data set `name` (a key of DATASETS) can be read: laid out under `root` when given;
    else under the data root or the work root, or attached to a Kaggle Notebook. Lesson 05."""
    marker, _ = DATASETS[name]
    if root is not None:
        return (root / name / marker).is_file()
    return any((base / name / marker).is_file() for base in (data_root(), work_root())) or attached(name) is not None


def attached(name: str) -> Path | None:
    """The copy of data set `name` a Kaggle Notebook has attached under its input folder, or None. README.md."""
    from .data.kaggle_input import attached_dataset

    return attached_dataset(name)


def dataset_dir(name: str) -> Path:
    """The folder data set `name` is read from: data_root()/name when it is there; else work_root()/name
    when the course downloaded, drew or unpacked it there; else a copy attached to a Kaggle Notebook
    (read where it lies; Carvana's competition zips are first unpacked once into work_root()/carvana);
    else work_root()/name, where it would go (its absence is reported by whoever reads it). Lesson 05."""
    marker, _ = DATASETS[name]
    for base in (data_root(), work_root()):
        if (base / name / marker).is_file():
            return base / name
    found = attached(name)
    if found is None:
        return work_root() / name
    if (found / marker).is_file():
        return found
    from .data.kaggle_input import unpack_attached_carvana

    return unpack_attached_carvana(work_root() / name, found)


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
    """Check this machine for the course: device, GPU, RAM, versions, data present, profile, and the
    data and work roots (and whether each is writable); on Kaggle, the attached input folder.

    Prints a short report (what is missing comes with the command that fixes it) and
    returns the same facts as a dict so a notebook can assert on them. Lesson 00.
    """
    import torch

    from .data.kaggle_input import kaggle_input_dir, on_kaggle

    device = pick_device()
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else None
    bf16 = bool(device.type == "cuda" and torch.cuda.is_bf16_supported())
    root, work = data_root(), work_root()
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
        "data_root_writable": is_writable(root),
        "work_root": str(work),
        "work_root_writable": is_writable(work),
        "data": {name: has_dataset(name) for name in DATASETS},
        "attached": {name: str(p) for name in DATASETS if (p := attached(name)) is not None},
        "profile": profile(),
        "colab": "google.colab" in sys.modules,
        "kaggle": on_kaggle(),
        "kaggle_input": str(kaggle_input_dir()),
    }
    if print_report:
        _print_doctor(report)
    return report


def _print_doctor(r: dict) -> None:
    ram = f"{r['ram_gib']:.1f} GiB" if r["ram_gib"] else "unknown"
    gpu = f"{r['gpu']} ({'bf16' if r['bf16'] else 'fp16'} mixed precision)" if r["gpu"] else "none"
    host = "  [Colab]" if r["colab"] else "  [Kaggle Notebook]" if r["kaggle"] else ""
    print(f"python {r['python']} on {r['platform']}{host}")
    print(f"device: {r['device']}   GPU: {gpu}   CPU threads: {r['cpu_threads']}   RAM: {ram}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()))
    rw = {True: "writable", False: "read-only"}
    print(f"data root: {r['data_root']}  ({rw[r['data_root_writable']]}; set UNET_COURSE_DATA to move it)")
    same = r["work_root"] == r["data_root"]
    print(f"work root: {r['work_root']}  ({rw[r['work_root_writable']]}; "
          + ("the data root itself" if same else "caches, runs and generated data go here") + f"; set {WORK_ENV} "
          "or --work-dir to move it)")
    for name, present in r["data"].items():
        where = r["attached"].get(name)
        state = f"attached at {where}" if where and not _is_laid_out(name) else "present" if present else \
            "missing -> " + DATASETS[name][1]
        print(f"  {name:12s} {state}")
    why = "" if r["profile"] == "full" else "  (no GPU or no real Carvana: toy data, narrow nets)"
    print(f"profile: {r['profile']}{why}")


def _is_laid_out(name: str) -> bool:
    marker = DATASETS[name][0]
    return any((base / name / marker).is_file() for base in (data_root(), work_root()))
