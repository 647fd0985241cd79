"""Looking at predictions: static figures (lessons 06-07) and the widget viewer (lesson 07).

`show_predictions`, `save_prediction_figure` and `plot_history` are built on matplotlib's
`Figure` directly (not pyplot), so they work the same in a notebook (the returned figure
displays once) and in a script with no display. `PredictionViewer` is an ipywidgets viewer
made of core widgets only (JupyterLab, classic Notebook, Colab), its pictures composed with
numpy and PIL and sent as PNG bytes, so moving a slider is quick.
"""
from __future__ import annotations

import html
import math
from collections import OrderedDict
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont
from torch import nn
from torch.utils.data import Dataset

from .metrics import confusion_matrix, confusion_scores, dice_score, iou_score


def pick_indices(dataset: Dataset, n: int) -> list[int]:
    """Up to n indices from different cars, at different angles, when the dataset knows its
    image ids (Carvana ids are '<car>_<angle>'); else n indices spread evenly over it."""
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


@torch.no_grad()
def predict_masks(model: nn.Module, images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Binary masks (N, 1, H, W) for images (N, 3, H, W): sigmoid(logits) > threshold.
    Runs on the model's device in eval mode (and restores train mode after)."""
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        logits = model(images.to(param.device, param.dtype))
    finally:
        model.train(was_training)
    return (torch.sigmoid(logits) > threshold).cpu()


def show_predictions(model: nn.Module, dataset: Dataset, n: int = 4, device: torch.device | str | None = None,
                     indices: Sequence[int] | None = None, threshold: float = 0.5) -> Figure:
    """A Figure with one row per image: image | ground truth | prediction, titled with its Dice.

    dataset items are (image (3, H, W) in [0, 1], mask (1, H, W) {0, 1}); indices default to
    n images from different cars. device: move the model there first (default: where it is).
    """
    indices = list(indices) if indices is not None else pick_indices(dataset, n)
    items = [dataset[i] for i in indices]
    images = torch.stack([torch.as_tensor(img) for img, _ in items])
    masks = torch.stack([torch.as_tensor(m) for _, m in items])
    if device is not None:
        model.to(device)
    preds = predict_masks(model, images, threshold)
    dice = dice_score(preds, masks > 0.5, reduction="none")
    fig = Figure(figsize=(9, 2.2 * len(items) + 0.3), layout="constrained")
    axes = fig.subplots(len(items), 3, squeeze=False)
    for row, (i, img, mask, pred, d) in enumerate(zip(indices, images, masks, preds, dice)):
        panels = [(img.permute(1, 2, 0).clamp(0, 1).numpy(), f"image {_name(dataset, i)}"),
                  (mask[0].numpy(), "ground truth"), (pred[0].float().numpy(), f"prediction  Dice {d:.4f}")]
        for ax, (picture, title) in zip(axes[row], panels):
            ax.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    return fig


def _name(dataset: Dataset, i: int) -> str:
    ids = getattr(dataset, "ids", None)
    return str(ids[i]) if ids is not None else f"#{i}"


def save_prediction_figure(model: nn.Module, dataset: Dataset, path: str | Path, n: int = 4,
                           device: torch.device | str | None = None, dpi: int = 100) -> Path:
    """show_predictions(...) written to `path` (PNG); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    show_predictions(model, dataset, n=n, device=device).savefig(path, dpi=dpi)
    return path


def load_history(history_or_run_dir: Sequence[dict] | str | Path) -> list[dict]:
    """The per-epoch records of a run: a list of dicts as `fit` returns, or read from a run folder's
    history.json (a path to the file itself works too)."""
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
    """A Figure of a run's curves (lessons 06, 08): train and held-out loss per epoch (left), the
    held-out score per epoch (right: Dice for Carvana, mIoU for NYUv2), with the best epoch (what
    best.pt holds) marked.

    history_or_run_dir: fit's returned list of dicts (epoch, train_loss, val_loss, val_dice or
    val_miou, ...), or a run folder holding history.json.
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


