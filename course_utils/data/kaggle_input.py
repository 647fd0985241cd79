"""Data a Kaggle Notebook has attached: found under its input folder, read-only, with no API token.

On Kaggle a notebook's "Add Input" attaches a competition's files or a data set read-only under
/kaggle/input/<name>/ ($UNET_COURSE_KAGGLE_INPUT moves that place, for tests and other hosts).
The Carvana competition's files come as the zips it publishes (train.zip, train_masks.zip,
train_masks.csv.zip, metadata.csv.zip, and others the course does not read); the four the course
reads are checked and unpacked once into the work root with the same safe unpacker as the
download (unzip.py). A folder that is already unpacked (train/, train_masks/, train_masks.csv), and
copies of NYUv2 or the ISBI 2012 stacks attached as data sets, are read where they lie.

The search looks a few folders deep, so the layout of the input folder (one folder per
attachment, or owner and version folders below it) does not matter; the competition's own
folder name is tried first. README.md.
"""
from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from .unzip import ARCHIVES, check_zip, extract_archive, is_unpacked

__all__ = ["INPUT_ENV", "kaggle_input_dir", "on_kaggle", "find_attached", "attached_dataset",
           "unpack_attached_carvana"]

INPUT_ENV = "UNET_COURSE_KAGGLE_INPUT"
KAGGLE_INPUT = Path("/kaggle/input")
COMPETITION_FOLDER = "carvana-image-masking-challenge"
SEARCH_DEPTH = 4  # /kaggle/input/<attachment>/ and up to three folders below it
CARVANA_ZIPS = tuple(a.name for a in ARCHIVES)
# what makes an attached folder usable as it is, per data set (the names the readers open)
USABLE = {
    "carvana": ("train", "train_masks", "train_masks.csv"),
    "nyuv2": ("nyu_depth_v2_labeled.mat", "splits.mat", "classMapping40.mat", "class13Mapping.mat"),
    "isbi2012": ("train-volume.tif", "train-labels.tif", "test-volume.tif"),
}


def kaggle_input_dir() -> Path:
    """Where a Kaggle Notebook's attached inputs are: $UNET_COURSE_KAGGLE_INPUT, else /kaggle/input. README.md."""
    env = os.environ.get(INPUT_ENV, "").strip()
    return Path(env).expanduser() if env else KAGGLE_INPUT


def on_kaggle() -> bool:
    """True inside a Kaggle Notebook (Kaggle sets KAGGLE_KERNEL_RUN_TYPE in its notebooks). README.md."""
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE"))


def find_attached(needs: tuple[str, ...], input_dir: str | Path | None = None,
                  prefer: str | None = None) -> Path | None:
    """The first folder under the input folder that holds every name in `needs` (files or folders),
    searched breadth-first to SEARCH_DEPTH levels, the folder named `prefer` first; None when there
    is none (or no input folder at all, as off Kaggle). README.md."""
    top = Path(input_dir) if input_dir is not None else kaggle_input_dir()
    if not top.is_dir():
        return None
    queue: deque[tuple[Path, int]] = deque([(top, 0)])
    if prefer and (top / prefer).is_dir():
        queue.appendleft((top / prefer, 1))
    seen: set[Path] = set()
    while queue:
        folder, depth = queue.popleft()
        if folder in seen:
            continue
        seen.add(folder)
        if all((folder / name).exists() for name in needs):
            return folder
        if depth < SEARCH_DEPTH:
            try:
                children = sorted(e.path for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
            except OSError:  # a folder we may not list: skip it
                continue
            queue.extend((Path(c), depth + 1) for c in children)
    return None


def attached_dataset(name: str, input_dir: str | Path | None = None) -> Path | None:
    """The attached copy of data set `name` ("carvana", "nyuv2", "isbi2012"; others: None): a folder
    usable as it is, or for Carvana the folder holding the competition's four zips. README.md."""
    if name not in USABLE:
        return None
    prefer = COMPETITION_FOLDER if name == "carvana" else None
    found = find_attached(USABLE[name], input_dir, prefer)
    if found is None and name == "carvana":
        found = find_attached(CARVANA_ZIPS, input_dir, prefer)
    return found


def unpack_attached_carvana(root: str | Path, source: str | Path | None = None) -> Path:
    """Unpack the four competition zips the course reads from `source` (default: the attached Carvana)
    into `root`, each checked first and unpacked once (a second call only looks); return root.

    The zips stay where they are (a read-only input folder is only read). FileNotFoundError says
    how to attach the data when there is nothing to unpack. README.md.
    """
    root = Path(root)
    source = Path(source) if source is not None else attached_dataset("carvana")
    if source is None or not all((source / z).is_file() for z in CARVANA_ZIPS):
        raise FileNotFoundError(
            f"No Carvana competition zips ({', '.join(CARVANA_ZIPS)}) under {source or kaggle_input_dir()}. In a "
            f"Kaggle Notebook: Add Input -> Competitions -> '{COMPETITION_FOLDER}' (accept its rules once on the "
            "competition's page); elsewhere: python -m course_utils.data download carvana.")
    todo = [a for a in ARCHIVES if not is_unpacked(root, a)]
    if not todo:
        return root
    root.mkdir(parents=True, exist_ok=True)
    print(f"Unpacking Carvana from the attached competition files in {source} into {root} (once) ...", flush=True)
    for archive in todo:
        problem = check_zip(source / archive.name)
        if problem:
            raise OSError(f"The attached {source / archive.name} cannot be unpacked ({problem}). Remove the input "
                          "and attach the competition again, or download it: python -m course_utils.data "
                          "download carvana.")
        extract_archive(source / archive.name, root, archive)
    return root
