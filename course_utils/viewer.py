"""PredictionViewer: browse a model's predictions next to the truth in a notebook (lessons 07, 10, 13).

Core ipywidgets only (JupyterLab, classic Notebook, Colab); each picture is composed with numpy
and PIL and sent as PNG bytes, so moving a slider is quick. For binary masks of touching objects
(the EM cells of lesson 13) a "cells" view colours each connected component, marks merged and
split cells, and scores the slice with the challenge's Rand error.
"""
from __future__ import annotations

import html
import math
from collections import OrderedDict
from io import BytesIO
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from .metrics import dice_score, iou_score
from .viewer_frames import (check_input_channels, check_item, checked_class_names, compose, dataset_length,
                            label_scores, worst_first)
from .viz import ERROR_COLOURS, class_palette, display_rgb, item_name, matching_colours, outline

FALSE_POSITIVE = ERROR_COLOURS["false_positive"]  # binary errors panel: predicted object where the mask has none
FALSE_NEGATIVE = ERROR_COLOURS["false_negative"]  # ... object in the mask that the prediction missed
WRONG_LABEL = ERROR_COLOURS["wrong_label"]  # multi-class errors panel: a labelled pixel given another class
IGNORED = (0, 0, 0)  # multi-class: pixels carrying the ignore label (unlabelled) are black everywhere
MERGED = (255, 0, 200)  # cells view: a predicted cell that covers 2 or more true cells (magenta)
SPLIT = (0, 230, 255)  # ... a true cell cut into 2 or more predicted cells (cyan)
_MASK_COLOURS = np.array([(30, 30, 30), (245, 245, 245)], np.uint8)  # binary masks: background, object
VIEWS = ("pixels", "cells")
SLIDER_WIDTH, LABEL_WIDTH = "470px", "72px"  # a slider's track is about 300 px: easy to aim at
TEXT_LINE = "white-space:nowrap;overflow:hidden;text-overflow:ellipsis;line-height:20px"  # never wraps


