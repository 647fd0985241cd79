"""Download the ISBI 2012 stacks over HTTPS, resumable and checked by content (lesson 13).

No checksum of the challenge's files was ever published, so each stack is checked by what it
holds (course_utils.data.isbi2012.check_isbi2012): 30 pages of 512 x 512, 8-bit, labels 0/255.
The resumable transfer itself is course_utils.data.fetch.fetch_file, shared with NYUv2.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from .fetch import NETWORK_ERRORS, DownloadError, Remote, checked_marker, fetch_file, host_of
from .isbi2012 import STACKS, check_isbi2012, stack_problem

ISBI2012_URL = "https://raw.githubusercontent.com/alexklibisz/isbi-2012/HEAD/data/"  # a public copy of the 3 stacks
ISBI2012_URL_ENV = "UNET_COURSE_ISBI2012_URL"  # overrides ISBI2012_URL (a mirror, a class's server)
ISBI2012_SITE = "http://brainiac2.mit.edu/isbi_challenge/"  # the challenge's own site


def download_isbi2012(root: str | Path | None = None, *, base_url: str | None = None,
                      timeout: float = 30.0) -> Path:
    """Fetch and check the ISBI 2012 stacks into root; return root.

    root: the data-set folder, default work_root() / "isbi2012" (the data root when writable); it ends up holding
    train-volume.tif, train-labels.tif and test-volume.tif, the files ISBI2012Dataset reads.
    base_url: the folder that serves the three files (default: $UNET_COURSE_ISBI2012_URL, else
    ISBI2012_URL). Files already there (downloaded before, or copied in by hand) are checked, not
    fetched; an interrupted download resumes. Each file is checked by content (30 pages of
    512 x 512, 8-bit; labels only 0 and 255); one that is not the challenge's is deleted. Raises
    DownloadError saying what to do (e.g. where to put hand-copied files) when it cannot work. Lesson 13.
    """
    root = _isbi2012_root(root)
    root.mkdir(parents=True, exist_ok=True)
    base = _isbi2012_base(base_url)
    by_hand = _isbi2012_by_hand(root, base)
    for key, name in STACKS.items():
        _fetch_stack(base + name, root / name, key == "labels", timeout, by_hand)
    try:
        check_isbi2012(root)
    except ValueError as err:
        raise DownloadError(f"The download finished but the stacks are not the challenge's: {err}") from None
    print(f"ISBI 2012 is ready in {root}: {', '.join(STACKS.values())}, 30 slices of 512 x 512 each.", flush=True)
    return root


def ensure_isbi2012(root: str | Path | None = None) -> Path:
    """The ISBI 2012 folder, downloaded on first use: root when its stacks pass check_isbi2012,
    else download_isbi2012(root). root=None: dataset_dir("isbi2012"), i.e. the data root's copy, the
    work root's, or one attached to a Kaggle Notebook; a download goes to the work root. What a
    learner's notebook calls. Lesson 13."""
    if root is None:
        from ..environment import dataset_dir

        root = dataset_dir("isbi2012")
    root = _isbi2012_root(root)
    try:
        check_isbi2012(root)
    except ValueError:
        return download_isbi2012(root)
    return root


def _isbi2012_root(root: str | Path | None) -> Path:
    if root is None:
        from ..environment import work_root

        root = work_root() / "isbi2012"
    return Path(root).expanduser()


def _isbi2012_base(base_url: str | None) -> str:
    """The address of the folder serving the stacks: the argument, the environment variable, the constant."""
    base = base_url or os.environ.get(ISBI2012_URL_ENV) or ISBI2012_URL
    return base if base.endswith("/") else base + "/"


def _fetch_stack(url: str, dest: Path, labels: bool, timeout: float, by_hand: str) -> None:
    """One stack into dest: kept when it is already the challenge's, else (re)downloaded and checked."""
    problem = stack_problem(dest, labels)
    if problem is None:
        print(f"{dest.name}: already in {dest.parent}, checked, skipping.", flush=True)
        return
    if problem != "missing":
        print(f"{dest} is not the challenge's {dest.name} ({problem}); downloading it again.", flush=True)
        _delete(dest)
    fetch_file(Remote(dest.name, url, _remote_size(url, timeout, by_hand)), dest, timeout=timeout, by_hand=by_hand)
    problem = stack_problem(dest, labels)
    if problem:
        _delete(dest)
        raise DownloadError(f"{url} sent a file that is not the ISBI 2012 challenge's {dest.name} ({problem}); "
                            f"it has been deleted. The address may serve other files: pass base_url= (or set "
                            f"{ISBI2012_URL_ENV}) to a copy of the challenge's stacks. " + by_hand)


def _delete(dest: Path) -> None:
    dest.unlink(missing_ok=True)
    checked_marker(dest).unlink(missing_ok=True)


def _remote_size(url: str, timeout: float, by_hand: str) -> int:
    """The size of the file at url, from the answer to a one-byte Range request (Content-Range's
    total, or Content-Length when the server sends the whole file), without reading the body."""
    headers = {"User-Agent": "unet-course (python urllib)", "Range": "bytes=0-0"}
    name = url.rsplit("/", 1)[-1]
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            ranged = resp.status == 206
            total = resp.headers.get("Content-Range", "").rpartition("/")[2] if ranged \
                else resp.headers.get("Content-Length", "")
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{url} answered HTTP {err.code} ({err.reason}). " + by_hand) from None
    except NETWORK_ERRORS as err:
        reason = getattr(err, "reason", None) or err
        raise DownloadError(f"Could not download {name} from {host_of(url)} ({type(err).__name__}: {reason}). "
                            "Check the connection (and a proxy, if you use one) and run the download again. "
                            + by_hand) from None
    if not total.strip().isdigit():
        raise DownloadError(f"{url} did not say how large {name} is, so the download cannot be checked or "
                            "resumed. " + by_hand)
    return int(total)


def _isbi2012_by_hand(root: Path, base: str) -> str:
    places = "".join(f"\n    {root / name}" for name in STACKS.values())
    return (f"To get the data without this download: on a machine with a network, download "
            f"{', '.join(STACKS.values())} from {base} (or from the challenge's own site, {ISBI2012_SITE} , which "
            f"hands them out after you register), and copy them to{places}\n"
            f"Then run `python -m course_utils.data download isbi2012 --root {root}` again: it checks them "
            "without a network.")