# ----------------------------------------------------------------------------- the widget viewer (lesson 07)
FALSE_POSITIVE = (245, 130, 20)  # binary errors panel: predicted object where the mask has none (orange)
FALSE_NEGATIVE = (30, 120, 250)  # ... object in the mask that the prediction missed (blue)
WRONG_LABEL = (250, 40, 40)  # multi-class errors panel: a labelled pixel given another class (red)
IGNORED = (0, 0, 0)  # multi-class: pixels carrying the ignore label (unlabelled) are black everywhere
_MASK_COLOURS = np.array([(30, 30, 30), (245, 245, 245)], np.uint8)  # binary masks: background, object
_FIRST_COLOURS = [  # well-separated colours for the first classes; more are generated by hue
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
]


def class_palette(num_classes: int) -> np.ndarray:
    """A fixed colour per class, uint8 (num_classes, 3): the same class always gets the same colour
    (lessons 07-08). None is black, which marks ignored pixels."""
    colours = list(_FIRST_COLOURS[:num_classes])
    for k in range(len(colours), num_classes):  # golden-ratio hue steps, alternating brightness
        hue, value = (k * 0.618034) % 1.0, 0.95 if k % 2 else 0.7
        colours.append(_hsv_to_rgb(hue, 0.65, value))
    return np.array(colours, np.uint8).reshape(num_classes, 3)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))


