"""The exercise checks of lesson 11 accept right answers and explain wrong ones in words."""
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from course_utils.checks.lesson11 import _depth_cases, _error_hints, _l1_hints, check_depth_errors, check_depth_l1
from course_utils.losses import masked_l1
from course_utils.metrics import DepthMetrics, depth_metrics
from conftest import fails_with, todo

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "11_nyu_depth.ipynb"


def notebook_solution(name):
    """The function `name` as the committed lesson 11 defines it (its solution included)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source)
    scope = {"torch": torch}
    exec(cell.source, scope)
    return scope[name]


def test_the_cases_tell_the_mistakes_apart():
    """On the case with holes and two images, every usual mistake gives its own number, none the right one."""
    _, pred, true = _depth_cases()[1]
    assert (true == 0).any() and len({int((t > 0).sum()) for t in true}) == 2  # holes, unequal per image
    reference = DepthMetrics()
    reference.update(pred, true)
    want = reference.compute()
    for key, hints in _error_hints(pred, true).items():
        values = [v for v, _ in hints]
        assert not any(math.isclose(v, want[key], rel_tol=1e-3) for v in values), key
        assert len({round(v, 4) for v in values}) == len(values), key
    l1 = [v for v, _ in _l1_hints(pred, true)]
    assert not any(math.isclose(v, float(masked_l1(pred, true)), rel_tol=1e-3) for v in l1)


# ---- exercise 1: the depth term of the loss --------------------------------------------------

def depth_l1(pred, target):
    valid = target > 0
    return (pred[valid] - target[valid]).abs().mean()


def test_depth_l1_accepts_right_answers(capsys):
    check_depth_l1(notebook_solution("depth_l1"))
    check_depth_l1(masked_l1)  # the package's
    check_depth_l1(depth_l1)
    check_depth_l1(lambda p, t: ((p - t).abs() * (t > 0)).sum() / (t > 0).sum())  # a mask product is fine
    check_depth_l1(lambda p, t: torch.nn.functional.l1_loss(p[t > 0], t[t > 0]))
    assert capsys.readouterr().out.count("Correct:") == 5


def on_measured(f):
    """A depth_l1 that computes f(pred, target) on the measured pixels only."""
    return lambda p, t: f(p[t > 0], t[t > 0])


def test_depth_l1_names_the_usual_mistakes():
    def per_image(p, t):
        return torch.stack([depth_l1(p[i], t[i]) for i in range(len(t))]).mean()

    mistakes = {
        "were scored, as if the wall were 0 m away": lambda p, t: (p - t).abs().mean(),
        "divided by all 60": lambda p, t: ((p - t).abs() * (t > 0)).sum() / t.numel(),
        "take the absolute value of each pixel's error": on_measured(lambda a, b: (a - b).mean()),
        "that is the mean squared error": on_measured(lambda a, b: (a - b).pow(2).mean()),
        "that is the RMSE": on_measured(lambda a, b: (a - b).pow(2).mean().sqrt()),
        "that is the sum": on_measured(lambda a, b: (a - b).abs().sum()),
        "averages each image's mean error": per_image,
        "that is AbsRel": on_measured(lambda a, b: ((a - b).abs() / b).mean()),
        "that compares log-depths": on_measured(lambda a, b: (a.log() - b.log()).abs().mean()),
        "a log or a division met a pixel with no measurement": lambda p, t: depth_l1(p, t) / (t > 0).all(),  # inf with holes
        "expected one number": lambda p, t: (p - t).abs() * (t > 0),
        "backward() cannot go through": lambda p, t: depth_l1(p, t).item(),
        "do not call": lambda p, t: depth_l1(p, t).detach(),
        "no .numpy(), no .item()": lambda p, t: float(np.abs(p.numpy() - t.numpy())[t.numpy() > 0].mean()),
        "still raises NotImplementedError": todo,
        "is the `return` missing?": lambda p, t: None,
    }
    for said, wrong in mistakes.items():
        assert said in fails_with(check_depth_l1, wrong), said
    assert "(target 0)" in fails_with(check_depth_l1, mistakes["a log or a division met a pixel with no measurement"])
    assert "over the 30 pixels with target > 0" in fails_with(check_depth_l1, lambda p, t: depth_l1(p, t) * 1.01)


# ---- exercise 2: AbsRel, RMSE, delta1 --------------------------------------------------------

def depth_errors(pred, true):
    valid = true > 0
    p, t = pred[valid].double(), true[valid].double()
    ratio = torch.maximum(p / t, t / p)
    return {"abs_rel": ((p - t).abs() / t).mean().item(), "rmse": (p - t).pow(2).mean().sqrt().item(),
            "delta1": (ratio < 1.25).double().mean().item()}


def scores(abs_rel=None, rmse=None, delta1=None):
    """A depth_errors whose named scores are computed wrongly (f(p, t) on the measured pixels, or on the
    whole maps with `whole=True`), the others right."""
    wrong = {"abs_rel": abs_rel, "rmse": rmse, "delta1": delta1}

    def answer(pred, true):
        out = depth_errors(pred, true)
        m = true > 0
        for key, f in wrong.items():
            if f is not None:
                out[key] = f(pred, true, pred[m].double(), true[m].double())
        return out
    return answer


def per_image(score):
    def f(pred, true, p, t):
        return sum(float(score(pred[i][true[i] > 0].double(), true[i][true[i] > 0].double())) for i in range(len(true))) / len(true)
    return f


def test_depth_errors_accepts_right_answers(capsys):
    check_depth_errors(notebook_solution("depth_errors"))
    check_depth_errors(depth_metrics)  # the package's, extra keys and all
    check_depth_errors(depth_errors)

    def float32_tensors(pred, true):  # 0-d float32 tensors, no .double(): close enough
        m = true > 0
        p, t = pred[m], true[m]
        return {"abs_rel": ((p - t).abs() / t).mean(), "rmse": torch.sqrt(((p - t) ** 2).mean()),
                "delta1": (torch.maximum(p / t, t / p) < 1.25).float().mean()}
    check_depth_errors(float32_tensors)
    assert capsys.readouterr().out.count("Correct:") == 4


@pytest.mark.parametrize("said, wrong", [
    ("a pixel with no measurement (true depth 0) was divided", scores(abs_rel=lambda P, T, p, t: float(((P - T).abs() / T).mean()))),
    ("counted in the mean: divide by the 43 measured ones", scores(abs_rel=lambda P, T, p, t: float(((p - t).abs() / t).sum()) / T.numel())),
    ("divides by the predicted depth", scores(abs_rel=lambda P, T, p, t: float(((p - t).abs() / p).mean()))),
    ("errors above and below the truth cancelled", scores(abs_rel=lambda P, T, p, t: float(((p - t) / t).mean()))),
    ("divides the mean error by the mean depth", scores(abs_rel=lambda P, T, p, t: float((p - t).abs().mean() / t.mean()))),
    ("that is the mean absolute error in metres", scores(abs_rel=lambda P, T, p, t: float((p - t).abs().mean()))),
    ("averages each image's AbsRel", scores(abs_rel=per_image(lambda p, t: ((p - t).abs() / t).mean()))),
    ("that is the mean squared error: take its square root", scores(rmse=lambda P, T, p, t: float((p - t).pow(2).mean()))),
    ("RMSE squares the errors", scores(rmse=lambda P, T, p, t: float((p - t).abs().mean()))),
    ("averages each image's RMSE", scores(rmse=per_image(lambda p, t: (p - t).pow(2).mean().sqrt()))),
    ("square root of the sum", scores(rmse=lambda P, T, p, t: float((p - t).pow(2).sum().sqrt()))),
    ("scored as if the wall were 0 m away", scores(rmse=lambda P, T, p, t: float((P - T).pow(2).mean().sqrt()))),
    ("counted in the mean", scores(rmse=lambda P, T, p, t: math.sqrt(float((p - t).pow(2).sum()) / T.numel()))),
    ("relative RMSE", scores(rmse=lambda P, T, p, t: float(((p - t) / t).pow(2).mean().sqrt()))),
    ("counts pred / true < 1.25 only", scores(delta1=lambda P, T, p, t: float((p / t < 1.25).double().mean()))),
    ("counts true / pred < 1.25 only", scores(delta1=lambda P, T, p, t: float((t / p < 1.25).double().mean()))),
    ("counts |pred - true| / true < 0.25", scores(delta1=lambda P, T, p, t: float(((p - t).abs() / t < 0.25).double().mean()))),
    ("that is a percentage", scores(delta1=lambda P, T, p, t: 100 * depth_errors(P, T)["delta1"])),
    ("that is delta2", scores(delta1=lambda P, T, p, t: float((torch.maximum(p / t, t / p) < 1.25**2).double().mean()))),
    ("counted in the mean: divide by the 43", scores(delta1=lambda P, T, p, t: float((torch.maximum(P / T, T / P) < 1.25).double().mean()))),
    ("averages each image's share", scores(delta1=per_image(lambda p, t: (torch.maximum(p / t, t / p) < 1.25).double().mean()))),
])
def test_depth_errors_names_the_usual_mistakes(said, wrong):
    assert said in fails_with(check_depth_errors, wrong)


def test_depth_errors_says_what_is_wrong_with_the_shape_of_the_answer():
    assert "expected a dict with the keys" in fails_with(check_depth_errors, lambda p, t: list(depth_errors(p, t).values()))
    assert "missing ['delta1']" in fails_with(check_depth_errors, lambda p, t: {"abs_rel": 0.1, "rmse": 0.5})
    per_pixel = scores(rmse=lambda P, T, p, t: (p - t).abs())
    assert 'for "rmse"; expected one number' in fails_with(check_depth_errors, per_pixel)
    assert "still raises NotImplementedError" in fails_with(check_depth_errors, todo)
    assert '"delta1" = 0.5000; expected' in fails_with(check_depth_errors, scores(delta1=lambda P, T, p, t: 0.5))
