"""Reading NYU Depth V2's labeled set for segmentation and depth (lesson 10).

    root/nyu_depth_v2_labeled.mat  MATLAB v7.3 = HDF5 (2.8 GB, 1449 frames of 480 x 640). h5py
                                   sees MATLAB's axes reversed: images (N, 3, W, H) uint8,
                                   depths (N, W, H) float32 metres, labels (N, W, H) uint16 raw ids
    root/splits.mat                trainNdxs (795, 1), testNdxs (654, 1): 1-indexed frame numbers
    root/classMapping40.mat        mapClass: raw label 1..894 -> class 1..40; className: 40 names
    root/class13Mapping.mat        classMapping13.labels13: class 1..40 -> 1..13; .classNames: 13 names

`python -m course_utils.data download nyuv2` fetches these files; `ensure_toy_nyuv2()` draws a
toy set in the same files. The class mapping is read from the two mapping files, never typed in.
Raw label 0 means "unlabeled": it becomes IGNORE_INDEX (255) in the targets, the value that
`nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)` and `mean_iou(..., ignore_index=IGNORE_INDEX)`
skip. Depth 0 means "no measurement" and must be masked out of depth losses and metrics.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = ["NYUv2Dataset", "IGNORE_INDEX", "nyuv2_class_names", "label_frequencies", "read_class_mapping"]

IGNORE_INDEX = 255  # target value of unlabeled pixels (raw label 0)
NUM_CLASSES = (13, 40)
SPLITS = ("train", "test")
TASKS = ("seg", "depth")
LABELED, SPLIT_FILE, MAPPING_40, MAPPING_13 = ("nyu_depth_v2_labeled.mat", "splits.mat", "classMapping40.mat",
                                               "class13Mapping.mat")
HOW_TO_GET = ("Draw the toy set with `python -m course_utils.data toy nyuv2` (or ensure_toy_nyuv2()), or download "
              "the real one (2.8 GB) with `python -m course_utils.data download nyuv2` (lesson 10).")


def _need(path: Path) -> Path:
    if not path.is_file():
        where = "" if path.parent.is_dir() else f" (the folder {path.parent} does not exist either)"
        raise FileNotFoundError(f"NYUv2 needs {path}, which is missing{where}. {HOW_TO_GET}")
    return path


def _loadmat(path: Path) -> dict:
    """A MATLAB v5 file as scipy reads it, with an error naming the file when it is damaged."""
    from scipy.io import loadmat

    _need(path)
    try:
        return loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError) as err:
        raise OSError(f"Could not read {path} ({err}). The file is damaged or not the NYUv2 metadata file; "
                      f"delete it and run the download again. {HOW_TO_GET}") from err


def _strings(cell: np.ndarray) -> list[str]:
    """The strings of a MATLAB cell array as scipy returns it (each element a 1-element array)."""
    return [str(np.asarray(c).ravel()[0]) if np.asarray(c).size else "" for c in np.asarray(cell).ravel()]


def read_class_mapping(root: str | Path, num_classes: int = 13) -> tuple[np.ndarray, list[str]]:
    """Lookup table raw label -> class, read from the data set's mapping files, and the class names.

    Returns (lut, names): lut uint8 (895,) with lut[raw] in 1..num_classes and lut[0] = 0
    (unlabeled); names the num_classes class names, in class order (class k is names[k - 1]). Lesson 10.
    """
    _check_num_classes(num_classes)
    root = Path(root)
    m40 = _loadmat(root / MAPPING_40)
    try:
        map_class = np.asarray(m40["mapClass"]).ravel().astype(np.int64)  # raw 1..894 -> 1..40
        names = _strings(m40["className"])
        if num_classes == 13:
            s = _loadmat(root / MAPPING_13)["classMapping13"][0, 0]
            to13 = np.concatenate([[0], np.asarray(s["labels13"]).ravel().astype(np.int64)])  # 0 stays 0
            map_class, names = to13[map_class], _strings(s["classNames"])
    except (KeyError, IndexError, ValueError) as err:
        raise OSError(f"The NYUv2 mapping files in {root} do not have the expected layout ({err!r}); "
                      f"delete them and run the download again. {HOW_TO_GET}") from err
    if len(names) != num_classes or map_class.min(initial=0) < 0 or map_class.max(initial=0) > num_classes:
        raise OSError(f"The NYUv2 mapping files in {root} give {len(names)} names and classes up to "
                      f"{map_class.max(initial=0)}, not {num_classes}; delete them and download them again.")
    return np.concatenate([[0], map_class]).astype(np.uint8), names


def nyuv2_class_names(root: str | Path, num_classes: int = 13) -> list[str]:
    """The class names (13 or 40) as the data set's mapping files list them; target k is names[k]. Lesson 10."""
    return read_class_mapping(root, num_classes)[1]


