"""Facts about NYU Depth V2's classes: names, the 40 -> 13 table, raw ids the toy draws (lesson 10).

The toy data set writes its mapping files from these, and lesson 10's checks build test files
from them, so both hold the real names and the real table.
"""
from __future__ import annotations

import numpy as np

__all__ = ["RAW_IDS", "CLASS_NAMES_40", "CLASS_NAMES_13", "CLASS_13_OF_40", "matlab_cell"]

# Facts about NYUv2: a raw label id for each surface the toy draws, and its class in the real
# 40-class mapping (classMapping40.mat: className[mapClass[raw - 1] - 1]).
RAW_IDS: dict[str, int] = {
    "wall": 21, "floor": 11, "ceiling": 4, "window": 59, "picture": 64, "door": 28, "bed": 157,
    "pillow": 119, "table": 19, "chair": 5, "sofa": 83, "cabinet": 3, "television": 172, "books": 85,
    "box": 26, "floor mat": 143, "lamp": 144, "night stand": 158,
}
CLASS_NAMES_40 = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat", "clothes",
    "ceiling", "books", "refridgerator", "television", "paper", "towel", "shower curtain", "box", "whiteboard",
    "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure", "otherfurniture",
    "otherprop",
)
CLASS_NAMES_13 = ("bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table",
                  "tv", "wall", "window")
# the 13-class name of each 40-class, in CLASS_NAMES_40's order (class13Mapping.mat's labels13)
CLASS_13_OF_40 = (
    "wall", "floor", "furniture", "bed", "chair", "sofa", "table", "wall", "window", "furniture", "picture",
    "furniture", "window", "table", "furniture", "window", "furniture", "objects", "objects", "floor", "objects",
    "ceiling", "books", "furniture", "tv", "objects", "objects", "objects", "objects", "objects", "objects",
    "furniture", "objects", "objects", "objects", "objects", "objects", "objects", "furniture", "objects",
)


def matlab_cell(names: tuple[str, ...]) -> np.ndarray:
    """A 1 x n MATLAB cell array of strings, as the mapping files store class names (scipy.io.savemat
    writes it). Lesson 10."""
    cell = np.empty((1, len(names)), object)
    cell[0, :] = names
    return cell
