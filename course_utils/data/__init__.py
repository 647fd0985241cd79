"""Carvana data for the course (lesson 05): the toy set, the loader, the split by car, augmentations.

The real data set is fetched with `python -m course_utils.data download carvana`; the toy one
is drawn on first use by `ensure_toy_carvana()`.
"""
from __future__ import annotations

from ..rle import rle_decode, rle_encode
from .carvana import CarvanaDataset, car_id, split_cars
from .toy_carvana import ensure_toy_carvana, make_toy_carvana
from .transforms import eval_transform, train_transform

__all__ = [
    "CarvanaDataset",
    "car_id",
    "ensure_toy_carvana",
    "eval_transform",
    "make_toy_carvana",
    "rle_decode",
    "rle_encode",
    "split_cars",
    "train_transform",
]