class PredictionViewer:
    """Browse a model's predictions image by image in a notebook (lesson 07; multi-class in 08).

    Shows image | ground truth | prediction | errors, an index slider, a threshold slider, a
    "sort by Dice, worst first" button and the shown image's scores. Put it last in a cell:

    >>> PredictionViewer(model, val_set)                                # doctest: +SKIP

    model: takes (N, C_in, H, W) images; 1 output channel = binary (sigmoid, thresholded), C > 1
        = C classes (softmax, argmax). 'valid' U-Nets work too: image and mask are center-cropped
        to the prediction's size.
    dataset: items (image (C_in, H, W) float in [0, 1], mask) with mask (1, H, W) or (H, W):
        {0, 1} for a binary model, integer labels 0..C-1 (or ignore_index) for C classes.
    threshold: the starting threshold on the probability (binary only).
    class_names: names for the legend (multi-class); default "class 0", "class 1", ...
    ignore_index: the label of unlabelled pixels (default 255): drawn black, left out of the
        scores (pixel accuracy over labelled pixels; mIoU over the classes in the mask or the
        prediction of that image).
    panel_width: each panel is resized to this many pixels wide for display (None: native size);
        scores are always computed at full resolution.
    tta: average with the mirrored prediction (see evaluation.predict_probabilities).
    batch_size: images per model call when sorting. cache_size: predictions kept in memory, so
        moving the threshold or going back never reruns the model for a recent image.

    Widgets (public, so tests and lessons can drive them): `.index` IntSlider (position in the
    current order), `.threshold` FloatSlider (hidden for multi-class), `.sort_button` (the first
    press scores every image once and orders the slider worst first; the next press goes back
    to dataset order, staying on the shown image), `.order_label`, `.scores` (HTML: id, Dice,
    IoU, error pixel counts), `.image` (one PNG of the four panels), `.legend`, `.widget` (VBox).
    Also: `.current` (dataset index shown), `.order`, `image_scores(i)`, `all_scores()`, `frame(i)`.
    """

    def __init__(self, model: nn.Module, dataset: Dataset, *, threshold: float = 0.5,
                 class_names: Sequence[str] | None = None, ignore_index: int = 255,
                 panel_width: int | None = 256, tta: bool = False, batch_size: int = 8,
                 cache_size: int = 32) -> None:
        import ipywidgets as widgets

        self.model, self.dataset, self.ignore_index = model, dataset, ignore_index
        self.panel_width, self.tta, self.batch_size, self.cache_size = panel_width, tta, batch_size, cache_size
        self._cache: OrderedDict[int, dict] = OrderedDict()
        self.order = list(range(_length(dataset)))
        self.sorted_by_score = False
        image, target = self._load(0)
        _check_input_channels(model, image)
        probs = self._predict([image])[0]
        self.num_classes = int(probs.shape[0])
        self.multiclass = self.num_classes > 1
        self.class_names = _class_names(class_names, self.num_classes) if self.multiclass else None
        self._cache[0] = self._entry(0, image, target, probs)
        self.metric = "mIoU" if self.multiclass else "Dice"

        n = len(self.order)
        self.index = widgets.IntSlider(value=0, min=0, max=n - 1, description="image", disabled=n == 1,
                                       continuous_update=False)  # a step may run the model: update on release
        self.threshold = widgets.FloatSlider(float(threshold), min=0.0, max=1.0, step=0.01, readout_format=".2f",
                                             description="threshold", disabled=self.multiclass)
        if self.multiclass:
            self.threshold.layout.display = "none"
        self.sort_button = widgets.Button(description=f"sort by {self.metric}, worst first",
                                          layout=widgets.Layout(width="auto"))
        self.order_label = widgets.Label("dataset order")
        self.scores = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.legend = widgets.HTML(self._legend_html())
        self.widget = widgets.VBox([widgets.HBox([self.index, self.threshold]),
                                    widgets.HBox([self.sort_button, self.order_label]),
                                    self.scores, self.image, self.legend])
        self.index.observe(lambda _change: self._render(), names="value")
        self.threshold.observe(lambda _change: self._render(), names="value")
        self.sort_button.on_click(self._toggle_sort)
        self._render()

    # ---- what is shown
    @property
    def current(self) -> int:
        """The dataset index of the image shown now (the slider is a position in `order`)."""
        return self.order[self.index.value]

    def image_scores(self, index: int | None = None) -> dict[str, float]:
        """Scores of one image at the current threshold (default: the one shown). Binary: dice,
        iou, false_positives, false_negatives (pixels). Multi-class: pixel_accuracy, mean_iou."""
        entry = self._entries([self.current if index is None else index])[0]
        pred, target = self._prediction(entry), entry["target"]
        if self.multiclass:
            return _label_scores(pred, target, self.num_classes, self.ignore_index)
        p, t = pred[None], target[None]
        return {"dice": float(dice_score(p, t, "none")[0]), "iou": float(iou_score(p, t, "none")[0]),
                "false_positives": int((pred & ~target).sum()), "false_negatives": int((~pred & target).sum())}

    def frame(self, index: int | None = None) -> np.ndarray:
        """The composed picture, uint8 (H, W, 3): a title strip over image | ground truth |
        prediction | errors, each panel_width wide (default: the image shown)."""
        return np.asarray(self._frame_image(self.current if index is None else index))

    def _frame_image(self, index: int) -> Image.Image:
        entry = self._entries([index])[0]
        rows, cols = entry["rows"], entry["cols"]
        target = entry["target"].numpy()[rows][:, cols]
        pred = self._prediction(entry).numpy()[rows][:, cols]
        grey = entry["grey"]
        dim = np.repeat((grey * 0.4).astype(np.uint8)[..., None], 3, axis=2)  # the image, darkened
        if self.multiclass:
            lut = np.concatenate([class_palette(self.num_classes), np.array([IGNORED], np.uint8)])
            ignored = target == self.ignore_index
            truth, shown = lut[np.where(ignored, self.num_classes, target)], lut[pred]
            errors = dim
            errors[(pred != target) & ~ignored] = WRONG_LABEL
            errors[ignored] = IGNORED
            titles = ("image", "labels", "prediction", "errors")
        else:
            truth, shown = _MASK_COLOURS[target.astype(np.uint8)], _MASK_COLOURS[pred.astype(np.uint8)]
            errors = dim
            hit = pred & target
            errors[hit] = grey[hit][:, None]  # found object at full brightness
            errors[pred & ~target] = FALSE_POSITIVE
            errors[~pred & target] = FALSE_NEGATIVE
            titles = ("image", "ground truth", "prediction", "errors")
        return _compose([entry["rgb"], truth, shown, errors], titles)

    def _render(self) -> None:
        """Show the image at the slider's position: PNG bytes to .image, scores to .scores."""
        i = self.current
        buffer = BytesIO()
        self._frame_image(i).save(buffer, format="PNG", compress_level=1)  # fast, still lossless
        self.image.value = buffer.getvalue()
        self.scores.value = self._scores_html(i, self.image_scores(i))

    def _scores_html(self, i: int, s: dict[str, float]) -> str:
        where = f"rank {self.index.value + 1} of {len(self.order)}, worst first" if self.sorted_by_score \
            else f"{i + 1} of {len(self.order)}"
        head = f"<b>{html.escape(_name(self.dataset, i))}</b> (dataset index {i}, {where})"
        if self.multiclass and math.isnan(s["mean_iou"]):
            return f"{head} &middot; no labelled pixels (all {self.ignore_index}), nothing to score"
        if self.multiclass:
            return f"{head} &middot; <b>mIoU {s['mean_iou']:.4f}</b> &middot; pixel accuracy {s['pixel_accuracy']:.4f}"
        return (f"{head} &middot; <b>Dice {s['dice']:.4f}</b> &middot; IoU {s['iou']:.4f} &middot; "
                f"false positives {s['false_positives']} px, false negatives {s['false_negatives']} px "
                f"at threshold {self.threshold.value:.2f}")

    def _legend_html(self) -> str:
        if self.multiclass:
            names = list(self.class_names) + ["ignored (unlabelled)", "errors: wrong label"]
            colours = [tuple(c) for c in class_palette(self.num_classes)] + [IGNORED, WRONG_LABEL]
        else:
            names = ["errors: false positive (predicted, not in the mask)", "false negative (in the mask, missed)"]
            colours = [FALSE_POSITIVE, FALSE_NEGATIVE]
        return "<div style='display:flex;flex-wrap:wrap;gap:2px 14px;font-size:12px'>" + "".join(
            f"<span><span style='display:inline-block;width:11px;height:11px;margin-right:4px;"
            f"border:1px solid #888;background:rgb{tuple(int(v) for v in c)}'></span>{html.escape(n)}</span>"
            for n, c in zip(names, colours)) + "</div>"

    # ---- sorting
    def _toggle_sort(self, _button: Any = None) -> None:
        """First press: order worst first by this threshold's Dice (mIoU); next press: dataset order."""
        if self.sorted_by_score:
            shown = self.current
            self.order, self.sorted_by_score = list(range(len(self.order))), False
            self.sort_button.description = f"sort by {self.metric}, worst first"
            self.order_label.value = "dataset order"
            self._show_position(shown)
            return
        self.order_label.value = f"scoring {len(self.order)} images ..."
        scores = self.all_scores()
        self.order = sorted(range(len(scores)), key=lambda i: _worst_first(scores[i], i))
        self.sorted_by_score = True
        self.sort_button.description = "back to dataset order"
        at = "" if self.multiclass else f" at threshold {self.threshold.value:.2f}"
        self.order_label.value = (f"worst first by {self.metric}{at}: {scores[self.order[0]]:.4f} .. "
                                  f"{scores[self.order[-1]]:.4f}")
        self._show_position(0)

    def all_scores(self) -> list[float]:
        """Every image's Dice (binary, current threshold) or mIoU (multi-class), in dataset order."""
        key = "mean_iou" if self.multiclass else "dice"
        out = []
        for start in range(0, len(self.order), self.batch_size):
            chunk = list(range(start, min(start + self.batch_size, len(self.order))))
            self._entries(chunk)
            out += [self.image_scores(i)[key] for i in chunk]
        return out

    def _show_position(self, position: int) -> None:
        if self.index.value == position:
            self._render()  # same slider value, new image under it
        else:
            self.index.value = position  # the observer renders

    # ---- predictions, cached
    def _entries(self, indices: Sequence[int]) -> list[dict]:
        """Cached predictions and display arrays of these images; missing ones in one model call."""
        found = {i: self._cache[i] for i in indices if i in self._cache}
        missing = [i for i in dict.fromkeys(indices) if i not in found]
        if missing:
            items = [self._load(i) for i in missing]
            probs = self._predict([image for image, _ in items])
            for i, (image, target), p in zip(missing, items, probs):
                found[i] = self._entry(i, image, target, p)
        for i in dict.fromkeys(indices):
            self._cache[i] = found[i]
            self._cache.move_to_end(i)
        while len(self._cache) > max(self.cache_size, 1):
            self._cache.popitem(last=False)
        return [found[i] for i in indices]

    def _prediction(self, entry: dict) -> torch.Tensor:
        """(h, w) labels (multi-class) or a bool mask: probability > threshold (binary)."""
        return entry["labels"] if self.multiclass else entry["probs"] > self.threshold.value

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """dataset[i] checked: image (C, H, W) float, mask (H, W)."""
        return _check_item(self.dataset[i], i)

    def _predict(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Probabilities (C, h, w) of each image: one batch when the sizes agree."""
        from .evaluation import predict_probabilities

        same = len({tuple(im.shape) for im in images}) == 1
        batches = [torch.stack(images)] if same else [im[None] for im in images]
        try:
            probs = [predict_probabilities(self.model, b, tta=self.tta) for b in batches]
        except RuntimeError as err:
            raise RuntimeError(f"The model failed on images of shape {tuple(images[0].shape)} from the dataset: "
                               f"{err}. Check that this model was built for these images.") from err
        if probs[0].ndim != 4:
            raise ValueError(f"The model returned shape {tuple(probs[0].shape)}; PredictionViewer needs logits "
                             "(N, C, H, W): one channel for a binary mask, C for C classes.")
        return [p for batch in probs for p in batch]

    def _entry(self, i: int, image: torch.Tensor, target: torch.Tensor, probs: torch.Tensor) -> dict:
        """What frames and scores need for image i: its prediction, and its mask and picture cropped
        to the prediction's size ('valid' U-Nets predict a center crop), at display size too."""
        h, w = probs.shape[-2:]
        if (h, w) != tuple(target.shape):
            if h > target.shape[0] or w > target.shape[1]:
                raise ValueError(f"The model predicted {h}x{w} for a {target.shape[0]}x{target.shape[1]} image "
                                 f"(dataset index {i}); PredictionViewer needs predictions of the image's size "
                                 "or smaller.")
            from .model import center_crop

            image, target = center_crop(image, (h, w)), center_crop(target[None], (h, w))[0]
        entry = {"target": self._check_target(target, i)}
        if self.multiclass:
            entry["labels"] = probs.argmax(0)
        else:
            entry["probs"] = probs[0]
        rgb = _display_rgb(image)
        width = self.panel_width or w
        height = max(1, round(h * width / w))
        entry["rgb"] = np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))
        entry["grey"] = entry["rgb"].mean(axis=2)
        entry["rows"] = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
        entry["cols"] = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
        return entry

    def _check_target(self, target: torch.Tensor, i: int) -> torch.Tensor:
        """The mask as a bool (binary) or int64 labels (multi-class), after checking its values."""
        values = torch.unique(target)
        if self.multiclass:
            labels = target.long()
            allowed = set(range(self.num_classes)) | {self.ignore_index}
            bad = [v for v in values.tolist() if v not in allowed]
            if bad:
                raise ValueError(f"The mask of dataset index {i} holds {bad[:5]}, but the model has {self.num_classes} "
                                 f"output channels (classes 0..{self.num_classes - 1}) and ignore_index is "
                                 f"{self.ignore_index}. Pass the right ignore_index, or build the model for more "
                                 "classes.")
            return labels
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(f"The mask of dataset index {i} holds values {values[:8].tolist()}, but the model has "
                             "one output channel (a binary mask, {0, 1}). For class labels build the model with "
                             "out_channels = the number of classes.")
        return target.bool()

    # ---- showing itself as the last line of a cell
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict | None:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        kind = f"{self.num_classes} classes" if self.multiclass else "binary"
        return f"PredictionViewer({len(self.order)} images, {kind}, showing dataset index {self.current})"