class PredictionViewer:
    """Browse a model's predictions image by image in a notebook: masks, classes or EM cells.

    Shows image | ground truth | prediction | errors, an index slider, a threshold slider, a
    "sort worst first" button and the shown image's scores. Put it last in a cell:

    >>> PredictionViewer(model, val_set)                                # doctest: +SKIP

    model: takes (N, C_in, H, W) images; 1 output channel = binary (sigmoid, thresholded), C > 1
        = C classes (softmax, argmax). A 'valid' course UNet predicts the whole image with
        overlap-tile inference (inference.predict_tiled, mirrored context at the border).
    dataset: items (image (C_in, H, W) float in [0, 1], mask) with mask (1, H, W) or (H, W):
        {0, 1} for a binary model, integer labels 0..C-1 (or ignore_index) for C classes; a
        target {"mask": ..., "weight": ...} (a weight-map data set) is shown by its "mask".
    threshold: the starting threshold on the probability (binary only).
    class_names: names for the legend (multi-class); default "class 0", "class 1", ...
    ignore_index: the label of unlabelled pixels (default 255): drawn black, left out of the
        scores (pixel accuracy over labelled pixels; mIoU over the classes in the mask or the
        prediction of that image).
    panel_width: each panel is resized to this many pixels wide for display (None: native size);
        scores are always computed at full resolution.
    tta: average with the mirrored prediction (see inference.predict_probabilities).
    tile_size: predict with predict_tiled and this tile (one side or (h, w)); default for a
        'valid' UNet: covering_tile_size(model, H, W), one tile over the image; None otherwise.
    batch_size: images per model call when sorting. cache_size: predictions kept in memory, so
        moving the threshold or going back never reruns the model for a recent image.

    Widgets (public, so tests and lessons can drive them): `.index` IntSlider (position in the
    current order), `.threshold` FloatSlider and `.view` ToggleButtons ("pixels" | "cells"; both
    hidden for multi-class), `.sort_button` (the first press scores every image once and orders
    the slider worst first, by Dice, mIoU, or in the cells view Rand error; the next press goes
    back to dataset order, staying on the shown image), `.order_label`, `.scores` (HTML),
    `.image` (one PNG of the four panels), `.legend`, `.widget` (VBox). Also: `.current`
    (dataset index shown), `.order`, `image_scores(i)`, `cell_scores(i)`, `all_scores()`, `frame(i)`.
    Lessons 07, 10 and 13.
    """

    def __init__(self, model: nn.Module, dataset: Dataset, *, threshold: float = 0.5,
                 class_names: Sequence[str] | None = None, ignore_index: int = 255,
                 panel_width: int | None = 256, tta: bool = False, tile_size: int | tuple[int, int] | None = None,
                 batch_size: int = 8, cache_size: int = 32) -> None:
        import ipywidgets as widgets

        self.model, self.dataset, self.ignore_index = model, dataset, ignore_index
        self.panel_width, self.tta, self.batch_size, self.cache_size = panel_width, tta, batch_size, cache_size
        config = getattr(model, "config", None)
        self.tile_size = tile_size
        self.tiled = tile_size is not None or (isinstance(config, dict) and config.get("padding") == "valid"
                                               and "heads" not in config)
        self._cache: OrderedDict[int, dict] = OrderedDict()
        self.order = list(range(dataset_length(dataset)))
        self.sorted_by_score = False
        image, target = self._load(0)
        check_input_channels(model, image)
        probs = self._predict([image])[0]
        self.num_classes = int(probs.shape[0])
        self.multiclass = self.num_classes > 1
        self.class_names = checked_class_names(class_names, self.num_classes) if self.multiclass else None
        self._cache[0] = self._entry(0, image, target, probs)

        n = len(self.order)
        sized = {"layout": widgets.Layout(width=SLIDER_WIDTH), "style": {"description_width": LABEL_WIDTH}}
        self.index = widgets.IntSlider(value=0, min=0, max=n - 1, description="image", disabled=n == 1,
                                       continuous_update=False, **sized)  # a step may run the model: on release
        self.threshold = widgets.FloatSlider(float(threshold), min=0.0, max=1.0, step=0.01, readout_format=".2f",
                                             description="threshold", disabled=self.multiclass, **sized)
        self.view = widgets.ToggleButtons(options=VIEWS, value="pixels", tooltips=["pixels: errors per pixel",
                                          "cells: each cell its colour, merged and split cells marked"],
                                          disabled=self.multiclass, layout=widgets.Layout(width="auto"),
                                          style={"button_width": "64px"})  # no description: it wraps above
        if self.multiclass:
            self.threshold.layout.display = self.view.layout.display = "none"
        self.sort_button = widgets.Button(description=self._sort_text(), layout=widgets.Layout(width="220px"))
        self.order_label = widgets.Label("dataset order", layout=widgets.Layout(flex="1 1 0%", min_width="0"))
        self.scores = widgets.HTML(layout=widgets.Layout(height="42px", overflow="hidden"))  # 2 lines, always
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.legend = widgets.HTML(self._legend_html())
        self.widget = widgets.VBox([widgets.HBox([self.index, self.threshold]),
                                    widgets.HBox([self.view, self.sort_button, self.order_label],
                                                 layout=widgets.Layout(align_items="center")),
                                    self.scores, self.image, self.legend])
        self.index.observe(lambda _change: self._render(), names="value")
        self.threshold.observe(lambda _change: self._render(), names="value")
        self.view.observe(self._view_changed, names="value")
        self.sort_button.on_click(self._toggle_sort)
        self._render()

    # ---- what is shown
    @property
    def current(self) -> int:
        """The dataset index of the image shown now (the slider is a position in `order`)."""
        return self.order[self.index.value]

    @property
    def metric(self) -> str:
        """What sorting orders by: mIoU (multi-class), Rand error (cells view), else Dice."""
        return "mIoU" if self.multiclass else "Rand error" if self.view.value == "cells" else "Dice"

    def image_scores(self, index: int | None = None) -> dict[str, float]:
        """Scores of one image at the current threshold (default: the one shown). Binary: dice,
        iou, false_positives, false_negatives (pixels). Multi-class: pixel_accuracy, mean_iou."""
        entry = self._entries([self.current if index is None else index])[0]
        pred, target = self._prediction(entry), entry["target"]
        if self.multiclass:
            return label_scores(pred, target, self.num_classes, self.ignore_index)
        p, t = pred[None], target[None]
        return {"dice": float(dice_score(p, t, "none")[0]), "iou": float(iou_score(p, t, "none")[0]),
                "false_positives": int((pred & ~target).sum()), "false_negatives": int((~pred & target).sum())}

    def cell_scores(self, index: int | None = None) -> dict[str, float]:
        """The EM challenge's scores of one binary image at the current threshold (lesson 13):
        rand_error, pixel_error (em_metrics), merged (predicted cells over 2+ true cells), split (true
        cells cut into 2+ predicted cells; both as em_metrics.split_merge counts them), true_cells,
        predicted_cells. Cells: 4-connected components."""
        if self.multiclass:
            raise ValueError("cell scores are for binary masks (cell vs membrane); this model predicts "
                             f"{self.num_classes} classes, so use image_scores().")
        return dict(self._cells(self._entries([self.current if index is None else index])[0])["scores"])

    def frame(self, index: int | None = None) -> np.ndarray:
        """The composed picture, uint8 (H, W, 3): a title strip over image | ground truth |
        prediction | errors (cells view: true cells | predicted cells | merged and split), each
        panel_width wide (default: the image shown)."""
        return np.asarray(self._frame_image(self.current if index is None else index))

    def _frame_image(self, index: int) -> Image.Image:
        entry = self._entries([index])[0]
        rows, cols = entry["rows"], entry["cols"]
        if self.view.value == "cells" and not self.multiclass:
            return self._cells_frame(entry, rows, cols)
        target = entry["target"].numpy()[rows][:, cols]
        pred = self._prediction(entry).numpy()[rows][:, cols]
        grey = entry["grey"]
        errors = np.repeat((grey * 0.4).astype(np.uint8)[..., None], 3, axis=2)  # the image, darkened
        if self.multiclass:
            lut = np.concatenate([class_palette(self.num_classes), np.array([IGNORED], np.uint8)])
            ignored = target == self.ignore_index
            truth, shown = lut[np.where(ignored, self.num_classes, target)], lut[pred]
            errors[(pred != target) & ~ignored] = WRONG_LABEL
            errors[ignored] = IGNORED
            titles = ("image", "labels", "prediction", "errors")
        else:
            truth, shown = _MASK_COLOURS[target.astype(np.uint8)], _MASK_COLOURS[pred.astype(np.uint8)]
            hit = pred & target
            errors[hit] = grey[hit][:, None]  # found object at full brightness
            errors[pred & ~target] = FALSE_POSITIVE
            errors[~pred & target] = FALSE_NEGATIVE
            titles = ("image", "ground truth", "prediction", "errors")
        return compose([entry["rgb"], truth, shown, errors], titles)

    def _cells_frame(self, entry: dict, rows: np.ndarray, cols: np.ndarray) -> Image.Image:
        """image | true cells | predicted cells (each cell its colour, a matched predicted cell its
        true cell's; split and merged cells outlined) | the image, merged and split cells tinted."""
        cells = self._cells(entry)
        true, pred = cells["true"][rows][:, cols], cells["pred"][rows][:, cols]
        split, merged = np.isin(true, cells["split"]), np.isin(pred, cells["merged"])
        truth = outline(cells["true_colours"][true], split, SPLIT)
        shown = outline(cells["pred_colours"][pred], merged, MERGED)
        grey = entry["grey"][..., None]
        tint = 0.45 * grey + 0.55 * np.where(split[..., None], SPLIT, 0) + 0.55 * np.where(merged[..., None], MERGED, 0)
        marks = np.where((split | merged)[..., None], np.minimum(tint, 255), 0.5 * grey).astype(np.uint8)
        n = cells["scores"]
        titles = ("image", f"true cells: {n['true_cells']}", f"predicted cells: {n['predicted_cells']}",
                  f"{n['merged']} merged, {n['split']} split")
        return compose([entry["rgb"], truth, shown, marks], titles)

    def _render(self) -> None:
        """Show the image at the slider's position: PNG bytes to .image, scores to .scores."""
        i = self.current
        buffer = BytesIO()
        self._frame_image(i).save(buffer, format="PNG", compress_level=1)  # fast, still lossless
        self.image.value = buffer.getvalue()
        self.scores.value = self._scores_html(i)

    def _scores_html(self, i: int) -> str:
        """Two lines that never wrap (cut with '...' when too long): which image, then its scores."""
        where = f"rank {self.index.value + 1} of {len(self.order)}, worst first" if self.sorted_by_score \
            else f"{i + 1} of {len(self.order)}"
        head = f"<b>{html.escape(item_name(self.dataset, i))}</b> (dataset index {i}, {where})"
        at = f" at threshold {self.threshold.value:.2f}"
        if self.view.value == "cells" and not self.multiclass:
            c = self.cell_scores(i)
            scores = (f"<b>Rand error {c['rand_error']:.4f}</b> &middot; pixel error {c['pixel_error']:.4f} &middot; "
                      f"{c['merged']} merged, {c['split']} split ({c['true_cells']} true cells, "
                      f"{c['predicted_cells']} predicted){at}")
        elif self.multiclass:
            s = self.image_scores(i)
            scores = (f"no labelled pixels (all {self.ignore_index}), nothing to score" if math.isnan(s["mean_iou"])
                      else f"<b>mIoU {s['mean_iou']:.4f}</b> &middot; pixel accuracy {s['pixel_accuracy']:.4f}")
        else:
            s = self.image_scores(i)
            scores = (f"<b>Dice {s['dice']:.4f}</b> &middot; IoU {s['iou']:.4f} &middot; false positives "
                      f"{s['false_positives']} px, false negatives {s['false_negatives']} px{at}")
        return "".join(f"<div style='{TEXT_LINE}'>{line}</div>" for line in (head, scores))

    def _legend_html(self) -> str:
        """The colours of the errors panel (and of the classes), a group per line, each after its heading."""
        if self.multiclass:
            rows = [("classes:", list(zip(self.class_names, class_palette(self.num_classes)))),
                    ("not scored:", [("ignored (unlabelled)", IGNORED)]),
                    ("errors:", [("wrong label (a labelled pixel given another class)", WRONG_LABEL)])]
        elif self.view.value == "cells":
            rows = [("cells:", [("membrane (each cell its own colour; a predicted cell that matches a true "
                                 "cell takes its colour)", (0, 0, 0))]),
                    ("errors:", [("merged: one predicted cell over 2+ true cells", MERGED),
                                 ("split: one true cell cut into 2+ predicted cells", SPLIT)])]
        else:
            rows = [("errors:", [("false positive (predicted, not in the mask)", FALSE_POSITIVE),
                                 ("false negative (in the mask, missed)", FALSE_NEGATIVE)])]
        swatch = ("display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-2px;"
                  "border:1px solid #777;background:rgb{}")
        lines = ["<div style='display:flex;flex-wrap:wrap;gap:2px 16px;align-items:center'>"
                 f"<span style='min-width:76px;color:#555'>{heading}</span>" + "".join(
                     f"<span style='white-space:nowrap'><span style='{swatch.format(tuple(int(v) for v in c))}'>"
                     f"</span>{html.escape(name)}</span>" for name, c in items) + "</div>"
                 for heading, items in rows]
        return "<div style='font-size:12px;line-height:18px'>" + "".join(lines) + "</div>"

    def _view_changed(self, _change: Any = None) -> None:
        self.legend.value = self._legend_html()
        if not self.sorted_by_score:
            self.sort_button.description = self._sort_text()
        self._render()

    # ---- sorting
    def _sort_text(self) -> str:
        return f"sort by {self.metric}, worst first"

    def _toggle_sort(self, _button: Any = None) -> None:
        """First press: order worst first by the view's score; next press: dataset order."""
        if self.sorted_by_score:
            shown = self.current
            self.order, self.sorted_by_score = list(range(len(self.order))), False
            self.sort_button.description = self._sort_text()
            self.order_label.value = "dataset order"
            self._show_position(shown)
            return
        self.order_label.value = f"scoring {len(self.order)} images ..."
        scores, metric = self.all_scores(), self.metric
        sign = -1.0 if metric == "Rand error" else 1.0  # an error: the highest is the worst
        self.order = sorted(range(len(scores)), key=lambda i: worst_first(sign * scores[i], i))
        self.sorted_by_score = True
        self.sort_button.description = "back to dataset order"
        at = "" if self.multiclass else f" at threshold {self.threshold.value:.2f}"
        self.order_label.value = (f"worst first by {metric}{at}: {scores[self.order[0]]:.4f} .. "
                                  f"{scores[self.order[-1]]:.4f}")
        self._show_position(0)

    def all_scores(self) -> list[float]:
        """Every image's score in dataset order: Dice (binary, current threshold), mIoU
        (multi-class), or Rand error (cells view)."""
        out = []
        for start in range(0, len(self.order), self.batch_size):
            chunk = list(range(start, min(start + self.batch_size, len(self.order))))
            self._entries(chunk)
            if self.metric == "Rand error":
                out += [self.cell_scores(i)["rand_error"] for i in chunk]
            else:
                out += [self.image_scores(i)["mean_iou" if self.multiclass else "dice"] for i in chunk]
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

    def _cells(self, entry: dict) -> dict:
        """Cells (4-connected components) of truth and prediction, which are merged or split
        (em_metrics.split_merge), colours and cell_scores; the truth's once, the rest once per threshold."""
        from .data.isbi2012 import cell_labels  # imported when needed: the data package is slow to import
        from .em_metrics import pixel_error, rand_error, split_merge

        if "true_cells" not in entry:
            entry["true_cells"] = cell_labels(entry["target"].numpy())
        if entry.get("cells_at") != self.threshold.value:
            mask, target, true = self._prediction(entry).numpy(), entry["target"].numpy(), entry["true_cells"]
            pred, counts = cell_labels(mask), split_merge(mask, target)
            true_colours, pred_colours = matching_colours(true, pred)
            scores = {"rand_error": rand_error(mask, target), "pixel_error": pixel_error(mask, target),
                      "merged": counts["merged"], "split": counts["split"],
                      "true_cells": int(true.max()), "predicted_cells": int(pred.max())}
            entry["cells"] = {"true": true, "pred": pred, "true_colours": true_colours, "pred_colours": pred_colours,
                              "merged": counts["merged_cells"], "split": counts["split_cells"], "scores": scores}
            entry["cells_at"] = self.threshold.value
        return entry["cells"]

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """dataset[i] checked: image (C, H, W) float, mask (H, W)."""
        return check_item(self.dataset[i], i)

    def _predict(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """Probabilities (C, h, w) of each image: overlap-tiled one by one, or one batch when the sizes agree."""
        from .inference import predict_probabilities

        same = len({tuple(im.shape) for im in images}) == 1
        batches = [torch.stack(images)] if same and not self.tiled else [im[None] for im in images]
        try:
            probs = [self._tiled_probabilities(b[0])[None] if self.tiled else
                     predict_probabilities(self.model, b, tta=self.tta) for b in batches]
        except RuntimeError as err:
            raise RuntimeError(f"The model failed on images of shape {tuple(images[0].shape)} from the dataset: "
                               f"{err}. Check that this model was built for these images.") from err
        if probs[0].ndim != 4:
            raise ValueError(f"The model returned shape {tuple(probs[0].shape)}; PredictionViewer needs logits "
                             "(N, C, H, W): one channel for a binary mask, C for C classes.")
        return [p for batch in probs for p in batch]

    def _tiled_probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, W) probabilities of one whole image by overlap-tile inference (lesson 07), averaged
        with the mirrored image's when tta is on."""
        from .inference import predict_tiled
        from .tiling import covering_tile_size

        tile = self.tile_size or covering_tile_size(self.model, *image.shape[-2:])
        logits = [predict_tiled(self.model, image, tile)]
        if self.tta:
            logits.append(predict_tiled(self.model, image.flip(-1), tile).flip(-1))
        probs = [torch.sigmoid(x) if x.shape[0] == 1 else torch.softmax(x, 0) for x in logits]
        return sum(probs) / len(probs)

    def _entry(self, i: int, image: torch.Tensor, target: torch.Tensor, probs: torch.Tensor) -> dict:
        """What frames and scores need for image i: its prediction, and its mask and picture cropped
        to the prediction's size (a model that predicts a center crop), at display size too."""
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
        rgb = display_rgb(image)
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
