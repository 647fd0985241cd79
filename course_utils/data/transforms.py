"""Augmentations for Carvana with albumentations: image and mask transformed as a pair (lesson 05).

Geometry (resize, flip, affine) moves image and mask together; masks are resampled with
nearest-neighbour interpolation so they stay exactly {0, 1}. Colour changes touch the image only.
Resizing comes first, so the random transforms run on the small image (cheap).
"""
from __future__ import annotations

import albumentations as A
import cv2

__all__ = ["train_transform", "eval_transform"]


def _resize(size: tuple[int, int]) -> A.Resize:
    height, width = size
    # INTER_AREA when shrinking the photo (1918 wide -> a few hundred) avoids aliasing;
    # the mask always uses nearest neighbour, so it stays binary.
    return A.Resize(height, width, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                    area_for_downscale="image")


def train_transform(size: tuple[int, int], seed: int | None = None) -> A.Compose:
    """Training augmentation at size (H, W): resize, horizontal flip, mild affine, colour changes.

    Call it as t(image=uint8 (H0, W0, 3), mask=uint8 (H0, W0)) -> {"image": (H, W, 3), "mask": (H, W)}.
    seed makes the random draws repeatable (albumentations' Compose seed).
    """
    return A.Compose([
        _resize(size),
        A.HorizontalFlip(p=0.5),  # a car seen from the left looks like one seen from the right
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.06, 0.06), rotate=(-5, 5),
                 interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                 border_mode=cv2.BORDER_REFLECT_101, p=0.7),
        # Elastic deformation (the paper's key augmentation, Section 3.1) goes here: issue 3.
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.7),
        A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=0, p=0.5),
    ], seed=seed)


def eval_transform(size: tuple[int, int]) -> A.Compose:
    """Validation/test transform: only the resize to (H, W), mask by nearest neighbour."""
    return A.Compose([_resize(size)])