def _length(dataset: Dataset) -> int:
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"PredictionViewer needs a dataset (len(dataset) and dataset[i]), got a "
                        f"{type(dataset).__name__}; pass e.g. a CarvanaDataset, not a DataLoader.")
    n = len(dataset)
    if n == 0:
        raise ValueError("The dataset is empty (0 images), so there is nothing to show. Check the ids or the "
                         "split that made it (e.g. split_cars(root) gave an empty side).")
    return n


def _check_item(item: Any, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (C, H, W) float, mask (H, W)) from a dataset item, or an error saying what is wrong."""
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        what = f"a {type(item).__name__}" + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
        raise TypeError(f"PredictionViewer needs dataset items (image, mask), like CarvanaDataset's; item {i} is "
                        f"{what}. Wrap the dataset so that it returns (image, mask).")
    image, mask = torch.as_tensor(item[0]), torch.as_tensor(item[1])
    if image.ndim != 3:
        raise ValueError(f"Item {i}'s image has shape {tuple(image.shape)}; PredictionViewer needs (C, H, W) "
                         "(channels first, e.g. (3, 160, 240)).")
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != image.shape[1:]:
        raise ValueError(f"Item {i}'s mask has shape {tuple(item[1].shape)} but its image {tuple(image.shape)}; "
                         "the mask must be (1, H, W) or (H, W) with the image's H and W.")
    return image.float() if not image.is_floating_point() else image, mask


def _check_input_channels(model: nn.Module, image: torch.Tensor) -> None:
    """A clear error when the model takes another number of channels than the images have."""
    config = getattr(model, "config", None)
    wanted = config.get("in_channels") if isinstance(config, dict) else None
    if wanted is None:
        wanted = next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if wanted is not None and wanted != image.shape[0]:
        raise ValueError(f"The model takes {wanted}-channel images but the dataset's images have {image.shape[0]} "
                         f"channels (shape {tuple(image.shape)}). Use a model built with in_channels={image.shape[0]}, "
                         "or the dataset it was trained on.")


def _worst_first(score: float, index: int) -> tuple:
    """Sort key: lowest score first, ties in dataset order, nan (nothing to score) last."""
    return (True, 0.0, index) if math.isnan(score) else (False, score, index)


def _class_names(names: Sequence[str] | None, num_classes: int) -> list[str]:
    if names is None:
        return [f"class {c}" for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names but the model predicts {num_classes} classes.")
    return [str(n) for n in names]


def _display_rgb(image: torch.Tensor) -> np.ndarray:
    """uint8 (H, W, 3) for display: 3 channels as RGB (first 3 of more), 1 as grey; values outside
    [0, 1] (e.g. normalised images) are stretched to the image's own range."""
    x = image.detach().float().cpu()
    x = x[:1].expand(3, -1, -1) if x.shape[0] < 3 else x[:3]
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        x = (x - lo) / max(hi - lo, 1e-8)
    return (x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def _label_scores(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int) -> dict[str, float]:
    """Pixel accuracy over labelled pixels and mIoU over the classes present in target or prediction
    (nan for both when no pixel is labelled), from one image's confusion matrix."""
    scores = confusion_scores(confusion_matrix(pred[None], target[None], num_classes, ignore_index), ignore_index)
    return {"pixel_accuracy": scores["pixel_accuracy"], "mean_iou": scores["mean_iou"]}


@lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        return ImageFont.load_default()


def _compose(panels: list[np.ndarray], titles: Sequence[str], gap: int = 4, header: int = 18) -> Image.Image:
    """Panels of one size side by side on white, each under its title."""
    h, w = panels[0].shape[:2]
    canvas = np.full((header + h, len(panels) * (w + gap) - gap, 3), 255, np.uint8)
    for k, panel in enumerate(panels):
        canvas[header:, k * (w + gap):k * (w + gap) + w] = panel
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for k, title in enumerate(titles):
        draw.text((k * (w + gap) + 2, 2), title, fill=(40, 40, 40), font=_font())
    return picture
