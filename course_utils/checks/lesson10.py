"""Checks for lesson 10's exercises: the lookup table raw NYUv2 label -> 13 classes, cross-entropy
over the labelled pixels by hand, the confusion matrix and mIoU with an ignored label, and
median-frequency class weights.

Each check runs the learner's function on inputs built to tell the usual mistakes apart, compares
it with the package's answer (course_utils.data.nyuv2.read_class_mapping, torch's cross-entropy,
course_utils.metrics.confusion_matrix and mean_iou, course_utils.losses.class_weights) and says in
words what differs.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._common import CheckFailed, call_answer, fail, one_number, passed

__all__ = ["check_raw_to_13", "check_cross_entropy", "check_confusion_matrix", "check_mean_iou",
           "check_median_frequency_weights"]


def _as_array(got: Any, call: str) -> np.ndarray:
    """The learner's answer as a numpy array, or a sentence saying why it is not one."""
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    try:
        return np.asarray(got)
    except (TypeError, ValueError):
        fail(f"{call} returned a {type(got).__name__}; expected an array.")


# ------------------------------------------------------------- exercise 1: raw label -> 13 classes

def _mapping_files(folder: Path, seed: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Write classMapping40.mat and class13Mapping.mat in NYUv2's layout (random mapClass, the real
    40 -> 13 table) and return (mapClass, labels13) as scipy.io.loadmat gives them back."""
    from scipy.io import loadmat, savemat

    from ..data.nyuv2_classes import CLASS_13_OF_40, CLASS_NAMES_13, CLASS_NAMES_40, matlab_cell

    rng = np.random.default_rng(seed)
    map_class = rng.integers(1, 41, size=(1, 894)).astype(np.uint8)
    map_class[0, :40] = rng.permutation(40) + 1  # every 40-class is used somewhere
    labels13 = np.array([[CLASS_NAMES_13.index(n) + 1 for n in CLASS_13_OF_40]], np.uint8)
    savemat(folder / "classMapping40.mat", {"className": matlab_cell(CLASS_NAMES_40), "mapClass": map_class})
    savemat(folder / "class13Mapping.mat",
            {"classMapping13": {"labels13": labels13, "classNames": matlab_cell(CLASS_NAMES_13)}})
    m40, m13 = loadmat(folder / "classMapping40.mat"), loadmat(folder / "class13Mapping.mat")
    return m40["mapClass"], m13["classMapping13"][0, 0]["labels13"]


def check_raw_to_13(raw_to_13: Callable[..., Any]) -> None:
    """Exercise 1: `raw_to_13(map_class, labels13)` with mapClass (1, 894) (raw 1..894
    -> 1..40) and labels13 (1, 40) (40-class 1..40 -> 1..13), as scipy.io.loadmat reads them ->
    an integer lookup table (895,) with lut[raw] in 1..13 and lut[0] = 0 (unlabeled). Lesson 10."""
    from ..data.nyuv2 import read_class_mapping

    with tempfile.TemporaryDirectory(prefix="lesson10-") as tmp:
        map_class, labels13 = _mapping_files(Path(tmp))
        want = read_class_mapping(tmp, 13)[0].astype(np.int64)
    call = f"raw_to_13(map_class {map_class.shape}, labels13 {labels13.shape})"
    got = _as_array(call_answer(raw_to_13, "raw_to_13", map_class.copy(), labels13.copy()), call)
    if got.ndim == 2 and 1 in got.shape:
        fail(f"{call} returned shape {got.shape}; expected (895,), one entry per raw label 0..894. loadmat gives "
             f"MATLAB's (1, n) rows: .ravel() (or .flatten()) them first.")
    mc, l13 = map_class.ravel().astype(np.int64), labels13.ravel().astype(np.int64)
    if got.shape == (894,):
        fail(f"{call} returned shape (894,); expected (895,): raw label 0 (unlabeled) needs an entry too, so that "
             f"lut[raw] works for every raw value 0..894. Put a 0 in front: np.concatenate([[0], ...]).")
    if got.shape != (895,):
        fail(f"{call} returned shape {got.shape}; expected (895,), one entry per raw label 0..894.")
    if not np.issubdtype(got.dtype, np.integer):
        if not np.all(got == np.round(got)):
            fail(f"{call} returned fractions ({got.dtype}); expected whole class numbers 0..13.")
        got = got.astype(np.int64)
    got = got.astype(np.int64)
    if np.array_equal(got, want):
        passed("lut[0] = 0 (unlabeled), lut[raw] = labels13[mapClass[raw - 1] - 1]; matches read_class_mapping.")
        return
    shifted = np.concatenate([[0], l13[np.minimum(mc, 39)]])  # labels13 indexed by k, not k - 1
    hints = [
        (np.concatenate([[0], mc]), "that is the 40-class table: send each 40-class k on through labels13 "
                                    "(to13 = [0, labels13...], then to13[lut40])"),
        (want - 1, "classes are one too small: keep NYUv2's numbering 1..13 with 0 for unlabeled (NYUv2Dataset "
                   "subtracts 1 later, when it makes the training targets)"),
        (shifted, "40-class k sits at labels13[k - 1] (MATLAB counts from 1): put a 0 in front of labels13 "
                  "too, then index it with the 40-class numbers"),
    ]
    for wrong, hint in hints:
        if np.array_equal(got, wrong.astype(np.int64)):
            fail(f"{call}: {hint}.")
    if got[0] != 0:
        fail(f"{call} gives raw label 0 the class {got[0]}; raw 0 means unlabeled and must stay 0.")
    raw = int(np.flatnonzero(got != want)[0])
    fail(f"{call} sends raw label {raw} to {got[raw]}; expected {want[raw]} (mapClass sends it to 40-class "
         f"{mc[raw - 1]}, and labels13 sends that to {want[raw]}).")


# ------------------------------------------------------------- exercise 2: cross-entropy by hand

def _ce_case(ignored: bool):
    """(logits (2, 4, 3, 5), target (2, 3, 5)); with `ignored`, a third of the pixels are 255."""
    import torch

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 3, 5, generator=g) * 2
    target = torch.randint(0, 4, (2, 3, 5), generator=g)
    if ignored:
        target[torch.rand(2, 3, 5, generator=g) < 0.35] = 255
        target[0, 0, 0] = 255
    return logits, target


def check_cross_entropy(cross_entropy_by_hand: Callable[..., Any]) -> None:
    """Exercise 2: `cross_entropy_by_hand(logits, target, ignore_index=255)` for logits
    (N, C, H, W) and labels (N, H, W) -> a scalar: the mean over labelled pixels of -log softmax
    (over C) at the true class; equal to F.cross_entropy(logits, target, ignore_index=255). Lesson 10."""
    import torch
    import torch.nn.functional as F

    for ignored in (False, True):
        logits, target = _ce_case(ignored)
        what = "with a third of the pixels unlabeled (255)" if ignored else "with every pixel labelled"
        call = f"cross_entropy_by_hand(logits {tuple(logits.shape)}, target {tuple(target.shape)} {what})"
        try:
            got = call_answer(cross_entropy_by_hand, "cross_entropy_by_hand", logits.clone(), target.clone())
        except AssertionError as err:
            cause = err.__cause__
            if ignored and isinstance(cause, (IndexError, RuntimeError)):
                raise CheckFailed(f"{call} raised {type(cause).__name__}: {cause}. The label 255 is not a class: "
                                  f"picking log-probabilities at 255 fails. Keep only the labelled pixels first "
                                  f"(keep = target != ignore_index), then pick at target[keep].") from err
            raise
        value = one_number(got, call, meaning="a scalar, the mean over the labelled pixels")
        want = float(F.cross_entropy(logits.double(), target, ignore_index=255))
        if math.isclose(value, want, rel_tol=1e-4, abs_tol=1e-6):
            continue
        labelled = target != 255
        n, total = int(labelled.sum()), target.numel()
        lp = torch.log_softmax(logits.double(), 1)
        safe = target.clamp(max=logits.shape[1] - 1)
        picked = lp.gather(1, safe[:, None])[:, 0]  # (N, H, W)
        p_true = picked.exp()
        candidates = [
            (want * n / total, f"that is the sum over labelled pixels divided by all {total} pixels; the "
                               f"unlabeled ones must not count in the mean either: divide by the {n} labelled ones"),
            (want * n, "that is the sum: take the mean over the labelled pixels"),
            (-want, "the sign is wrong: the loss is minus the log-probability of the true class"),
            (float(-p_true[labelled].mean()), "you averaged probabilities: take their log first "
                                              "(log_softmax, not softmax)"),
            (float(-lp.gather(1, safe[:, None])[:, 0].mean()), "the unlabeled pixels were scored too: keep only "
                                                                "target != ignore_index"),
        ]
        for dim in (0, 2, 3):
            other = torch.log_softmax(logits.double(), dim).gather(1, safe[:, None])[:, 0]
            candidates.append((float(-other[labelled].mean()),
                               f"the softmax ran over dimension {dim}; the classes are dimension 1 (N, C, H, W)"))
        for wrong, hint in candidates:
            if math.isclose(value, wrong, rel_tol=1e-4, abs_tol=1e-6):
                fail(f"{call} returned {value:.4f}; expected {want:.4f}: {hint}.")
        fail(f"{call} returned {value:.4f}; expected {want:.4f} = mean over the {n} labelled pixels of "
             f"-log softmax(logits, dim=1) at the true class.")
    passed("mean of -log softmax at the true class over the labelled pixels; matches "
           "F.cross_entropy(logits, target, ignore_index=255).")


# ------------------------------------------------------------- exercises 3 and 4: confusion matrix, mIoU

IGNORE = 255


def _label_maps():
    """(what, pred, target, hint if the learner's function crashes here) for 5 classes: random label
    maps (2, 6, 7), each case adding one difficulty; no case's matrix is symmetric."""
    import torch

    g = torch.Generator().manual_seed(8)
    pred, target = torch.randint(0, 5, (2, 2, 6, 7), generator=g)
    pred4, target4 = pred % 4, target % 4  # class 4 nowhere
    ignored = target4.clone()
    ignored[torch.rand(target4.shape, generator=g) < 0.3] = IGNORE
    absent = (". Class 4 occurs in neither prediction nor target here: torch.bincount then gives fewer than "
              "num_classes**2 counts, unless you pass minlength=num_classes**2")
    dropped = (f". The target holds {IGNORE} (ignore_index) on some pixels, which is no class: drop those pixels "
               "before counting (keep = target != ignore_index, then pred[keep] and target[keep])")
    return [("every class present, no pixel ignored", pred, target, ""),
            ("class 4 in neither prediction nor target", pred4, target4, absent),
            (f"class 4 absent and about 30% of the target ignored ({IGNORE})", pred4, ignored, dropped)]


def _call_with_hint(fn: Callable[..., Any], name: str, call: str, hint: str, *args: Any) -> Any:
    """call_answer, with a crash told as `call` plus `hint` (what in this input is new)."""
    try:
        return call_answer(fn, name, *args)
    except CheckFailed as err:
        cause = err.__cause__
        if cause is None or isinstance(cause, NotImplementedError):
            raise
        raise CheckFailed(f"{call} raised {type(cause).__name__}: {cause}{hint}.") from cause


def _shape_hint(shape: tuple[int, ...], c: int) -> str:
    if shape == (c * c,):
        return ": reshape the num_classes**2 counts with .view(num_classes, num_classes)"
    if len(shape) == 2 and shape[0] == shape[1] and shape[0] < c:
        return (f". Class {c - 1} is in neither prediction nor target but still needs its row and column: take the "
                f"size from num_classes (torch.bincount(..., minlength=num_classes**2)), not from the data")
    if len(shape) == 2 and shape[0] == shape[1] and shape[0] > c:
        return f". The ignored label {IGNORE} is no class: drop its pixels, do not give it a row"
    return ""


def check_confusion_matrix(my_confusion_matrix: Callable[..., Any]) -> None:
    """Exercise 3: `my_confusion_matrix(pred, target, num_classes, ignore_index)` for label maps
    (N, H, W) -> (C, C) int64 pixel counts, cm[true class, predicted class], the pixels whose target
    is ignore_index left out; equal to confusion_matrix(pred, target, num_classes, ignore_index). Lesson 10."""
    from ..metrics import confusion_matrix

    c = 5
    for what, pred, target, hint in _label_maps():
        call = f"my_confusion_matrix(pred, target, {c}, {IGNORE}) [label maps {tuple(target.shape)}, {what}]"
        got = _call_with_hint(my_confusion_matrix, "my_confusion_matrix", call, hint,
                              pred.clone(), target.clone(), c, IGNORE)
        if got is None:
            fail(f"{call} returned None; expected the ({c}, {c}) matrix: is the `return` missing?")
        got = _as_array(got, call)
        want = confusion_matrix(pred, target, c, IGNORE).numpy()
        if got.shape != want.shape:
            fail(f"{call} returned shape {got.shape}; expected {want.shape}, one row per true class and one column "
                 f"per predicted class{_shape_hint(got.shape, c)}.")
        if np.issubdtype(got.dtype, np.floating):
            fail(f"{call} returned {got.dtype} counts; expected integer counts, int64 (torch.long): sums over "
                 f"millions of pixels must stay exact, and float32 stops counting exactly at 2**24 = 16,777,216. "
                 f"Count with integers (torch.bincount gives int64); do not convert to float.")
        if got.dtype != np.int64:
            fail(f"{call} returned {got.dtype} counts; expected int64 (torch.long), which stays exact for any "
                 f"number of pixels (int32 overflows past 2**31, about 7,000 frames of 480 x 640).")
        if np.array_equal(got, want):
            continue
        labelled, total = int(want.sum()), target.numel()
        if np.array_equal(got, want.T):
            fail(f"{call}: rows and columns are swapped (your matrix is the transpose): row = true class, "
                 f"column = predicted class, so count pixel (target t, prediction p) at [t, p], the index "
                 f"t * num_classes + p.")
        if got.sum() == total != labelled:
            fail(f"{call} counts {total} pixels, every pixel given; expected the {labelled} labelled ones: the "
                 f"{total - labelled} pixels whose target is ignore_index ({IGNORE}) have no true class and must "
                 f"not be counted. Drop them first: keep = target != ignore_index.")
        t, p = (int(i) for i in np.argwhere(got != want)[0])
        fail(f"{call}: cell [{t}, {p}] (true class {t}, predicted {p}) holds {got[t, p]}; expected {want[t, p]}, "
             f"the labelled pixels whose target is {t} and prediction {p}.")
    passed("int64 counts of the labelled pixels, rows true class, columns predicted, ignored pixels left out; "
           "matches confusion_matrix.")


def _cm_cases():
    """(what, pred, target, num_classes) label maps whose confusion matrices test mIoU's edge cases."""
    import torch

    g = torch.Generator().manual_seed(13)

    def maps(c: int, right: float):  # classes of unequal size (class k about twice as frequent as k + 1)
        target = torch.multinomial(0.5 ** torch.arange(float(c)), 144, replacement=True, generator=g).view(2, 8, 9)
        noise = torch.randint(0, c, (2, 8, 9), generator=g)
        pred = torch.where(torch.rand(target.shape, generator=g) < right, target, noise)
        return pred, target

    pred_a, target_a = maps(4, 0.6)
    pred_b, target_b = maps(6, 0.5)
    pred_b[pred_b == 5], target_b[target_b == 5] = 0, 0  # class 5 in neither
    target_b[target_b == 4] = 1  # class 4 predicted, never true
    target_b[torch.rand(target_b.shape, generator=g) < 0.25] = IGNORE
    pred_c, target_c = maps(6, 0.5)
    pred_c[pred_c == 5], target_c[target_c == 5] = 1, 1  # class 5 in neither
    pred_c[pred_c == 3] = 2  # class 3 true, never predicted
    return [("4 classes, every one present", pred_a, target_a, 4),
            (f"6 classes, class 4 predicted but never true, class 5 in neither, {IGNORE}s left out", pred_b,
             target_b, 6),
            ("6 classes, class 3 true but never predicted, class 5 in neither", pred_c, target_c, 6)]


def _iou_hints(cm: np.ndarray) -> list[tuple[float, str]]:
    """(value of a usual mistake, what to say) for confusion matrix cm (rows true, columns predicted)."""
    tp, rows, cols = np.diag(cm), cm.sum(1), cm.sum(0)
    union = rows + cols - tp
    there = union > 0
    iou = np.where(there, tp / np.maximum(union, 1), np.nan)

    def first(where: np.ndarray, otherwise: str) -> str:
        return f"class {int(np.flatnonzero(where)[0])}" if where.any() else otherwise

    gone = first(~there, "a class")
    only_pred, only_true = first(there & (rows == 0), "a class"), first(there & (cols == 0), "a class")
    leave_out = "leave it out of the mean (torch.nanmean, or average over the classes with TP + FP + FN > 0)"
    with np.errstate(invalid="ignore", divide="ignore"):
        return [
            (np.nan_to_num(iou, nan=0.0).mean(), f"{gone} is in neither truth nor prediction (0 / 0) and was "
                                                 f"counted as IoU 0: {leave_out}"),
            (np.nan_to_num(iou, nan=1.0).mean(), f"{gone} is in neither truth nor prediction (0 / 0) and was "
                                                 f"counted as IoU 1: {leave_out}"),
            (tp.sum() / cm.sum(), "that is pixel accuracy (trace / sum), a mean over pixels; mIoU is a mean over "
                                  "classes of TP / (TP + FP + FN)"),
            (tp.sum() / union.sum(), "that pools all classes' pixels into one IoU (sum TP / sum union), a mean over "
                                     "pixels where big classes outweigh small ones: compute each class's IoU, then "
                                     "average over the classes"),
            (np.nansum(rows / cm.sum() * iou), "that weighs each class's IoU by its share of the pixels "
                                               "(frequency-weighted IoU), a mean over pixels; mIoU counts each "
                                               "class once"),
            (np.nanmean(iou[rows > 0]), f"{only_pred} is predicted but never true and was left out: its IoU is "
                                        f"0 / FP = 0 and it counts; leave out only classes with TP + FP + FN = 0"),
            (np.nanmean(iou[cols > 0]), f"{only_true} is true but never predicted and was left out: its IoU is "
                                        f"0 / FN = 0 and it counts; leave out only classes with TP + FP + FN = 0"),
            (np.nanmean(tp / rows), "that is TP / (TP + FN), recall: the union also holds the false positives "
                                    "(the rest of column c)"),
            (np.nanmean(tp / cols), "that is TP / (TP + FP), precision: the union also holds the false negatives "
                                    "(the rest of row c)"),
            (np.nanmean(np.where(there, 2 * tp / (rows + cols), np.nan)), "that is Dice, 2 TP / (2 TP + FP + FN); "
                                                                          "IoU is TP / (TP + FP + FN)"),
            (np.nanmean(np.where(there, tp / (rows + cols), np.nan)), "TP is counted twice: row c and column c "
                                                                      "both hold cm[c, c], so the union is row + "
                                                                      "column - TP"),
        ]


def check_mean_iou(my_mean_iou: Callable[..., Any]) -> None:
    """Exercise 4: `my_mean_iou(cm)` for a confusion matrix (C, C) int64 (rows true class, columns
    predicted) -> one number: the mean over the classes in truth or prediction of TP / (TP + FP + FN);
    a class in neither is left out. Equal to mean_iou(pred, target, num_classes, ignore_index). Lesson 10."""
    from ..metrics import confusion_matrix, iou_per_class, mean_iou

    for what, pred, target, c in _cm_cases():
        cm = confusion_matrix(pred, target, c, IGNORE)
        call = f"my_mean_iou(<{c} x {c} confusion matrix, {what}>)"
        got = call_answer(my_mean_iou, "my_mean_iou", cm.clone())
        value = one_number(got, call, meaning="the mean of the per-class IoUs over the classes present")
        want = mean_iou(pred, target, c, IGNORE)
        if math.isclose(value, want, rel_tol=1e-6, abs_tol=1e-9):
            continue
        if math.isnan(value):
            fail(f"{call} returned nan: a class in neither truth nor prediction has IoU 0 / 0 = nan, and a plain "
                 f"mean with a nan in it is nan; leave such classes out (torch.nanmean, or average over the "
                 f"classes with TP + FP + FN > 0).")
        for wrong, hint in _iou_hints(cm.double().numpy()):
            if math.isclose(value, float(wrong), rel_tol=1e-6, abs_tol=1e-9):
                fail(f"{call} returned {value:.4f}; expected {want:.4f}: {hint}.")
        shown = ", ".join("nan" if math.isnan(x) else f"{x:.3f}" for x in iou_per_class(cm).tolist())
        fail(f"{call} returned {value:.4f}; expected {want:.4f}, the mean over the classes present of "
             f"TP / (TP + FP + FN), per class [{shown}] (nan: left out).")
    passed("per-class TP / (TP + FP + FN) averaged over the classes in truth or prediction; matches mean_iou.")


# ------------------------------------------------------------- exercise 5: median-frequency weights

def _count_cases():
    import torch

    toy = torch.tensor([48389, 2635, 47525, 24172, 328948, 35853, 37003, 11268, 21686, 16248, 9680, 676867, 50421])
    unseen = torch.cat([toy, torch.tensor([0])])  # 13 classes seen, one never seen
    return [("13 class counts like the toy rooms'", toy), ("14 class counts, the last one never seen (0 pixels)",
                                                            unseen)]


def check_median_frequency_weights(median_frequency_weights: Callable[..., Any]) -> None:
    """Exercise 5: `median_frequency_weights(counts)` for pixel counts (C,) -> weights (C,):
    median(freq) / freq_c with freq = counts / counts.sum() and the median over the classes that have
    pixels; weight 0 for a class with no pixels. Equal to class_weights(counts, "median"). Lesson 10."""
    import torch

    from ..losses import class_weights

    for what, counts in _count_cases():
        call = f"median_frequency_weights(<{what}>)"
        got = _as_array(call_answer(median_frequency_weights, "median_frequency_weights", counts.clone()), call)
        want = class_weights(counts, "median").double().numpy()
        if got.shape != want.shape:
            fail(f"{call} returned shape {got.shape}; expected {want.shape}, one weight per class.")
        got = got.astype(np.float64)
        if np.allclose(got, want, rtol=1e-5, atol=1e-7):
            continue
        c = counts.double().numpy()
        seen = c > 0
        freq = c / c.sum()
        if not np.all(np.isfinite(got)):
            fail(f"{call} gave {got[~np.isfinite(got)][0]} for the class with no pixels: 1/0. A class never seen has "
                 f"nothing to weigh: give it weight 0 (torch.where(counts > 0, ..., 0)).")
        with np.errstate(divide="ignore"):
            inv = np.where(seen, 1 / np.where(seen, freq, 1), 0.0)
            hints = [
                (inv, "that is 1 / frequency: divide the median frequency by each frequency, so that a class "
                      "of median frequency weighs 1"),
                (np.where(seen, freq / np.median(freq[seen]), 0), "upside down: median(freq) / freq_c, so rare "
                                                                  "classes weigh more"),
                (np.where(seen, freq[seen].mean() / np.where(seen, freq, 1), 0), "that uses the mean frequency; "
                                                                                 "the method takes the median"),
            ]
        for med in (np.median(freq), float(torch.tensor(freq).median())):
            hints.append((np.where(seen, med / np.where(seen, freq, 1), 0), "the class with no pixels went into "
                          "the median: take the median over the classes that have pixels (freq[counts > 0])"))
        for wrong, hint in hints:
            if np.allclose(got, wrong, rtol=1e-5, atol=1e-7):
                fail(f"{call}: {hint}.")
        k = int(np.flatnonzero(~np.isclose(got, want, rtol=1e-5, atol=1e-7))[0])
        fail(f"{call} gives class {k} (count {int(c[k])}) the weight {got[k]:.4f}; expected {want[k]:.4f} = "
             f"median frequency {np.median(freq[seen]):.5f} / its frequency {freq[k]:.5f}.")
    passed("median(freq) / freq_c over the classes with pixels, 0 for a class never seen; matches "
           "class_weights(counts, 'median').")
