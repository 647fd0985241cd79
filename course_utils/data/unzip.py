"""Checking and unpacking Carvana's competition zips safely (lesson 05).

The same unpacker serves a download (download.py), zips copied in by hand, and the read-only
zips a Kaggle Notebook has attached (kaggle_input.py): every member's CRC is checked first, no
member may land outside the data-set folder (no absolute paths, no '..', no links), and a
finished archive leaves a marker so that a second run skips it.
"""
from __future__ import annotations

import json
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .fetch import DownloadError

__all__ = ["Archive", "ARCHIVES", "KAGGLE_IMAGES", "check_zip", "extract_archive", "is_unpacked"]

KAGGLE_IMAGES = 5088  # 318 cars x 16 angles: train/ and train_masks/ of a complete download


@dataclass(frozen=True)
class Archive:
    """One competition file: the zip's name and what it unpacks to in the data folder. Lesson 05."""

    name: str  # e.g. "train.zip"
    target: str  # a folder ("train") or a single file ("train_masks.csv")
    folder: bool  # True: many members into root/target/; False: one member named target


ARCHIVES = (
    Archive("train.zip", "train", True),
    Archive("train_masks.zip", "train_masks", True),
    Archive("train_masks.csv.zip", "train_masks.csv", False),
    Archive("metadata.csv.zip", "metadata.csv", False),
)
SKIPPED_MEMBERS = ("__MACOSX/", ".DS_Store")  # junk some zip tools add


def check_zip(path: Path) -> str | None:
    """None when the zip is whole (central directory readable, every member's CRC right), else why not.
    Lesson 05."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as err:
        return f"not a readable zip file: {err}"
    except zlib.error as err:  # compressed data damaged so badly it cannot even be inflated
        return f"damaged compressed data ({err})"
    return f"the member {bad} fails its CRC check" if bad else None


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why a member must not be unpacked (absolute path, '..', a drive letter, a link), or None."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "it has an absolute path"
    if ".." in parts:
        return "its path climbs out with '..'"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "it is a symbolic link"
    return None


def _members(zf: zipfile.ZipFile, zip_path: Path, archive: Archive) -> list[tuple[zipfile.ZipInfo, str]]:
    """(member, path relative to root) for every file to unpack; refuses the archive if any member is unsafe."""
    out = []
    for info in zf.infolist():
        reason = _unsafe_reason(info)
        if reason:
            raise DownloadError(f"Refusing to unpack {zip_path}: its member {info.filename!r} would be written "
                                f"outside {zip_path.parent} ({reason}). Nothing was unpacked; delete the file and "
                                "download it again from Kaggle.")
        name = info.filename.replace("\\", "/")
        if info.is_dir() or any(name.startswith(s) or name.endswith(s) for s in SKIPPED_MEMBERS):
            continue
        parts = PurePosixPath(name).parts
        if archive.folder:  # Kaggle's train.zip holds train/xxx.jpg; a flat zip works too
            rel = parts[1:] if parts[0] == archive.target and len(parts) > 1 else parts
            out.append((info, "/".join((archive.target, *rel))))
        elif parts[-1] == archive.target:
            out.append((info, archive.target))
    if not archive.folder and len(out) != 1:
        raise DownloadError(f"{zip_path} should hold one file named {archive.target}, but holds "
                            f"{[i.filename for i in zf.infolist()][:5]}. Delete it and download it again.")
    return out


def extract_archive(zip_path: Path, root: Path, archive: Archive) -> None:
    """Unpack a checked zip into root with a progress bar, then write the archive's done-marker. The zip
    may lie elsewhere (a read-only attached copy); no member may land outside root. Lesson 05."""
    from tqdm.auto import tqdm

    base = root.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        members = _members(zf, zip_path, archive)
        for _, rel in members:  # belt and braces: the resolved path must stay inside root
            if not (base / rel).resolve().is_relative_to(base):
                raise DownloadError(f"Refusing to unpack {zip_path}: {rel!r} resolves outside {root}.")
        total = sum(info.file_size for info, _ in members)
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"Unpacking {archive.name}") as bar:
            for info, rel in members:
                dest = base / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                bar.update(info.file_size)
    _marker(root, archive).write_text(json.dumps(dict(files=len(members), bytes=total)) + "\n")


def _marker(root: Path, archive: Archive) -> Path:
    return root / f".{archive.name}.complete"


def is_unpacked(root: Path, archive: Archive) -> bool:
    """The archive was unpacked here (its marker) and what it unpacked is still there; or, without
    a marker, the folder holds what a complete manual unzip gives (all 5088 files, or the csv file). Lesson 05."""
    target = root / archive.target
    try:
        files = int(json.loads(_marker(root, archive).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        if archive.folder:
            return target.is_dir() and sum(1 for p in target.iterdir() if p.is_file()) >= KAGGLE_IMAGES
        return target.is_file() and target.stat().st_size > 0
    if not archive.folder:
        return target.is_file()
    return target.is_dir() and sum(1 for p in target.iterdir() if p.is_file()) >= files
