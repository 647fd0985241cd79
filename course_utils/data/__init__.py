"""The course's data: Carvana (lesson 05) and NYU Depth V2 (lesson 08), real and toy, with their loaders.

The real data sets are fetched with `python -m course_utils.data download carvana|nyuv2`; the
toy ones are drawn on first use by `ensure_toy_carvana()` / `ensure_toy_nyuv2()` (or
`python -m course_utils.data toy carvana|nyuv2`). `CarvanaDataset(root, ids, transform,
size=(H, W))` is the fast Carvana loader (a one-time resized cache); `NYUv2Dataset(root, split,
num_classes, transform, tasks)` reads NYUv2's labeled file for segmentation and depth.
"""
from __future__ import annotations

from ..rle import rle_decode, rle_encode
from .cache import ResizedCache, build_cache
from .carvana import CarvanaDataset, car_id, split_cars, split_summary
from .download import DownloadError, download_carvana, download_nyuv2
from .nyuv2 import IGNORE_INDEX, NYUv2Dataset, label_frequencies, nyuv2_class_names, read_class_mapping
from .toy_carvana import ensure_toy_carvana, make_toy_carvana
from .toy_nyuv2 import ensure_toy_nyuv2, make_toy_nyuv2
from .transforms import GridElastic, eval_transform, train_transform

__all__ = [
    "CarvanaDataset",
    "DownloadError",
    "GridElastic",
    "IGNORE_INDEX",
    "NYUv2Dataset",
    "ResizedCache",
    "build_cache",
    "car_id",
    "download_carvana",
    "download_nyuv2",
    "ensure_toy_carvana",
    "ensure_toy_nyuv2",
    "eval_transform",
    "label_frequencies",
    "make_toy_carvana",
    "make_toy_nyuv2",
    "nyuv2_class_names",
    "read_class_mapping",
    "rle_decode",
    "rle_encode",
    "split_cars",
    "split_summary",
    "train_transform",
]
