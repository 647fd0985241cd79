"""course_utils: the small package the U-Net course notebooks import.

Every public name is importable from the package itself
(``from course_utils import UNet, dice_score``). Names are resolved lazily, so
``import course_utils`` stays fast and imports torch only when a name needs it.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    # environment.py (lesson 00)
    "profile": "environment",
    "data_root": "environment",
    "doctor": "environment",
    "pick_device": "environment",
    "has_dataset": "environment",
    "set_threads": "environment",
    "seed_everything": "environment",
    # environment.py (README.md): data apart from work, for read-only data roots
    "work_root": "environment",
    "dataset_dir": "environment",
    "is_writable": "environment",
    # model.py (lessons 01-04)
    "DoubleConv": "model",
    "Down": "model",
    "Up": "model",
    "UNet": "model",
    "count_parameters": "model",
    "trace_shapes": "inference",
    "valid_input_sizes": "model",
    "center_crop": "model",
    "output_length": "model",
    "TwoHeadUNet": "model",
    "NoSkipUNet": "model",
    # encoders.py and metrics.py (lessons 09 and 14): torchvision classifiers as the contracting path,
    # the baselines U-Net answered, and the error along a mask's outline
    "EncoderUNet": "encoders",
    "TorchvisionSegmenter": "encoders",
    "outline_band": "metrics",
    "outline_band_error": "metrics",
    # drawing.py (lesson 04)
    "draw_unet": "drawing",
    # metrics.py (lesson 07)
    "dice_score": "metrics",
    "iou_score": "metrics",
    "pixel_accuracy": "metrics",
    "precision_score": "metrics",
    "recall_score": "metrics",
    "overlap_counts": "metrics",
    "confusion_matrix": "metrics",
    "iou_per_class": "metrics",
    "confusion_scores": "metrics",
    "mean_iou": "metrics",
    "BinaryMetrics": "metrics",
    "ConfusionMatrix": "metrics",
    "depth_metrics": "metrics",
    "DepthMetrics": "metrics",
    # evaluation.py (lessons 07-10)
    "predict_probabilities": "inference",
    "forward": "inference",
    "evaluating": "inference",
    "evaluate": "evaluation",
    "summarize": "evaluation",
    "threshold_sweep": "evaluation",
    "evaluate_segmentation": "evaluation",
    # inference.py and predict.py (lessons 08 and 13)
    "predict_tiled": "inference",
    "predict_stack": "inference",
    "predict_stack_file": "predict",
    "tile_grid": "tiling",
    "mirror_pad": "tiling",
    "covering_tile_size": "tiling",
    "context_margin": "tiling",
    "predict_image": "predict",
    "predict_logits": "predict",
    "write_submission": "predict",
    "read_submission": "predict",
    "overlay_mask": "predict",
    "read_image": "predict",
    # rle.py (lesson 05)
    "rle_encode": "rle",
    "rle_decode": "rle",
    # data/ (lesson 05)
    "make_toy_carvana": "data",
    "ensure_toy_carvana": "data",
    "CarvanaDataset": "data",
    "split_cars": "data",
    "train_transform": "data",
    "eval_transform": "data",
    "split_summary": "data",
    "car_photo": "data",
    "split_by_image": "data",
    "GridElastic": "data",
    "build_cache": "data",
    "download_carvana": "data",
    "DownloadError": "data",
    "car_id": "data",
    "NYUv2Dataset": "data",
    "make_toy_nyuv2": "data",
    "ensure_toy_nyuv2": "data",
    "download_nyuv2": "data",
    "nyuv2_class_names": "data",
    "label_frequencies": "data",
    "IGNORE_INDEX": "data",
    "read_class_mapping": "data",
    "cache_folder": "data",
    "ARCHIVES": "data",
    "RULES_URL": "data",
    "RAW_IDS": "data",
    # em_metrics.py (lesson 13): the ISBI 2012 challenge's metrics
    "pixel_error": "em_metrics",
    "rand_error": "em_metrics",
    "rand_scores": "em_metrics",
    "em_scores": "em_metrics",
    "em_scores_per_slice": "em_metrics",
    "mean_scores": "em_metrics",
    "threshold_sweep_em": "em_metrics",
    "EMScores": "em_metrics",
    "baseline_scores": "em_metrics",
    "split_merge": "em_metrics",
    # tasks/ (lesson 06): the data sets the engine trains on
    "get_task": "tasks",
    # data/isbi2012.py and data/download.py (lesson 13): the paper's EM data
    "ISBI2012Dataset": "data",
    "read_isbi2012": "data",
    "check_isbi2012": "data",
    "held_out_split": "data",
    "cell_labels": "data",
    "em_train_transform": "data",
    "em_eval_transform": "data",
    "download_isbi2012": "data",
    "ensure_isbi2012": "data",
    "read_stack": "data",
    "write_stack": "data",
    # data/transforms.py (lesson 12): the paper's elastic deformation
    "paper_sigma": "data",
    # paper.py (lesson 12)
    "touching_cells": "paper",
    "separation_border": "paper",
    "separated_foreground": "paper",
    "cell_distances": "paper",
    "two_nearest": "paper",
    "border_term": "paper",
    "class_frequency_weights": "paper",
    "weight_map": "paper",
    "weighted_cross_entropy": "paper",
    "he_std": "paper",
    "paper_init_": "paper",
    "touching_pairs": "paper",
    "separated_pairs": "paper",
    # losses.py and train.py (lesson 06)
    "DiceLoss": "losses",
    "BCEDiceLoss": "losses",
    "SegDepthLoss": "losses",
    "class_weights": "losses",
    "masked_l1": "losses",
    "silog_loss": "losses",
    "TrainConfig": "config",
    "fit": "engine",
    "train_one_epoch": "engine",
    "train_step": "engine",
    "validate": "engine",
    "NonFiniteLossError": "engine",
    "make_optimizer": "engine",
    "make_scheduler": "engine",
    "warmup_cosine": "engine",
    "resolve_amp": "precision",
    "load_checkpoint": "checkpoint",
    "load_or_train": "train",
    "build_model": "train",
    "make_loaders": "train",
    "save_checkpoint": "checkpoint",
    "read_checkpoint": "checkpoint",
    # viz.py
    "show_predictions": "viz",
    "PredictionViewer": "viewer",
    "class_palette": "viz",
    "error_overlay": "viz",
    "ERROR_COLOURS": "viz",
    "save_prediction_figure": "viz",
    "plot_history": "viz",
    "matching_colours": "viz",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
