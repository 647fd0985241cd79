"""Augmentations for Carvana with albumentations: image and mask transformed as a pair (lesson 05).

Geometry (resize, flip, affine, the paper's elastic deformation) moves image and mask together;
masks are resampled with nearest-neighbour interpolation so they stay exactly {0, 1}. Colour
changes touch the image only. Resizing comes first, so the random transforms run on the small
image (cheap); on images that are already at the training size (the fast loader's cache) the
resize does nothing.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import albumentations as A
import cv2
import numpy as np

__all__ = ["GridElastic", "train_transform", "eval_transform", "resize", "paper_sigma"]

PAPER_SIGMA, PAPER_SIZE = 10.0, 512  # the paper: 10 px standard deviation on 512 x 512 images


@lru_cache(maxsize=32)
def _cubic_weights(n_out: int, n_in: int, a: float = -0.5) -> np.ndarray:
    """(n_out, n_in) matrix that interpolates n_in evenly spaced samples (first and last on the
    borders) to n_out positions with cubic convolution (Keys' kernel, a=-0.5: Catmull-Rom).

    At a sample's own position the weights are one-hot, so the field passes through the grid values.
    """
    t = np.linspace(0.0, n_in - 1.0, n_out) if n_out > 1 else np.zeros(1)
    i0 = np.minimum(np.floor(t).astype(int), n_in - 1)
    frac = t - i0
    weights = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    for k in (-1, 0, 1, 2):
        x = np.abs(frac - k)
        w = np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                     np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))
        np.add.at(weights, (rows, np.clip(i0 + k, 0, n_in - 1)), w)  # clamp taps past the border
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # shared by every call (lru_cache)
    return weights


class GridElastic(A.DualTransform):
    """The U-Net paper's elastic deformation (Section 3.1), applied to image and mask alike.

    Random displacement vectors on a coarse `grid` x `grid` lattice of control points (the
    paper: 3 x 3; corner points on the image corners) are drawn from a normal distribution with
    standard deviation `sigma` pixels, and interpolated to a smooth per-pixel displacement field
    with bicubic (cubic convolution) interpolation. Output pixel p shows input pixel p + d(p):
    the image is resampled bilinearly, the mask with nearest neighbour from the SAME field, so
    the mask stays exactly {0, 1} and on the car. Borders are mirrored (BORDER_REFLECT_101).

    sigma is in pixels of the image this transform receives. The paper used 10 px on 512 x 512
    images (about 2% of the side); train_transform runs it after the resize to the training
    size and scales sigma to keep that proportion (6.25 px at 320 x 480). sigma=0 changes nothing.

    >>> out = GridElastic(grid=3, sigma=10.0, p=1.0)(image=image, mask=mask)   # doctest: +SKIP

    Lessons 05 and 12.
    """

    def __init__(self, grid: int = 3, sigma: float = PAPER_SIGMA, p: float = 0.5) -> None:
        if int(grid) < 2:
            raise ValueError(f"GridElastic needs a grid of at least 2 x 2 control points, got grid={grid}.")
        if not sigma >= 0:
            raise ValueError(f"GridElastic's sigma is a standard deviation in pixels (>= 0), got {sigma}.")
        super().__init__(p=p)
        self.grid, self.sigma = int(grid), float(sigma)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("grid", "sigma")

    def displacement(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """A fresh random field: (dx, dy), each float32 (height, width), in pixels."""
        coarse = self.random_generator.normal(0.0, self.sigma, size=(2, self.grid, self.grid)).astype(np.float32)
        wy, wx = _cubic_weights(int(height), self.grid), _cubic_weights(int(width), self.grid)
        dx, dy = (wy @ c @ wx.T for c in coarse)
        return dx, dy

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        dx, dy = self.displacement(height, width)
        dx += np.arange(width, dtype=np.float32)[None, :]  # where each output pixel samples the input
        dy += np.arange(height, dtype=np.float32)[:, None]
        return {"map_x": dx, "map_y": dy}

    def _remap(self, img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, interpolation: int) -> np.ndarray:
        out = cv2.remap(img, map_x, map_y, interpolation=interpolation, borderMode=cv2.BORDER_REFLECT_101)
        return out.reshape(img.shape)  # cv2 drops a trailing channel axis of size 1

    def apply(self, img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, **params: Any) -> np.ndarray:
        return self._remap(img, map_x, map_y, cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, **params: Any) -> np.ndarray:
        return self._remap(mask, map_x, map_y, cv2.INTER_NEAREST)


def resize(size: tuple[int, int]) -> A.Resize:
    """The resize to (H, W) that every transform starts with, the mask by nearest neighbour so it stays
    {0, 1}; the fast loader's cache uses the same one. Lesson 05."""
    height, width = size
    # INTER_AREA when shrinking the photo (1918 wide -> a few hundred) avoids aliasing;
    # the mask always uses nearest neighbour, so it stays binary.
    return A.Resize(height, width, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                    area_for_downscale="image")


def paper_sigma(size: tuple[int, int]) -> float:
    """The paper's 10 px on 512 x 512 images, scaled to a training size (H, W) by its shorter side. Lesson 12."""
    return PAPER_SIGMA * min(size) / PAPER_SIZE


def train_transform(size: tuple[int, int], seed: int | None = None, elastic_sigma: float | None = None,
                    elastic_p: float = 0.5) -> A.Compose:
    """Training augmentation at size (H, W): resize, horizontal flip, mild affine, the paper's
    elastic deformation (GridElastic, 3 x 3 grid), colour changes.

    Call it as t(image=uint8 (H0, W0, 3), mask=uint8 (H0, W0)) -> {"image": (H, W, 3), "mask": (H, W)}.
    seed makes the random draws repeatable (albumentations' Compose seed). elastic_sigma is the
    displacement standard deviation in pixels at the training size (default: paper_sigma(size));
    elastic_p how often it is applied. Lesson 05.
    """
    sigma = paper_sigma(size) if elastic_sigma is None else elastic_sigma
    return A.Compose([
        resize(size),
        A.HorizontalFlip(p=0.5),  # a car seen from the left looks like one seen from the right
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.06, 0.06), rotate=(-5, 5),
                 interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                 border_mode=cv2.BORDER_REFLECT_101, p=0.7),
        GridElastic(grid=3, sigma=sigma, p=elastic_p),  # the paper's key augmentation (Section 3.1)
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.7),
        A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=0, p=0.5),
    ], seed=seed)


def eval_transform(size: tuple[int, int]) -> A.Compose:
    """Validation/test transform: only the resize to (H, W), mask by nearest neighbour. Lesson 05."""
    return A.Compose([resize(size)])
