"""The exercise checks of lesson 08 accept right answers and explain wrong ones in words."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.checks import CheckFailed
from course_utils.checks.lesson08 import check_cross_entropy, check_median_frequency_weights, check_raw_to_13
from course_utils.losses import class_weights


def fails_with(check, *args) -> str:
    with pytest.raises(CheckFailed) as info:
        check(*args)
    return str(info.value)


# ---- exercise 1: raw label -> 13 classes ---------------------------------------------------

def raw_to_13(map_class, labels13):
    lut40 = np.concatenate([[0], map_class.ravel()])
    to13 = np.concatenate([[0], labels13.ravel()])
    return to13[lut40]


def test_raw_to_13_accepts_right_answers(capsys):
    check_raw_to_13(raw_to_13)
    check_raw_to_13(lambda m, l: torch.from_numpy(raw_to_13(m, l).astype(np.int64)))  # a tensor is fine
    check_raw_to_13(lambda m, l: np.concatenate([[0], l.ravel()[m.ravel().astype(int) - 1]]))
    assert capsys.readouterr().out.count("Correct:") == 3


def test_raw_to_13_names_the_usual_mistakes():
    assert "(1, n) rows" in fails_with(check_raw_to_13, lambda m, l: raw_to_13(m, l)[None])
    assert "raw label 0 (unlabeled) needs an entry" in fails_with(
        check_raw_to_13, lambda m, l: np.concatenate([[0], l.ravel()])[m.ravel()])
    assert "40-class table" in fails_with(check_raw_to_13, lambda m, l: np.concatenate([[0], m.ravel()]))
    assert "one too small" in fails_with(check_raw_to_13, lambda m, l: raw_to_13(m, l).astype(int) - 1)
    no_shift = lambda m, l: np.concatenate([[0], l.ravel()[np.minimum(m.ravel(), 39)]])  # noqa: E731
    assert "labels13[k - 1]" in fails_with(check_raw_to_13, no_shift)
    assert "must stay 0" in fails_with(check_raw_to_13, lambda m, l: np.concatenate([[5], raw_to_13(m, l)[1:]]))

    def one_wrong(m, l):
        lut = raw_to_13(m, l).astype(int)
        lut[300] = lut[300] % 13 + 1
        return lut
    assert "raw label 300" in fails_with(check_raw_to_13, one_wrong)

    def todo(m, l):
        raise NotImplementedError()
    assert "NotImplementedError" in fails_with(check_raw_to_13, todo)


# ---- exercise 2: cross-entropy by hand -------------------------------------------------------

def cross_entropy_by_hand(logits, target, ignore_index=255):
    keep = target != ignore_index
    log_p = torch.log_softmax(logits, dim=1).permute(0, 2, 3, 1)[keep]  # (pixels, C)
    return -log_p.gather(1, target[keep][:, None]).mean()


def test_cross_entropy_accepts_right_answers(capsys):
    check_cross_entropy(cross_entropy_by_hand)
    check_cross_entropy(lambda x, t, ignore_index=255: F.cross_entropy(x, t, ignore_index=ignore_index))
    check_cross_entropy(lambda x, t, ignore_index=255: cross_entropy_by_hand(x, t).item())  # a float is fine
    assert capsys.readouterr().out.count("Correct:") == 3


def test_cross_entropy_names_the_usual_mistakes():
    def no_ignore(logits, target, ignore_index=255):
        return -torch.log_softmax(logits, 1).gather(1, target[:, None]).mean()

    def all_pixels(logits, target, ignore_index=255):
        keep = target != ignore_index
        picked = torch.log_softmax(logits, 1).gather(1, target.clamp(max=logits.shape[1] - 1)[:, None])[:, 0]
        return -(picked * keep).sum() / target.numel()

    def summed(logits, target, ignore_index=255):
        return cross_entropy_by_hand(logits, target) * (target != ignore_index).sum()

    def probabilities(logits, target, ignore_index=255):
        keep = target != ignore_index
        p = torch.softmax(logits, 1).permute(0, 2, 3, 1)[keep]
        return -p.gather(1, target[keep][:, None]).mean()

    def wrong_dim(logits, target, ignore_index=255):
        keep = target != ignore_index
        log_p = torch.log_softmax(logits, dim=-1).permute(0, 2, 3, 1)[keep]
        return -log_p.gather(1, target[keep][:, None]).mean()

    def per_pixel(logits, target, ignore_index=255):
        return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")

    assert "Keep only the labelled pixels" in fails_with(check_cross_entropy, no_ignore)
    assert "must not count in the mean" in fails_with(check_cross_entropy, all_pixels)
    assert "that is the sum" in fails_with(check_cross_entropy, summed)
    assert "sign is wrong" in fails_with(check_cross_entropy, lambda x, t, ignore_index=255: -cross_entropy_by_hand(x, t))
    assert "log_softmax, not softmax" in fails_with(check_cross_entropy, probabilities)
    assert "dimension 3" in fails_with(check_cross_entropy, wrong_dim)
    assert "one number" in fails_with(check_cross_entropy, per_pixel)


# ---- exercise 3: median-frequency weights ----------------------------------------------------

def median_frequency_weights(counts):
    freq = counts.double() / counts.sum()
    seen = counts > 0
    return torch.where(seen, freq[seen].median() / freq.clamp(min=1e-12), torch.zeros_like(freq))


def test_median_frequency_weights_accepts_right_answers(capsys):
    check_median_frequency_weights(median_frequency_weights)
    check_median_frequency_weights(lambda c: class_weights(c, "median"))
    def by_numpy(counts):  # counts instead of frequencies: the same ratio
        c = counts.numpy().astype(float)
        out = np.zeros_like(c)
        out[c > 0] = np.median(c[c > 0]) / c[c > 0]
        return out
    check_median_frequency_weights(by_numpy)
    assert capsys.readouterr().out.count("Correct:") == 3


def test_median_frequency_weights_names_the_usual_mistakes():
    def inverse(counts):
        freq = counts.double() / counts.sum()
        return torch.where(counts > 0, 1 / freq.clamp(min=1e-12), torch.zeros_like(freq))

    def upside_down(counts):
        freq = counts.double() / counts.sum()
        return torch.where(counts > 0, freq / freq[counts > 0].median(), torch.zeros_like(freq))

    def zero_in_median(counts):
        freq = counts.double() / counts.sum()
        return torch.where(counts > 0, freq.median() / freq.clamp(min=1e-12), torch.zeros_like(freq))

    def mean_not_median(counts):
        freq = counts.double() / counts.sum()
        return torch.where(counts > 0, freq[counts > 0].mean() / freq.clamp(min=1e-12), torch.zeros_like(freq))

    def unseen_inf(counts):
        freq = counts.double() / counts.sum()
        return freq[counts > 0].median() / freq

    assert "1 / frequency" in fails_with(check_median_frequency_weights, inverse)
    assert "upside down" in fails_with(check_median_frequency_weights, upside_down)
    assert "went into the median" in fails_with(check_median_frequency_weights, zero_in_median)
    assert "mean frequency" in fails_with(check_median_frequency_weights, mean_not_median)
    assert "weight 0" in fails_with(check_median_frequency_weights, unseen_inf)
    assert "one weight per class" in fails_with(check_median_frequency_weights, lambda c: median_frequency_weights(c)[:-1])
