"""The exercise checks of lesson 12 accept right answers and explain wrong ones in words."""
import math

import numpy as np
import pytest
import torch

from course_utils.checks.lesson12 import check_border_term, check_class_weights, check_paper_std, check_two_nearest
from course_utils.paper import border_term, class_frequency_weights, two_nearest
from conftest import fails_with, todo


# ---- exercise 1: the border term ----------------------------------------------------------

def test_border_term_accepts_right_answers(capsys):
    check_border_term(lambda d1, d2, w0, sigma: w0 * np.exp(-(d1 + d2) ** 2 / (2 * sigma**2)))
    check_border_term(border_term)
    check_border_term(lambda d1, d2, w0, sigma: w0 * torch.exp(-(torch.tensor(d1) + torch.tensor(d2)) ** 2
                                                                / (2 * sigma**2)))
    assert capsys.readouterr().out.count("Correct:") == 3


@pytest.mark.parametrize("wrong, says", [
    (lambda d1, d2, w0, s: w0 * np.exp(-(d1 + d2) ** 2 / (2 * s)), "sigma is not squared"),
    (lambda d1, d2, w0, s: w0 * np.exp(-(d1 + d2) ** 2 / s**2), "factor 2 is missing"),
    (lambda d1, d2, w0, s: w0 * np.exp(-(d1 + d2) ** 2 / 2 * s**2), "parentheses"),
    (lambda d1, d2, w0, s: w0 * np.exp(-d1**2 / (2 * s**2)), "d1 alone"),
    (lambda d1, d2, w0, s: w0 * np.exp(-(d1**2 + d2**2) / (2 * s**2)), "square the sum"),
    (lambda d1, d2, w0, s: w0 * np.exp(-(d1 + d2) / (2 * s**2)), "is squared"),
    (lambda d1, d2, w0, s: np.exp(-(d1 + d2) ** 2 / (2 * s**2)), "w0 is missing"),
    (lambda d1, d2, w0, s: 1 + w0 * np.exp(-(d1 + d2) ** 2 / (2 * s**2)), "only the border term"),
    (lambda d1, d2, w0, s: 10 * np.exp(-(d1 + d2) ** 2 / 50), "use the arguments w0 and sigma"),
    (lambda d1, d2, w0, s: (w0 * np.exp(-(d1 + d2) ** 2 / (2 * s**2))).sum(), "one weight per pixel"),
    (lambda d1, d2, w0, s: w0 * np.exp(-(d1 + d2) ** 2 / (2 * s**2)) + 0.5, "expected"),
    (todo, "NotImplementedError"),
])
def test_border_term_names_the_usual_mistakes(wrong, says):
    assert says in fails_with(check_border_term, wrong)


def test_a_missing_minus_sign_is_named():
    with np.errstate(over="ignore"):
        assert "minus sign" in fails_with(check_border_term, lambda d1, d2, w0, s: w0 * np.exp((d1 + d2) ** 2
                                                                                              / (2 * s**2)))


# ---- exercise 2: d1, d2 -------------------------------------------------------------------

def test_two_nearest_accepts_right_answers(capsys):
    check_two_nearest(lambda d: tuple(np.sort(d, axis=0)[:2]))
    check_two_nearest(two_nearest)
    check_two_nearest(lambda d: torch.tensor(d).topk(2, dim=0, largest=False).values)  # a (2, H, W) tensor
    assert capsys.readouterr().out.count("Correct:") == 3


@pytest.mark.parametrize("wrong, says", [
    (lambda d: (d.min(0), d.min(0)), "d2 equals d1"),
    (lambda d: (np.sort(d, 0)[1], np.sort(d, 0)[0]), "swapped"),
    (lambda d: (d.min(0), d.max(0)), "largest distance"),
    (lambda d: (d[0], d[1]), "cells 0 and 1"),
    (lambda d: np.sort(d, 0)[:2].min(), "two arrays"),
    (lambda d: (np.sort(d, 0)[:1], np.sort(d, 0)[1:2]), "K axis is left over"),
    (lambda d: (np.sort(d, 1)[:, 0], np.sort(d, 1)[:, 1]), "axis 0"),
    (lambda d: (d.min(0), np.median(d, 0)), "two smallest"),
    (todo, "NotImplementedError"),
])
def test_two_nearest_names_the_usual_mistakes(wrong, says):
    assert says in fails_with(check_two_nearest, wrong)


# ---- exercise 3: w_c ----------------------------------------------------------------------

def class_weights(mask):
    fg = mask.mean()
    if fg in (0, 1):
        return np.ones(mask.shape)
    top = max(fg, 1 - fg)
    return np.where(mask, top / fg, top / (1 - fg))


def test_class_weights_accepts_right_answers(capsys):
    check_class_weights(class_weights)
    check_class_weights(class_frequency_weights)
    assert capsys.readouterr().out.count("Correct:") == 2


def _freq(mask):
    return np.where(mask, mask.mean(), 1 - mask.mean())


@pytest.mark.parametrize("wrong, says", [
    (lambda m: class_weights(m).max() + class_weights(m).min() - class_weights(m), "wrong way round"),
    (lambda m: _freq(m), "inverse"),
    (lambda m: 1 / _freq(m), "not normalised"),
    (lambda m: _freq(m).min() / _freq(m), "normalise by the most frequent class"),
    (lambda m: np.where(m, (1 - m.mean()) / m.mean(), 1.0), "do not assume the foreground is the rarer"),
    (lambda m: np.where(m, max(m.mean(), 1 - m.mean()) / m.mean(), 1.0), "one class is right"),
    (lambda m: (m.mean(), 1 - m.mean()), "two numbers"),
    (lambda m: class_weights(m)[0], "expected (4, 5)"),
    (todo, "NotImplementedError"),
])
def test_class_weights_names_the_usual_mistakes(wrong, says):
    assert says in fails_with(check_class_weights, wrong)


def test_a_one_class_mask_must_not_give_inf():
    def no_guard(m):
        fg = m.mean()
        with np.errstate(divide="ignore", invalid="ignore"):
            top = max(fg, 1 - fg)
            return np.where(m, top / fg, top / (1 - fg)) if 0 < fg < 1 else np.where(m, top / fg, np.inf)
    assert "Return 1 for every pixel" in fails_with(check_class_weights, no_guard)


# ---- exercise 4: the paper's init ---------------------------------------------------------

def test_paper_std_accepts_right_answers(capsys):
    check_paper_std(lambda c_in, c_out, k: math.sqrt(2 / (c_in * k * k)))
    check_paper_std(lambda c_in, c_out, k: torch.tensor(2 / (c_in * k * k)).sqrt())
    assert capsys.readouterr().out.count("Correct:") == 2


@pytest.mark.parametrize("wrong, says", [
    (lambda c, o, k: 2 / (c * k * k), "variance"),
    (lambda c, o, k: math.sqrt(1 / (c * k * k)), "the 2 is missing"),
    (lambda c, o, k: math.sqrt(2 / (o * k * k)), "not the outputs"),
    (lambda c, o, k: math.sqrt(2 / (c * k)), "k * k taps per channel"),
    (lambda c, o, k: math.sqrt(2 / c), "taps are missing"),
    (lambda c, o, k: math.sqrt(2 / ((c + o) * k * k)), "Glorot"),
    (lambda c, o, k: "0.0589", "one number"),
    (lambda c, o, k: math.sqrt(3 / (c * k * k)), "expected sqrt(2 / N)"),
    (todo, "NotImplementedError"),
])
def test_paper_std_names_the_usual_mistakes(wrong, says):
    assert says in fails_with(check_paper_std, wrong)
