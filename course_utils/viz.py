"""Looking at predictions: static figures and the colours they share (lessons 06-10, 13).

`show_predictions`, `save_prediction_figure` and `plot_history` are built on matplotlib's
`Figure` directly (not pyplot), so they work the same in a notebook (the returned figure
displays once) and in a script with no display. The colour helpers (a palette for classes,
colours for cells matched between truth and prediction) are plain numpy, shared by the widget
viewer (course_utils.viewer.PredictionViewer) and the lessons.
"""
from __future__ import annotations

import colorsys
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import ndimage
from torch import nn
from torch.utils.data import Dataset

from .inference import predict_probabilities
from .metrics import dice_score


def pick_indices(dataset: Dataset, n: int) -> list[int]:
    """Up to n indices from different cars, at different angles, when the dataset knows its
    image ids (Carvana ids are '<car>_<angle>'); else n indices spread evenly over it. Lesson 06."""
    n = min(n, len(dataset))
    ids = getattr(dataset, "ids", None)
    if ids is not None and len(ids) == len(dataset):
        by_car: dict[str, list[int]] = {}
        for i, image_id in enumerate(ids):
            by_car.setdefault(str(image_id).rsplit("_", 1)[0], []).append(i)
        cars = list(by_car.values())
        if len(cars) >= n:
            chosen = [cars[k * len(cars) // n] for k in range(n)]
            return [car[(5 * k + 1) % len(car)] for k, car in enumerate(chosen)]
    return [k * len(dataset) // n for k in range(n)]


def show_predictions(model: nn.Module, dataset: Dataset, n: int = 4, device: torch.device | str | None = None,
                     indices: Sequence[int] | None = None, threshold: float = 0.5) -> Figure:
    """A Figure with one row per image: image | ground truth | prediction, titled with its Dice.

    dataset items are (image (3, H, W) in [0, 1], mask (1, H, W) {0, 1}); indices default to
    n images from different cars. device: move the model there first (default: where it is). Lesson 06.
    """
    indices = list(indices) if indices is not None else pick_indices(dataset, n)
    items = [dataset[i] for i in indices]
    images = torch.stack([torch.as_tensor(img) for img, _ in items])
    masks = torch.stack([torch.as_tensor(m) for _, m in items])
    if device is not None:
        model.to(device)
    preds = predict_probabilities(model, images) > threshold
    dice = dice_score(preds, masks > 0.5, reduction="none")
    fig = Figure(figsize=(9, 2.2 * len(items) + 0.3), layout="constrained")
    axes = fig.subplots(len(items), 3, squeeze=False)
    for row, (i, img, mask, pred, d) in enumerate(zip(indices, images, masks, preds, dice)):
        panels = [(img.permute(1, 2, 0).clamp(0, 1).numpy(), f"image {item_name(dataset, i)}"),
                  (mask[0].numpy(), "ground truth"), (pred[0].float().numpy(), f"prediction  Dice {d:.4f}")]
        for ax, (picture, title) in zip(axes[row], panels):
            ax.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    return fig


def item_name(dataset: Dataset, i: int) -> str:
    """How figures name item i: its id when the dataset has ids (Carvana's '<car>_<angle>'), else #i.
    Lessons 06 and 07."""
    ids = getattr(dataset, "ids", None)
    return str(ids[i]) if ids is not None else f"#{i}"


def save_prediction_figure(model: nn.Module, dataset: Dataset, path: str | Path, n: int = 4,
                           device: torch.device | str | None = None, dpi: int = 100) -> Path:
    """show_predictions(...) written to `path` (PNG); returns the path. Lesson 06."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    show_predictions(model, dataset, n=n, device=device).savefig(path, dpi=dpi)
    return path


def load_history(history_or_run_dir: Sequence[dict] | str | Path) -> list[dict]:
    """The per-epoch records of a run: a list of dicts as `fit` returns, or read from a run folder's
    history.json (a path to the file itself works too). Lessons 06 and 10."""
    if isinstance(history_or_run_dir, (str, Path)):
        path = Path(history_or_run_dir)
        path = path / "history.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"no history.json at {path}: give a run folder written by fit(..., out=...) "
                                    f"or `python -m course_utils.train --out FOLDER`, or fit's returned list.")
        import json

        return json.loads(path.read_text())
    return list(history_or_run_dir)


_SCORE_LABELS = {"val_dice": ("Dice", "Dice (per image, mean)"), "val_miou": ("mIoU", "mIoU (labelled pixels)")}


def plot_history(history_or_run_dir: Sequence[dict] | str | Path) -> Figure:
    """A Figure of a run's curves: train and held-out loss per epoch (left), the held-out score
    per epoch (right: Dice for Carvana, mIoU for NYUv2), with the best epoch (what best.pt holds)
    marked.

    history_or_run_dir: fit's returned list of dicts (epoch, train_loss, val_loss, val_dice or
    val_miou, ...), or a run folder holding history.json. Lessons 06 and 10.
    """
    history = load_history(history_or_run_dir)
    if not history:
        raise ValueError("the history is empty: train at least one epoch before plotting it.")
    key = "val_dice" if "val_dice" in history[0] else "val_miou"
    short, axis_label = _SCORE_LABELS[key]
    epochs = [r["epoch"] for r in history]
    best = max(history, key=lambda r: r[key])
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    loss_ax, score_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train loss")
    loss_ax.plot(epochs, [r["val_loss"] for r in history], "s-", label="held-out loss")
    loss_ax.set(xlabel="epoch", ylabel="loss" if key == "val_miou" else "loss (BCE + Dice)", title="loss")
    score_ax.plot(epochs, [r[key] for r in history], "o-", color="tab:green", label=f"held-out {short}")
    score_ax.set(xlabel="epoch", ylabel=axis_label, title=f"held-out {short}")
    for ax in (loss_ax, score_ax):
        ax.axvline(best["epoch"], color="gray", linestyle=":",
                   label=f"best epoch {best['epoch']} ({short} {best[key]:.4f})")
        ax.set_xticks(epochs if len(epochs) <= 20 else ax.get_xticks())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------- colours (lessons 07-10, 13)
ERROR_COLOURS: dict[str, tuple[int, int, int]] = {  # the one palette for errors, in every figure and the viewer
    "false_positive": (230, 159, 0),  # predicted object where the mask has none: Okabe-Ito orange
    "false_negative": (0, 114, 178),  # object in the mask that the prediction missed: Okabe-Ito blue
    "wrong_label": (255, 255, 255),  # multi-class: a labelled pixel given another class: white, which no class uses
}
# Orange and blue stay apart for every kind of colour vision (Okabe & Ito's palette for colour-blind
# readers); white is no hue at all. No class colour is near any of them (class_palette).
MIN_ERROR_DISTANCE = 30.0  # CIE76 distance (Lab) between a class colour and an error colour

_FIRST_COLOURS = [  # well-separated colours for the first classes; more are generated by hue
    (214, 39, 40), (44, 160, 44), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
    (188, 189, 34), (23, 190, 207), (255, 127, 14), (31, 119, 180), (152, 223, 138), (255, 152, 150),
    (197, 176, 213), (196, 156, 148), (219, 219, 141), (158, 218, 229), (174, 199, 232),
]
# Machado, Oliveira & Fernandes (2009): linear-RGB simulation of full deuteranopia and protanopia
_COLOUR_BLIND = np.array([
    [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
])


def class_palette(num_classes: int) -> np.ndarray:
    """A fixed colour per class, uint8 (num_classes, 3): the same class always gets the same colour.
    No class colour is near an ERROR_COLOURS colour, and none near the colours that share a picture
    with it (black for ignored pixels, the wrong-label white) for colour-blind readers either, so a
    class never reads as an error. Lesson 10."""
    return _palette(num_classes).copy()


@lru_cache(maxsize=8)
def _palette(num_classes: int) -> np.ndarray:
    shown_with = np.array([(0, 0, 0), ERROR_COLOURS["wrong_label"]], np.float64)
    errors = np.array(list(ERROR_COLOURS.values()), np.float64)
    chosen: list[tuple[int, int, int]] = []
    for spacing in (15.0, 5.0, 0.0):  # generated colours well apart from the ones given; closer for many classes
        for k, colour in enumerate(_candidate_colours()):
            rgb = np.array([colour], np.float64)
            if colour in chosen or (colour_distance(rgb, shown_with).min() < MIN_ERROR_DISTANCE
                                    or colour_distance(rgb, errors, colour_blind=False).min() < MIN_ERROR_DISTANCE):
                continue
            given = np.array(chosen, np.float64).reshape(-1, 3)
            if k >= len(_FIRST_COLOURS) and chosen and colour_distance(rgb, given, colour_blind=False).min() < spacing:
                continue
            chosen.append(colour)
            if len(chosen) == num_classes:
                return np.array(chosen, np.uint8).reshape(num_classes, 3)
    raise ValueError(f"class_palette has only {len(chosen)} colours apart from the error colours, not {num_classes}.")


def _candidate_colours() -> Iterator[tuple[int, int, int]]:
    """The fixed colours, then golden-ratio hue steps at three saturations and brightnesses."""
    yield from _FIRST_COLOURS
    for k in range(1, 2000):
        hue, sat, value = (k * 0.618034) % 1.0, (0.75, 0.5, 0.9)[k % 3], (0.85, 0.6, 0.45)[k % 3]
        yield _hsv_to_rgb(hue, sat, value)


def colour_distance(a: np.ndarray, b: np.ndarray, colour_blind: bool = True) -> np.ndarray:
    """(len(a), len(b)) distances between RGB colours (0-255): their CIE76 Lab distance, with
    colour_blind the smallest one seen with normal, deuteranope or protanope colour vision, so
    "far apart" holds for all three. Lesson 10."""
    def lab(rgb: np.ndarray, simulate: np.ndarray | None) -> np.ndarray:
        c = rgb / 255.0
        linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        if simulate is not None:
            linear = np.clip(linear @ simulate.T, 0, 1)
        xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
        xyz = xyz / np.array([0.95047, 1.0, 1.08883])  # D65 white
        f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
        return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)

    views = [None, *_COLOUR_BLIND] if colour_blind else [None]
    return np.min([np.linalg.norm(lab(a, m)[:, None] - lab(b, m)[None], axis=2) for m in views], axis=0)


def error_overlay(image: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray,
                  prediction: torch.Tensor | np.ndarray) -> np.ndarray:
    """The photo dimmed to half, with false positives and false negatives painted in ERROR_COLOURS:
    float (H, W, 3) in [0, 1] for imshow. image (3, H, W) in [0, 1]; truth and prediction (H, W)
    or (1, H, W), nonzero = object. Lesson 07."""
    rgb = display_rgb(torch.as_tensor(image)).astype(np.float64) / 255 * 0.5
    truth, prediction = (torch.as_tensor(m).bool().numpy().reshape(rgb.shape[:2]) for m in (truth, prediction))
    rgb[prediction & ~truth] = np.array(ERROR_COLOURS["false_positive"]) / 255
    rgb[~prediction & truth] = np.array(ERROR_COLOURS["false_negative"]) / 255
    return rgb


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))


def display_rgb(image: torch.Tensor) -> np.ndarray:
    """uint8 (H, W, 3) for display: 3 channels as RGB (first 3 of more), 1 as grey; values outside
    [0, 1] (e.g. normalised images) are stretched to the image's own range. Lesson 07."""
    x = image.detach().float().cpu()
    x = x[:1].expand(3, -1, -1) if x.shape[0] < 3 else x[:3]
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        x = (x - lo) / max(hi - lo, 1e-8)
    return (x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------- cells (lesson 13)
def matching_colours(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour tables for the cells of a truth and a prediction, uint8 (n_true + 1, 3) and
    (n_pred + 1, 3) indexed by cell label (1..n; 0, the membrane, is black), from the two label
    images (data.isbi2012.cell_labels). A true cell and a predicted cell that are each other's
    largest overlap get the same colour, so a cell found right looks the same in both pictures
    and a merged or split one stands out. Lesson 13.
    """
    n_true, n_pred = int(true.max()), int(pred.max())
    both = (true > 0) & (pred > 0)
    pairs, counts = np.unique(true[both].astype(np.int64) * (n_pred + 1) + pred[both], return_counts=True)
    ti, pi = pairs // (n_pred + 1), pairs % (n_pred + 1)  # (true cell, predicted cell) that overlap
    best_t, best_p = np.zeros(n_pred + 1, np.int64), np.zeros(n_true + 1, np.int64)
    for k in np.argsort(counts, kind="stable"):  # ascending: each cell's largest overlap is written last
        best_t[pi[k]], best_p[ti[k]] = ti[k], pi[k]
    colours = cell_colours(n_true + n_pred + 1)
    own = np.arange(n_pred + 1)
    matched = (best_t > 0) & (best_p[best_t] == own)
    pred_colours = colours[np.where(matched, best_t, n_true + own)]  # unmatched: colours after the truth's
    pred_colours[0] = 0
    return colours[:n_true + 1], pred_colours


def cell_colours(n: int) -> np.ndarray:
    """uint8 (n, 3) colours for cell labels 0..n-1: black for 0 (membrane), then light colours whose
    hues step by the golden ratio, so neighbouring labels differ and none is as vivid as the
    viewer's merged and split marks. Lesson 13."""
    k = np.arange(n)
    hue, sat, val = (k * 0.618034) % 1.0, 0.2 + 0.08 * (k % 3), 0.97 - 0.1 * (k % 2)
    colours = np.array([_hsv_to_rgb(h, s, v) for h, s, v in zip(hue, sat, val)], np.uint8).reshape(n, 3)
    colours[:1] = 0
    return colours


def outline(picture: np.ndarray, region: np.ndarray, colour: tuple[int, int, int], width: int = 2) -> np.ndarray:
    """picture (H, W, 3), changed in place and returned, with the inner border (width px) of the
    bool region (H, W) drawn in colour; the picture's own edge is not a border. Lesson 13."""
    edge = region & ~ndimage.binary_erosion(region, iterations=width, border_value=1)
    picture[edge] = colour
    return picture
