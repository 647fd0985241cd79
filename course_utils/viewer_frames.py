"""The parts of PredictionViewer (course_utils.viewer) that need no widgets: checking the dataset
and the model it is given, scoring one image's labels, ordering worst first, and composing a
frame of titled panels with PIL.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn
from torch.utils.data import Dataset

from .metrics import confusion_matrix, confusion_scores


def dataset_length(dataset: Dataset) -> int:
    """len(dataset), or a clear error for something that is not a data set (a DataLoader) or is empty. Lesson 07."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"PredictionViewer needs a dataset (len(dataset) and dataset[i]), got a "
                        f"{type(dataset).__name__}; pass e.g. a CarvanaDataset, not a DataLoader.")
    n = len(dataset)
    if n == 0:
        raise ValueError("The dataset is empty (0 images), so there is nothing to show. Check the ids or the "
                         "split that made it (e.g. split_cars(root) gave an empty side).")
    return n


def check_item(item: Any, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (C, H, W) float, mask (H, W)) from a dataset item, or an error saying what is wrong.
    A target {"mask", "weight"} (a weight-map data set) gives its mask. Lessons 07 and 13."""
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        what = f"a {type(item).__name__}" + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
        raise TypeError(f"PredictionViewer needs dataset items (image, mask), like CarvanaDataset's; item {i} is "
                        f"{what}. Wrap the dataset so that it returns (image, mask).")
    target = item[1]
    if isinstance(target, dict):
        if "mask" not in target:
            raise TypeError(f"Item {i}'s target is a dict with keys {sorted(target)}; PredictionViewer shows a "
                            "target dict by its 'mask' entry, which it lacks.")
        target = target["mask"]
    image, mask = torch.as_tensor(item[0]), torch.as_tensor(target)
    if image.ndim != 3:
        raise ValueError(f"Item {i}'s image has shape {tuple(image.shape)}; PredictionViewer needs (C, H, W) "
                         "(channels first, e.g. (3, 160, 240)).")
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != image.shape[1:]:
        raise ValueError(f"Item {i}'s mask has shape {tuple(torch.as_tensor(target).shape)} but its image "
                         f"{tuple(image.shape)}; the mask must be (1, H, W) or (H, W) with the image's H and W.")
    return image.float() if not image.is_floating_point() else image, mask


def check_input_channels(model: nn.Module, image: torch.Tensor) -> None:
    """A clear error when the model takes another number of channels than the images have. Lesson 07."""
    config = getattr(model, "config", None)
    wanted = config.get("in_channels") if isinstance(config, dict) else None
    if wanted is None:
        wanted = next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if wanted is not None and wanted != image.shape[0]:
        raise ValueError(f"The model takes {wanted}-channel images but the dataset's images have {image.shape[0]} "
                         f"channels (shape {tuple(image.shape)}). Use a model built with in_channels={image.shape[0]}, "
                         "or the dataset it was trained on.")


def worst_first(score: float, index: int) -> tuple:
    """Sort key: lowest score first, ties in dataset order, nan (nothing to score) last. Lesson 07."""
    return (True, 0.0, index) if math.isnan(score) else (False, score, index)


def checked_class_names(names: Sequence[str] | None, num_classes: int) -> list[str]:
    """The legend's class names: the given ones (one per class), else "class 0", "class 1" and so on. Lesson 10."""
    if names is None:
        return [f"class {c}" for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names but the model predicts {num_classes} classes.")
    return [str(n) for n in names]


def label_scores(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int) -> dict[str, float]:
    """Pixel accuracy over labelled pixels and mIoU over the classes present in target or prediction
    (nan for both when no pixel is labelled), from one image's confusion matrix. Lesson 10."""
    scores = confusion_scores(confusion_matrix(pred[None], target[None], num_classes, ignore_index), ignore_index)
    return {"pixel_accuracy": scores["pixel_accuracy"], "mean_iou": scores["mean_iou"]}


# ----------------------------------------------------------------------------- composing the frame
@lru_cache(maxsize=1)
def title_font() -> ImageFont.ImageFont:
    """The font of the panel titles, loaded once. Lesson 07."""
    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        return ImageFont.load_default()


def compose(panels: list[np.ndarray], titles: Sequence[str], gap: int = 4, header: int = 18) -> Image.Image:
    """Panels of one size side by side on white, each under its title (cut short with '...' to fit). Lesson 07."""
    h, w = panels[0].shape[:2]
    canvas = np.full((header + h, len(panels) * (w + gap) - gap, 3), 255, np.uint8)
    for k, panel in enumerate(panels):
        canvas[header:, k * (w + gap):k * (w + gap) + w] = panel
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for k, title in enumerate(titles):
        while len(title) > 3 and draw.textlength(title, font=title_font()) > w - 2:
            title = title[:-4].rstrip() + "..."
        draw.text((k * (w + gap) + 2, 2), title, fill=(40, 40, 40), font=title_font())
    return picture
