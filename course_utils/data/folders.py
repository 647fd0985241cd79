"""Data-set folders that are either whole or absent (lessons 05 and 10).

A toy set is drawn into a temporary sibling folder named `.<name>.partial-<pid>` and renamed
into place when whole, so an interrupted run never leaves a folder that looks complete, and
two processes drawing at once (DataLoader workers, torchrun ranks) do not collide.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable


def remove_abandoned_partials(folder: Path, pattern: str) -> None:
    """Delete the half-written folders matching `pattern` in `folder` (".name.partial-<pid>")
    whose writing process no longer exists: what a killed run leaves behind. Lessons 05 and 10."""
    for tmp in folder.glob(pattern):
        try:
            os.kill(int(tmp.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, OSError):  # not our name pattern, or a live process of another user
            pass


def refuse_foreign(root: Path, signature: str, maker: str) -> None:
    """FileExistsError unless `root` is empty, absent, or holds `signature` (written by `maker`):
    a toy set may replace an earlier toy set, never a real download or anything else. Lessons 05 and 10."""
    if root.exists() and any(root.iterdir()) and not (root / signature).exists():
        raise FileExistsError(f"{root} is not empty and was not made by {maker}; refusing to overwrite it. "
                              f"Move its files away or pass an empty or new folder.")


def claim_folder(root: Path, signature: str, maker: str, stale: tuple[str, ...]) -> None:
    """Make `root` ready for `maker` to draw into: refuse a foreign folder, delete the `stale`
    entries (files or folders) of an earlier toy set, then write `signature` first. Lessons 05 and 10."""
    refuse_foreign(root, signature, maker)
    for name in stale:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / signature).write_text(f"made by course_utils.{maker}; safe to delete\n")


def publish_folder(root: Path, make: Callable[[Path], object], complete: Callable[[Path], bool],
                   signature: str, maker: str) -> Path:
    """Make `root` with make(tmp) in a temporary sibling, then rename it into place; returns root.

    complete(path) says whether a folder is whole with the wanted settings; `signature` is the
    file `maker` writes first, so a non-empty folder without it (a real download, say) is never
    replaced. Lessons 05 and 10.
    """
    refuse_foreign(root, signature, maker)
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_partials(root.parent, f".{root.name}.partial-*")
    tmp = root.parent / f".{root.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    make(tmp)
    if complete(root):  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return root
    shutil.rmtree(root, ignore_errors=True)
    try:
        tmp.rename(root)
    except OSError:  # another process moved its copy in between: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if not complete(root):
            raise
    return root
