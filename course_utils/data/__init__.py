"""The course's data: Carvana (lesson 05), NYU Depth V2 (lesson 10) and ISBI 2012 EM (lesson 13), with loaders.

The real data sets are fetched with `python -m course_utils.data download carvana|nyuv2`; the
toy ones are drawn on first use by `ensure_toy_carvana()` / `ensure_toy_nyuv2()` (or
`python -m course_utils.data toy carvana|nyuv2`). `CarvanaDataset(root, ids, transform,
size=(H, W))` is the fast Carvana loader (a one-time resized cache); `NYUv2Dataset(root, split,
num_classes, transform, tasks)` reads NYUv2's labeled file for segmentation and depth.
`ensure_isbi2012()` downloads the ISBI 2012 stacks on first use (or `python -m course_utils.data
download isbi2012`); `ISBI2012Dataset(root, split, slices, transform, weight_map)` reads their slices.
"""
from __future__ import annotations

from ..rle import rle_decode, rle_encode
from .cache import ResizedCache, build_cache, cache_folder
from .carvana import CarvanaDataset, car_photo, split_by_image, split_cars, split_summary
from .carvana_files import car_id
from .download import ARCHIVES, RULES_URL, DownloadError, download_carvana, download_nyuv2
from .isbi2012_download import download_isbi2012, ensure_isbi2012
from .isbi2012 import (ISBI2012Dataset, cell_labels, check_isbi2012, em_eval_transform, em_train_transform,
                       held_out_split, read_isbi2012, read_stack, write_stack)
from .nyuv2 import IGNORE_INDEX, NYUv2Dataset, label_frequencies, nyuv2_class_names, read_class_mapping
from .nyuv2_classes import RAW_IDS
from .toy_carvana import ensure_toy_carvana, make_toy_carvana
from .toy_nyuv2 import ensure_toy_nyuv2, make_toy_nyuv2
from .transforms import GridElastic, eval_transform, paper_sigma, train_transform

__all__ = [
    "ARCHIVES",
    "CarvanaDataset",
    "DownloadError",
    "GridElastic",
    "IGNORE_INDEX",
    "ISBI2012Dataset",
    "NYUv2Dataset",
    "RAW_IDS",
    "RULES_URL",
    "ResizedCache",
    "build_cache",
    "cache_folder",
    "car_id",
    "cell_labels",
    "check_isbi2012",
    "download_carvana",
    "download_isbi2012",
    "download_nyuv2",
    "em_eval_transform",
    "em_train_transform",
    "ensure_isbi2012",
    "ensure_toy_carvana",
    "ensure_toy_nyuv2",
    "eval_transform",
    "held_out_split",
    "label_frequencies",
    "make_toy_carvana",
    "make_toy_nyuv2",
    "nyuv2_class_names",
    "paper_sigma",
    "read_class_mapping",
    "read_isbi2012",
    "read_stack",
    "rle_decode",
    "rle_encode",
    "split_cars",
    "split_summary",
    "split_by_image",
    "car_photo",
    "train_transform",
    "write_stack",
]
