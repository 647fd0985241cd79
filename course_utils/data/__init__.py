"""Carvana data for the course (lesson 05): the toy set, the loader, the split by car, augmentations.

The real data set is fetched with `python -m course_utils.data download carvana`; the toy one
is drawn on first use by `ensure_toy_carvana()` (or `python -m course_utils.data toy carvana`).
`CarvanaDataset(root, ids, transform, size=(H, W))` is the fast loader (a one-time resized cache).
"""
from __future__ import annotations

from ..rle import rle_decode, rle_encode
from .cache import ResizedCache, build_cache
from .carvana import CarvanaDataset, car_id, split_cars, split_summary
from .download import DownloadError, download_carvana
from .toy_carvana import ensure_toy_carvana, make_toy_carvana
from .transforms import GridElastic, eval_transform, train_transform

__all__ = [
    "CarvanaDataset",
    "DownloadError",
    "GridElastic",
    "ResizedCache",
    "build_cache",
    "car_id",
    "download_carvana",
    "ensure_toy_carvana",
    "eval_transform",
    "make_toy_carvana",
    "rle_decode",
    "rle_encode",
    "split_cars",
    "split_summary",
    "train_transform",
]