def _check_num_classes(num_classes: int) -> None:
    if num_classes not in NUM_CLASSES:
        raise ValueError(f"NYUv2 comes with a 13-class and a 40-class labelling; num_classes={num_classes!r} is "
                         "neither. Use num_classes=13 (lesson 10's first model) or 40.")


def _tasks(tasks: str | Sequence[str]) -> tuple[str, ...]:
    names = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not names or any(t not in TASKS for t in names) or len(set(names)) != len(names):
        raise ValueError(f"tasks={tasks!r}: use 'seg' (class labels), 'depth' (metres), or ('seg', 'depth') for both.")
    return names


class NYUv2Dataset(torch.utils.data.Dataset):
    """NYU Depth V2's labeled frames as tensors for segmentation, depth, or both.

    root: the data-set folder (data_root() / "nyuv2", or / "toy_nyuv2" from ensure_toy_nyuv2()).
    split: "train" (795 real frames) or "test" (654), from splits.mat.
    num_classes: 13 or 40, the classes of classMapping40.mat / class13Mapping.mat.
    transform: albumentations-style callable, called as transform(image=uint8 (H, W, 3),
        masks=[classes uint8 (H, W) with 0 = unlabeled, 1..C, and depth float32 (H, W) when a task
        needs it]) and returning a dict with "image" and "masks". Geometry then moves image, labels
        and depth together (masks use nearest neighbour); pixels a transform pads with 0 count as
        unlabeled and as invalid depth. data.train_transform / eval_transform work as they are.
    tasks: "seg", "depth", or a tuple such as ("seg", "depth").
    size: (H, W) to resize every frame to first (image by area/bilinear, labels and depth by nearest).

    Items are (image, target): image float32 (3, H, W) in [0, 1]; for tasks="seg" the target is
    int64 (H, W) with classes 0..C-1 and IGNORE_INDEX (255) where unlabeled; for tasks="depth"
    float32 (1, H, W) metres, 0 where the sensor has no depth; for a tuple of tasks a dict
    {"seg": ..., "depth": ...}. The 2.8 GB file is never loaded whole: each process (each
    DataLoader worker) opens it on its first item and reads one frame per item.

    >>> ds = NYUv2Dataset(ensure_toy_nyuv2(), "train", num_classes=13)   # doctest: +SKIP
    >>> image, seg = ds[0]; image.shape, seg.shape                       # doctest: +SKIP
    (torch.Size([3, 96, 128]), torch.Size([96, 128]))

    Lessons 10 and 11.
    """

    def __init__(self, root: str | Path, split: str = "train", num_classes: int = 13,
                 transform: Callable[..., dict] | None = None, tasks: str | Sequence[str] = "seg",
                 size: tuple[int, int] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: NYUv2's splits.mat has 'train' (795 frames) and 'test' (654).")
        _check_num_classes(num_classes)
        self.root, self.split, self.num_classes = Path(root), split, num_classes
        self.tasks, self._single = _tasks(tasks), isinstance(tasks, str)
        self.transform = transform
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.path = _need(self.root / LABELED)
        self.lut, self.class_names = read_class_mapping(self.root, num_classes)
        self.frames, self.image_size = self._inspect()
        self.indices = self._split_indices()
        self._h5, self._pid = None, None

    def _inspect(self) -> tuple[int, tuple[int, int]]:
        """Number of frames and (H, W), checking the keys and axis order; the file is closed again."""
        import h5py

        try:
            with h5py.File(self.path, "r") as f:
                shapes = {k: f[k].shape for k in ("images", "depths", "labels")}
        except KeyError as err:
            raise OSError(f"{self.path} has no {err.args[0] if err.args else 'expected'} array; it is not NYUv2's "
                          f"labeled file (keys images, depths, labels). {HOW_TO_GET}") from err
        except OSError as err:
            raise OSError(f"Could not open {self.path} as HDF5 (MATLAB v7.3): {err}. A partial download? "
                          f"Delete it and run the download again. {HOW_TO_GET}") from err
        n, channels, width, height = shapes["images"]
        if channels != 3 or shapes["depths"] != (n, width, height) or shapes["labels"] != (n, width, height):
            raise OSError(f"{self.path} holds arrays of shapes {shapes}; NYUv2's are images (N, 3, W, H), depths and "
                          f"labels (N, W, H) as h5py reads MATLAB's (H, W, ...) arrays. {HOW_TO_GET}")
        return n, (height, width)

    def _split_indices(self) -> np.ndarray:
        """0-based frame indices of this split, from splits.mat's 1-based ones."""
        m = _loadmat(self.root / SPLIT_FILE)
        key = "trainNdxs" if self.split == "train" else "testNdxs"
        if key not in m:
            raise OSError(f"{self.root / SPLIT_FILE} has no {key}; delete it and download it again. {HOW_TO_GET}")
        idx = np.asarray(m[key]).ravel().astype(np.int64) - 1
        if idx.size == 0 or idx.min() < 0 or idx.max() >= self.frames:
            raise OSError(f"{self.root / SPLIT_FILE} lists frames {idx.min() + 1}..{idx.max() + 1} but "
                          f"{self.path} has {self.frames}: the files do not belong together. {HOW_TO_GET}")
        return idx

    # -- the HDF5 handle: opened lazily, once per process -------------------------------------
    def _file(self):
        if self._h5 is None or self._pid != os.getpid():  # a forked DataLoader worker opens its own
            import h5py

            self._h5, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._h5

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_h5"], state["_pid"] = None, None  # an open HDF5 file cannot be pickled (spawned workers)
        return state

    def close(self) -> None:
        """Close this process's handle on the file (the next item opens it again)."""
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5, self._pid = None, None

    def __len__(self) -> int:
        return len(self.indices)

    def frame(self, i: int) -> int:
        """The 1-based NYUv2 frame number of item i (as in splits.mat and the 13-class label PNGs)."""
        return int(self.indices[i]) + 1

    def load(self, i: int, depth: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Item i as stored, at `size` if given: image uint8 (H, W, 3), classes uint8 (H, W) (0 unlabeled,
        1..C), depth float32 (H, W) metres (None when depth=False)."""
        f, k = self._file(), int(self.indices[i])
        image = np.ascontiguousarray(f["images"][k].transpose(2, 1, 0))  # (3, W, H) -> (H, W, 3)
        raw = f["labels"][k].T
        if raw.max(initial=0) >= len(self.lut):
            raise ValueError(f"Frame {k + 1} of {self.path} has raw label {raw.max()}, beyond NYUv2's 1..894.")
        classes = np.ascontiguousarray(self.lut[raw])
        d = np.ascontiguousarray(f["depths"][k].T, dtype=np.float32) if depth else None
        if self.size is not None and self.size != image.shape[:2]:
            image, classes, d = _resize(image, classes, d, self.size)
        return image, classes, d

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} of a {len(self)}-frame NYUv2 {self.split} split")
        image, classes, depth = self.load(i % len(self), depth="depth" in self.tasks)
        if self.transform is not None:
            out = self.transform(image=image, masks=[classes] if depth is None else [classes, depth])
            image, masks = out["image"], out["masks"]
            classes, depth = np.asarray(masks[0]), (None if depth is None else np.asarray(masks[1], np.float32))
        targets = {}
        if "seg" in self.tasks:
            seg = torch.from_numpy(np.asarray(classes).astype(np.int64)) - 1
            targets["seg"] = seg.masked_fill_(seg < 0, IGNORE_INDEX)
        if "depth" in self.tasks:
            targets["depth"] = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        image = torch.from_numpy(np.ascontiguousarray(image).transpose(2, 0, 1).astype(np.float32) / 255)
        return (image, targets[self.tasks[0]]) if self._single else (image, targets)

    def __repr__(self) -> str:
        return (f"NYUv2Dataset({str(self.root)!r}, split={self.split!r}, num_classes={self.num_classes}, "
                f"tasks={self.tasks if not self._single else self.tasks[0]!r}, {len(self)} frames of "
                f"{self.size or self.image_size})")


def _resize(image, classes, depth, size):
    import cv2

    height, width = size
    shrink = height < image.shape[0] and width < image.shape[1]
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    classes = cv2.resize(classes, (width, height), interpolation=cv2.INTER_NEAREST)
    if depth is not None:  # nearest: averaging a valid depth with a 0 would invent a wrong one
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, classes, depth


def label_frequencies(dataset: NYUv2Dataset, chunk: int = 32) -> np.ndarray:
    """Pixels of each class over the dataset's frames, at full resolution: int64 (num_classes,).

    Unlabeled pixels are not counted. Reads only the labels, `chunk` frames at a time. The counts
    become class weights for the loss (e.g. median frequency / frequency). Lesson 10.
    """
    import h5py

    counts = np.zeros(dataset.num_classes + 1, np.int64)
    frames = np.sort(dataset.indices)
    with h5py.File(dataset.path, "r") as f:
        labels = f["labels"]
        for start in range(0, len(frames), chunk):
            raw = labels[frames[start:start + chunk]]  # h5py reads increasing indices
            counts += np.bincount(dataset.lut[raw].ravel(), minlength=len(counts))
    return counts[1:]
