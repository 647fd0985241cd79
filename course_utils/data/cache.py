"""The fast loader's one-time cache: every Carvana image and mask already at the training size (lesson 05).

Decoding a 1918 x 1280 JPEG and GIF costs tens of milliseconds per item, every epoch, and a GPU
eats a batch faster than that. So the first `CarvanaDataset(root, ..., size=(H, W))` decodes each
pair once (JPEGs in draft mode: libjpeg decodes them directly at 1/2, 1/4 or 1/8 scale, several
times faster), resizes it with the same eval_transform(size) the slow path uses, and stores all
of them in two numpy files:

    root/.cache/{H}x{W}-{key}/images.npy   uint8 (N, H, W, 3)
                              masks.npy    uint8 (N, H, W), values {0, 1}
                              index.json   the image ids (row order), size, method, key

Later datasets memory-map these files: an item is a slice copy, thousands per second. The key
hashes the names, sizes and modification times of every file in train/ and train_masks/, the
size and the resize method, so a changed data set or another size gets its own, new cache
(older caches of the same size are deleted once the new one is complete).

When the data set's folder is read-only (Kaggle's attached data, a class's shared folder), the
cache goes to the work root instead: work_root()/.cache/<folder name>-<hash of its path>/, one
folder per data set, so caches of different data sets never replace each other, and every
user (each with their own work root) builds their own.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .carvana_files import find_masks, image_error, image_ids, image_path, read_image, read_mask, size_mismatch
from .folders import remove_abandoned_partials
from .transforms import resize

__all__ = ["ResizedCache", "build_cache", "cache_folder", "decode_whole_jpeg", "default_cache_dir"]

CACHE_VERSION = 1
METHOD = ("jpeg-draft(W,H) where libjpeg can shrink, else torchvision decode_jpeg; then eval_transform resize "
          "(INTER_AREA image, INTER_NEAREST mask)")
COMPLETE = "index.json"  # written last: the cache is whole


def _listing(root: Path) -> tuple[list[str], list[Path], list[Path]]:
    """(ids, image paths, mask paths) of every image in root/train, checked like CarvanaDataset does."""
    ids = image_ids(root)
    return ids, [image_path(root, i) for i in ids], find_masks(root, ids)


def _key(size: tuple[int, int], images: list[Path], masks: list[Path]) -> str:
    """Hash of what the cache depends on: every source file's name, size and mtime, the size, the method."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, METHOD, list(size)]).encode())
    for path in (*images, *masks):
        st = path.stat()
        h.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def default_cache_dir(root: str | Path) -> Path:
    """Where the caches of data set `root` go unless cache_dir is given: root/.cache when root is writable,
    else work_root()/.cache/<name>-<hash of root's path> (see the module docstring). Lesson 05."""
    from ..environment import is_writable, work_root

    root = Path(root)
    if is_writable(root):
        return root / ".cache"
    where = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return work_root() / ".cache" / f"{root.resolve().name}-{where}"


def cache_folder(root: str | Path, size: tuple[int, int], cache_dir: str | Path | None = None) -> Path:
    """Where the cache of `root` at `size` (H, W) lives for the files as they are now (built or not). Lesson 05."""
    root = Path(root)
    size = (int(size[0]), int(size[1]))
    _, images, masks = _listing(root)
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir(root)
    return base / f"{size[0]}x{size[1]}-{_key(size, images, masks)}"


