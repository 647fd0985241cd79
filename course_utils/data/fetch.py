"""A resumable HTTPS download of one file, checked by size and SHA-256 before it is used.

fetch_file(remote, dest) downloads to dest.part and resumes where it stopped (HTTP Range
requests); the file is renamed into place only once its size and SHA-256 are right, and a
marker beside it remembers the check so a rerun does not hash it again. NYU Depth V2
(download.py, lesson 10) and ISBI 2012 (isbi2012_download.py, lesson 13) are fetched this way.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DownloadError", "Remote", "NETWORK_ERRORS", "fetch_file", "host_of", "checked_marker",
           "bytes_on_disk", "part_path"]


class DownloadError(RuntimeError):
    """A download that cannot work as things are; the message says what to do instead.
    Lessons 05, 10 and 13."""


@dataclass(frozen=True)
class Remote:
    """One file to fetch: its name in the data folder, where it lives, its size and SHA-256 (None: size only).
    Lessons 10 and 13."""

    name: str
    url: str
    size: int
    sha256: str | None = None


# what urllib raises when the network or the server fails (not an HTTP error status)
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


def fetch_file(remote: Remote, dest: Path, *, timeout: float = 30.0, by_hand: str = "") -> Path:
    """Download remote.url to dest through dest.part with a progress bar, resuming a .part already
    there; check size and SHA-256, then rename into place. by_hand: advice added to every error.
    Lessons 10 and 13."""
    part = part_path(dest)
    problem = _file_problem(dest, remote)
    if problem is None:
        print(f"{remote.name}: already in {dest.parent}, checked, skipping.", flush=True)
        return dest
    if problem != "missing":
        smaller = dest.stat().st_size < remote.size and not part.exists()
        print(f"{dest} is {problem}; " + ("resuming from it." if smaller else "downloading it again."), flush=True)
        if smaller:  # e.g. a copy that stopped half-way: the download continues it (the hash tells if it was wrong)
            os.replace(dest, part)
        else:
            dest.unlink()
    for _ in range(2):  # a second try starts from scratch, when the server would not resume
        have = part.stat().st_size if part.is_file() else 0
        if have > remote.size:
            part.unlink()
            have = 0
        if have == remote.size or _stream(remote, part, have, timeout, by_hand):
            break
    size = bytes_on_disk(part)
    if size < remote.size:
        raise DownloadError(f"The connection to {host_of(remote.url)} ended after {size:,} of {remote.size:,} bytes of "
                            f"{remote.name}. Run the download again: it resumes from {part}. " + by_hand)
    if size > remote.size or _sha256(part, remote) not in (None, remote.sha256):
        got = f"{size:,} bytes" if size != remote.size else "a different SHA-256"
        part.unlink()
        raise DownloadError(f"{remote.url} sent {got}, not the expected file ({remote.size:,} bytes, SHA-256 "
                            f"{remote.sha256}); it has been deleted. Run the download again; if this repeats, the "
                            "server or a proxy changes the file. " + by_hand)
    os.replace(part, dest)
    checked_marker(dest).write_text(json.dumps(_stamp(dest)) + "\n")
    return dest


def _stream(remote: Remote, part: Path, have: int, timeout: float, by_hand: str) -> bool:
    """Append the bytes after `have` to part (or rewrite it); False when the server would not resume."""
    from tqdm.auto import tqdm

    headers = {"User-Agent": "unet-course (python urllib)"}
    if have:
        headers["Range"] = f"bytes={have}-"
    print(f"Downloading {remote.name} ({remote.size / 1e6:,.1f} MB) from {host_of(remote.url)}"
          + (f", resuming at {have / 1e6:,.1f} MB" if have else "") + " ...", flush=True)
    try:
        with urllib.request.urlopen(urllib.request.Request(remote.url, headers=headers), timeout=timeout) as resp:
            resumed = resp.status == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-")
            if have and not resumed:
                if resp.status == 206:  # some other range: not what we asked for; start over
                    part.unlink()
                    return False
                have = 0  # the server ignored Range and sends the whole file
            with open(part, "ab" if have else "wb") as out, tqdm(total=remote.size, initial=have, unit="B",
                                                                 unit_scale=True, desc=remote.name) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # "range not satisfiable": the .part is not a prefix of the file
            part.unlink()
            return False
        raise DownloadError(f"{remote.url} answered HTTP {err.code} ({err.reason}). " + by_hand) from None
    except NETWORK_ERRORS as err:
        kept = f" The {part.stat().st_size:,} bytes received are kept in {part}; the next run resumes." \
            if part.is_file() and part.stat().st_size else ""
        reason = getattr(err, "reason", None) or err
        raise DownloadError(f"Could not download {remote.name} from {host_of(remote.url)} ({type(err).__name__}: "
                            f"{reason}). Check the connection (and a proxy, if you use one) and run the download "
                            f"again.{kept} " + by_hand) from None
    return True


def bytes_on_disk(path: Path) -> int:
    """The size of path in bytes, 0 when it is not there: how much of a download is already on disk.
    Lessons 10 and 13."""
    return path.stat().st_size if path.is_file() else 0


def part_path(dest: Path) -> Path:
    """dest.part: where a download of dest collects its bytes until it is whole and checked. Lessons 10 and 13."""
    return dest.with_name(dest.name + ".part")


def host_of(url: str) -> str:
    """The host name of url, for messages. Lessons 10 and 13."""
    return urllib.parse.urlsplit(url).netloc or url


def checked_marker(dest: Path) -> Path:
    """The file beside dest that records a passed check (size and time), so a rerun skips re-hashing.
    Lessons 10 and 13."""
    return dest.with_name(f".{dest.name}.checked")


def _stamp(path: Path) -> dict:
    st = path.stat()
    return dict(size=st.st_size, mtime_ns=st.st_mtime_ns)


def _file_problem(path: Path, remote: Remote) -> str | None:
    """None when path is the expected file (size, then SHA-256 once: a marker remembers it), else why not."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != remote.size:
        return f"{size:,} bytes instead of {remote.size:,}"
    try:
        if json.loads(checked_marker(path).read_text()) == _stamp(path):
            return None
    except (OSError, ValueError):
        pass
    if _sha256(path, remote) not in (None, remote.sha256):
        return "damaged (its SHA-256 differs)"
    checked_marker(path).write_text(json.dumps(_stamp(path)) + "\n")
    return None


def _sha256(path: Path, remote: Remote) -> str | None:
    """The file's SHA-256 (with a progress bar for big files); None when there is none to compare with."""
    if remote.sha256 is None:
        return None
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"Checking {path.name}",
                                     disable=path.stat().st_size < 1 << 27) as bar:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()
