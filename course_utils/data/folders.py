"""Data-set folders that are either whole or absent (lessons 05 and 08).

A toy set is drawn into a temporary sibling folder named `.<name>.partial-<pid>` and renamed
into place when whole, so an interrupted run never leaves a folder that looks complete, and
two processes drawing at once (DataLoader workers, torchrun ranks) do not collide.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

SIGNATURE_HELP = "move them away or pass another root."


def remove_abandoned_partials(folder: Path, pattern: str) -> None:
    """Delete the half-written folders matching `pattern` in `folder` (".name.partial-<pid>")
    whose writing process no longer exists: what a killed run leaves behind."""
    for tmp in folder.glob(pattern):
        try:
            os.kill(int(tmp.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, OSError):  # not our name pattern, or a live process of another user
            pass


def publish_folder(root: Path, make: Callable[[Path], object], complete: Callable[[Path], bool],
                   signature: str, maker: str) -> Path:
    """Make `root` with make(tmp) in a temporary sibling, then rename it into place; returns root.

    complete(path) says whether a folder is whole with the wanted settings; `signature` is the
    file `maker` writes first, so a non-empty folder without it (a real download, say) is never
    replaced.
    """
    if root.exists() and any(root.iterdir()) and not (root / signature).exists():
        raise FileExistsError(f"{root} holds files that {maker} did not make; {SIGNATURE_HELP}")
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