def load_resized(image_path: Path, mask_path: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One pair at size (H, W): the JPEG decoded in draft mode (at 1/2, 1/4 or 1/8 scale, at least
    (H, W)), then resized exactly as eval_transform(size) does; the mask from the full-size GIF.

    Where draft mode cannot shrink the photo (H, W above half its size, e.g. 640 x 960 from
    Carvana's 1280 x 1918), the JPEG is decoded whole by torchvision.io.decode_jpeg: measured 1.85x
    faster than PIL for that cache path (benchmarks/torchvision_ops.py); PIL's draft mode wins
    wherever it applies. Same checks and messages as CarvanaDataset.load. Lesson 05.
    """
    height, width = size
    try:
        with Image.open(image_path) as im:
            full = im.size  # (W, H) of the file, before draft mode shrinks it
            whole = im.format == "JPEG" and (2 * width > full[0] or 2 * height > full[1])
            if whole:
                image = decode_whole_jpeg(image_path)
            else:
                if im.format == "JPEG":  # libjpeg decodes at 1/2, 1/4 or 1/8 scale, never below (W, H)
                    im.draft("RGB", (width, height))
                image = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, SyntaxError) as err:
        raise image_error(image_path, err) from err
    mask = read_mask(mask_path)
    if (mask.shape[1], mask.shape[0]) != full:
        raise size_mismatch(image_path, full, mask_path, mask.shape)
    resized = resize(size)  # eval_transform's own resize: INTER_AREA when shrinking, masks nearest
    return resized.apply(image), resized.apply_to_mask(mask)


def decode_whole_jpeg(path: Path) -> np.ndarray:
    """The JPEG at its full size as uint8 (H, W, 3), by torchvision's libjpeg-turbo decoder (the same
    pixels as PIL's). torchvision 0.29 deprecates its image decoding in favour of TorchCodec; where a
    later torchvision no longer has it, PIL decodes instead. Lesson 05."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg, read_file
    except ImportError:  # torchvision without image decoding: PIL gives the same pixels, a little slower
        return read_image(path)
    return decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB).permute(1, 2, 0).numpy()


def build_cache(root: str | Path, size: tuple[int, int], cache_dir: str | Path | None = None,
                workers: int | None = None, progress: bool = True) -> Path:
    """Build (or find) the cache of `root` at size (H, W); return its folder. See the module docstring.

    workers: decoding threads (PIL and OpenCV release the GIL); default min(8, CPU count).
    The cache is written to a temporary folder and renamed when whole, so an interrupted build
    is never mistaken for a finished one, and two processes building at once do not collide. Lesson 05.
    """
    root = Path(root)
    size = (int(size[0]), int(size[1]))
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (H, W) with positive sides, got {size}.")
    ids, images, masks = _listing(root)
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir(root)
    folder = base / f"{size[0]}x{size[1]}-{_key(size, images, masks)}"
    if (folder / COMPLETE).is_file():
        return folder
    _make_writable_folder(base, cache_dir is None)
    _check_space(base, len(ids) * size[0] * size[1] * 4)
    remove_abandoned_partials(base, ".*.partial-*")
    tmp = base / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _fill(tmp, ids, images, masks, size, workers, progress)
        (tmp / COMPLETE).write_text(json.dumps(dict(
            ids=ids, size=list(size), method=METHOD, version=CACHE_VERSION, root=str(root.resolve()))) + "\n")
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same cache first: use theirs
            if not (folder / COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in base.glob(f"{size[0]}x{size[1]}-*"):  # the same size for files that have changed since
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def _fill(tmp: Path, ids: list[str], images: list[Path], masks: list[Path], size: tuple[int, int],
          workers: int | None, progress: bool) -> None:
    """Decode every pair into images.npy / masks.npy in `tmp`, with a progress bar."""
    from tqdm.auto import tqdm

    n, (height, width) = len(ids), size
    image_store = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, height, width, 3))
    mask_store = np.lib.format.open_memmap(tmp / "masks.npy", mode="w+", dtype=np.uint8, shape=(n, height, width))

    def one(k: int) -> None:
        image_store[k], mask_store[k] = load_resized(images[k], masks[k], size)

    workers = min(8, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    bar = tqdm(total=n, desc=f"Caching {n} Carvana images at {height}x{width} (once)", unit="img",
               disable=not progress)
    with bar, ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(one, k) for k in range(n)]
        try:
            for future in futures:
                future.result()  # re-raises a worker's error (it names the file)
                bar.update()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    image_store.flush()
    mask_store.flush()
    del image_store, mask_store


def _make_writable_folder(base: Path, default: bool) -> None:
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = base / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        where = "in the work folder" if default else "at the folder you chose"
        raise PermissionError(
            f"Cannot write the loader cache {where}, {base} ({err.strerror or err}). Choose a writable work "
            "folder (--work-dir DIR on the command lines, or the environment variable UNET_COURSE_WORK), or pass "
            "one for the cache alone: CarvanaDataset(root, ids, transform, size=(H, W), cache_dir='/tmp/carvana-cache')."
        ) from err


def _check_space(base: Path, needed: int) -> None:
    free = shutil.disk_usage(base).free
    if needed > free:
        raise OSError(
            f"The loader cache needs {needed / 2**30:.1f} GiB but {base} has {free / 2**30:.1f} GiB free. "
            "Free some space, pass cache_dir= on a bigger disk, or use a smaller size."
        )


class ResizedCache:
    """A built cache, memory-mapped: `get(image_id)` -> (image uint8 (H, W, 3), mask uint8 (H, W)), copies.

    The memory maps open lazily in each process, so a dataset holding this pickles cheaply into
    DataLoader workers, which then share the operating system's page cache. Lesson 05.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index = json.loads((self.folder / COMPLETE).read_text())
        self.ids: list[str] = index["ids"]
        self.size: tuple[int, int] = tuple(index["size"])
        self.row = {image_id: k for k, image_id in enumerate(self.ids)}
        self._images: np.ndarray | None = None
        self._masks: np.ndarray | None = None

    @classmethod
    def open_or_build(cls, root: str | Path, size: tuple[int, int], cache_dir: str | Path | None = None,
                      workers: int | None = None, progress: bool = True) -> "ResizedCache":
        """The cache of `root` at `size`, built first when missing or out of date."""
        return cls(build_cache(root, size, cache_dir=cache_dir, workers=workers, progress=progress))

    def _open(self) -> None:
        self._images = np.load(self.folder / "images.npy", mmap_mode="r")
        self._masks = np.load(self.folder / "masks.npy", mmap_mode="r")

    def get(self, image_id: str) -> tuple[np.ndarray, np.ndarray]:
        if self._images is None:
            self._open()
        k = self.row[image_id]
        return np.array(self._images[k]), np.array(self._masks[k])

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_images"] = state["_masks"] = None  # never pickle the mapped arrays themselves
        return state

    def __repr__(self) -> str:
        return f"ResizedCache({str(self.folder)!r}, {len(self)} pairs at {self.size[0]}x{self.size[1]})"
