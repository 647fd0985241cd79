"""Checks for lesson 11's exercises: the depth term of the loss (mean absolute error in metres over
the pixels with a measurement) and the three depth scores (AbsRel, RMSE, delta1) by hand.

Each check runs the learner's function on small depth maps built so that the usual mistakes give
different numbers (pixels with no measurement counted, the absolute value forgotten, errors
averaged per image instead of pooled, delta on one ratio only, ...), compares the answer with the
package's (course_utils.losses.masked_l1, which SegDepthLoss uses, and course_utils.metrics.DepthMetrics)
and says in words what differs.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ._common import CheckFailed, call_answer, fail, one_number, passed

__all__ = ["check_depth_l1", "check_depth_errors"]

RATIOS = (0.45, 0.6, 0.7, 0.77, 0.85, 1.0, 1.1, 1.2, 1.4, 2.0)  # pred / true: each delta mistake counts a different set


def _depth_cases():
    """(what, pred, true) depth maps (N, 1, H, W) in metres: one image fully measured, then two images
    with holes (true depth 0), more of them in the second, so per-image and pooled means differ."""
    import torch

    g = torch.Generator().manual_seed(11)
    cases = []
    for what, n, holes in (("one image, every pixel measured", 1, (0,)),
                           ("two images, 4 and 13 of their 30 pixels with no measurement (true depth 0)", 2, (4, 13))):
        true = 0.7 + 5.3 * torch.rand(n, 1, 5, 6, generator=g, dtype=torch.float64)
        ratio = torch.tensor(RATIOS, dtype=torch.float64).repeat(3 * n)[torch.randperm(30 * n, generator=g)]
        pred = true * ratio.view(n, 1, 5, 6)
        for i, k in enumerate(holes):
            true[i, 0].view(-1)[torch.randperm(30, generator=g)[:k]] = 0.0
        cases.append((what, pred.float(), true.float()))
    return cases


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-7)


# ------------------------------------------------------------- exercise 1: the depth term of the loss

def _l1_hints(pred, true) -> list[tuple[float, str]]:
    """(value of a usual mistake, what to say) for the depth term on these maps."""
    import torch

    p, t = pred.double(), true.double()
    valid = t > 0
    e = p[valid] - t[valid]
    n, total = int(valid.sum()), t.numel()
    per_image = [float((p[i][valid[i]] - t[i][valid[i]]).abs().mean()) for i in range(len(t))]
    return [
        (float((p - t).abs().mean()), f"the {total - n} pixels with no measurement (true depth 0) were scored, as "
                                      f"if the wall were 0 m away there: keep only the pixels with target > 0"),
        (float(e.abs().sum()) / total, f"that is the sum over the {n} measured pixels divided by all {total}; the "
                                       f"pixels with no measurement must not count in the mean either: divide by "
                                       f"the {n} measured ones (take .mean() after keeping target > 0)"),
        (float(e.mean()), "errors above and below the truth cancelled: take the absolute value of each pixel's "
                          "error before the mean"),
        (abs(float(e.mean())), "that is the absolute value of the mean error; errors above and below the truth "
                               "cancelled first: take each pixel's absolute error, then the mean"),
        (float(e.pow(2).mean()), "that is the mean squared error; the depth term is the mean absolute error in "
                                 "metres (L1)"),
        (float(e.pow(2).mean().sqrt()), "that is the RMSE, one of the scores; the depth term is the mean absolute "
                                        "error in metres (L1)"),
        (float(e.abs().sum()), "that is the sum: take the mean over the measured pixels"),
        (sum(per_image) / len(per_image), "that averages each image's mean error; the loss pools every measured "
                                          "pixel of the batch, so an image with few measured pixels does not count "
                                          "as much as a full one: keep target > 0 over the whole batch, then one "
                                          ".mean()"),
        (float((e.abs() / t[valid]).mean()), "that is AbsRel, the error as a share of the distance; the depth term "
                                             "is in metres: |pred - target|, no division"),
        (float((torch.log(p[valid]) - torch.log(t[valid])).abs().mean()), "that compares log-depths; the depth "
                                                                          "term compares metres: |pred - target|"),
    ]


def check_depth_l1(depth_l1: Callable[..., Any]) -> None:
    """Exercise 1: `depth_l1(pred, target)` for depth maps (N, 1, H, W) in metres, target 0 where
    the sensor measured nothing -> a scalar tensor that backward() can go through: the mean of
    |pred - target| over the pixels with target > 0, pooled over the batch. Equal to
    course_utils.losses.masked_l1, the depth part of SegDepthLoss. Lesson 11."""
    import torch

    from ..losses import masked_l1

    for what, pred, true in _depth_cases():
        call = f"depth_l1(pred {tuple(pred.shape)}, target {tuple(true.shape)}) [{what}]"
        pred = pred.clone().requires_grad_(True)
        try:
            got = call_answer(depth_l1, "depth_l1", pred, true.clone())
        except CheckFailed as err:
            cause = err.__cause__
            if isinstance(cause, RuntimeError) and "requires grad" in str(cause):
                raise CheckFailed(f"{call} raised RuntimeError: {cause}. A loss must stay a torch computation so "
                                  f"that loss.backward() reaches the depth head: no .numpy(), no .item(); use "
                                  f"torch's abs() and mean().") from cause
            raise
        value = one_number(got, call, meaning="the mean over all the measured pixels of the batch")
        if not isinstance(got, torch.Tensor) or not got.requires_grad:
            fail(f"{call} returned a {type(got).__name__} that backward() cannot go through; a loss must stay a "
                 f"tensor with its graph, so that training can follow it back to the depth head: do not call "
                 f".item(), float() or .detach() on it.")
        want = float(masked_l1(pred.detach().double(), true.double()))
        if _close(value, want):
            continue
        if not math.isfinite(value):
            fail(f"{call} returned {value}; expected {want:.4f}: a log or a division met a pixel with no "
                 f"measurement (target 0). Keep only the pixels with target > 0, and take |pred - target| in metres.")
        for wrong, hint in _l1_hints(pred.detach(), true):
            if _close(value, wrong):
                fail(f"{call} returned {value:.4f}; expected {want:.4f}: {hint}.")
        fail(f"{call} returned {value:.4f}; expected {want:.4f} = the mean of |pred - target| over the "
             f"{int((true > 0).sum())} pixels with target > 0.")
    passed("the mean absolute error in metres over the measured pixels of the batch, a tensor backward() goes "
           "through; matches masked_l1, the depth part of SegDepthLoss.")


# ------------------------------------------------------------- exercise 2: AbsRel, RMSE, delta1

def _error_hints(pred, true) -> dict[str, list[tuple[float, str]]]:
    """For each score, (value of a usual mistake, what to say) on these maps."""
    import torch

    p, t = pred.double(), true.double()
    valid = t > 0
    pv, tv = p[valid], t[valid]
    n, total = int(valid.sum()), t.numel()
    ratio = torch.maximum(pv / tv, tv / pv)

    def per_image(score: Callable[[Any, Any], Any]) -> float:
        return sum(float(score(p[i][valid[i]], t[i][valid[i]])) for i in range(len(t))) / len(t)

    pooled = "pool every measured pixel of the batch (true > 0 over the whole batch, then one mean)"
    all_px = (f"the {total - n} pixels with no measurement (true depth 0) counted in the mean: divide by the {n} "
              f"measured ones (keep true > 0 first)")
    return {
        "abs_rel": [
            (float(((pv - tv).abs() / tv).sum()) / total, all_px),
            (float(((pv - tv).abs() / pv).mean()), "that divides by the predicted depth; AbsRel divides each error "
                                                   "by the true depth: |pred - true| / true"),
            (float(((pv - tv) / tv).mean()), "errors above and below the truth cancelled: take |pred - true|"),
            (float((pv - tv).abs().mean() / tv.mean()), "that divides the mean error by the mean depth; divide each "
                                                        "pixel's error by its own true depth, then take the mean"),
            (float((pv - tv).abs().mean()), "that is the mean absolute error in metres; AbsRel divides each "
                                            "pixel's error by its true depth"),
            (per_image(lambda a, b: ((a - b).abs() / b).mean()), f"that averages each image's AbsRel; {pooled}"),
        ],
        "rmse": [
            (float((pv - tv).pow(2).mean()), "that is the mean squared error: take its square root"),
            (float((pv - tv).abs().mean()), "that is the mean absolute error: RMSE squares the errors, takes the "
                                            "mean, then the square root"),
            (per_image(lambda a, b: (a - b).pow(2).mean().sqrt()), f"that averages each image's RMSE; {pooled}, "
                                                                   f"and take the square root last"),
            (float((pv - tv).pow(2).sum().sqrt()), "that is the square root of the sum: take the mean of the "
                                                   "squared errors first"),
            (float(((p - t) ** 2).mean().sqrt()), f"the {total - n} pixels with no measurement (true depth 0) were "
                                                  f"scored as if the wall were 0 m away: keep only true > 0"),
            (math.sqrt(float((pv - tv).pow(2).sum()) / total), all_px),
            (float(((pv - tv) / tv).pow(2).mean().sqrt()), "that is a relative RMSE; RMSE is in metres: no "
                                                           "division by the true depth"),
        ],
        "delta1": [
            (float((pv / tv < 1.25).double().mean()), "that counts pred / true < 1.25 only, so every prediction "
                                                      "that is too small passes, however small: take "
                                                      "max(pred / true, true / pred) < 1.25"),
            (float((tv / pv < 1.25).double().mean()), "that counts true / pred < 1.25 only, so every prediction "
                                                      "that is too large passes, however large: take "
                                                      "max(pred / true, true / pred) < 1.25"),
            (float(((pv - tv).abs() / tv < 0.25).double().mean()), "that counts |pred - true| / true < 0.25; "
                                                                   "delta1 takes the ratio both ways, "
                                                                   "max(pred / true, true / pred) < 1.25, so 25% "
                                                                   "too far and 20% too near are the limits"),
            (100 * float((ratio < 1.25).double().mean()), "that is a percentage: delta1 is a share between 0 and 1"),
            (float((ratio < 1.25**2).double().mean()), "that is delta2 (ratio < 1.25**2); delta1 uses 1.25"),
            (float((ratio < 1.25).sum()) / total, all_px),
            (per_image(lambda a, b: (torch.maximum(a / b, b / a) < 1.25).double().mean()),
             f"that averages each image's share; {pooled}"),
        ],
    }


KEYS = ("abs_rel", "rmse", "delta1")


def check_depth_errors(depth_errors: Callable[..., Any]) -> None:
    """Exercise 2: `depth_errors(pred, true)` for depth maps (N, 1, H, W) in metres, true 0 where the
    sensor measured nothing -> {"abs_rel", "rmse", "delta1"} over the pixels with true > 0, pooled
    over the batch: mean |p - t| / t, sqrt(mean (p - t)^2), and the share with max(p / t, t / p) < 1.25.
    Equal to what DepthMetrics computes. Lesson 11."""
    from ..metrics import DepthMetrics

    for what, pred, true in _depth_cases():
        call = f"depth_errors(pred {tuple(pred.shape)}, true {tuple(true.shape)}) [{what}]"
        got = call_answer(depth_errors, "depth_errors", pred.clone(), true.clone())
        if not isinstance(got, dict):
            fail(f"{call} returned a {type(got).__name__}; expected a dict with the keys {list(KEYS)}.")
        missing = [k for k in KEYS if k not in got]
        if missing:
            fail(f"{call} returned a dict with keys {sorted(got)}; expected {list(KEYS)} (missing {missing}).")
        reference = DepthMetrics()
        reference.update(pred, true)
        want = reference.compute()
        hints = _error_hints(pred, true)
        for key in KEYS:
            value = one_number(got[key], call, of=f'"{key}"',
                               meaning="one score over all the measured pixels of the batch")
            if _close(value, want[key]):
                continue
            said = f'{call} gave "{key}" = {value:.4f}; expected {want[key]:.4f}'
            if not math.isfinite(value):
                fail(f"{said}: a pixel with no measurement (true depth 0) was divided by (or into) 0. Keep only the "
                     f"pixels with true > 0 before computing anything.")
            for wrong, hint in hints[key]:
                if _close(value, wrong):
                    fail(f"{said}: {hint}.")
            fail(f"{said}, computed over the {want['n_pixels']} pixels with true > 0.")
    passed("AbsRel, RMSE and delta1 over every measured pixel of the batch, pooled; matches DepthMetrics.")
