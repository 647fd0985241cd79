"""The exercise checks of lesson 10 accept right answers and explain wrong ones in words."""
import copy
from pathlib import Path

import nbformat
import numpy as np
import torch
import torch.nn.functional as F

from course_utils.checks.lesson10 import (_cm_cases, _label_maps, check_confusion_matrix, check_cross_entropy,
                                          check_mean_iou, check_median_frequency_weights, check_raw_to_13)
from course_utils.losses import class_weights
from course_utils.metrics import confusion_matrix, confusion_scores, iou_per_class, mean_iou
from course_utils.run_course import execute
from course_utils.student import exercise_cells, make_student_copy
from conftest import fails_with

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "10_nyu_segmentation.ipynb"


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
    assert "is the `return` missing?" in fails_with(check_cross_entropy, lambda x, t, ignore_index=255: None)
    assert "returned a str; expected one number" in fails_with(check_cross_entropy, lambda x, t, ignore_index=255: "2.1")
    assert "must not count in the mean" in fails_with(check_cross_entropy, all_pixels)
    assert "that is the sum" in fails_with(check_cross_entropy, summed)
    assert "sign is wrong" in fails_with(check_cross_entropy, lambda x, t, ignore_index=255: -cross_entropy_by_hand(x, t))
    assert "log_softmax, not softmax" in fails_with(check_cross_entropy, probabilities)
    assert "dimension 3" in fails_with(check_cross_entropy, wrong_dim)
    assert "one number" in fails_with(check_cross_entropy, per_pixel)


# ---- exercise 3: the confusion matrix ------------------------------------------------------

def my_confusion_matrix(pred, target, num_classes, ignore_index=255):
    keep = target != ignore_index
    counts = torch.bincount(target[keep] * num_classes + pred[keep], minlength=num_classes**2)
    return counts.view(num_classes, num_classes)


def loop_confusion_matrix(pred, target, num_classes, ignore_index):  # numpy, one pixel at a time
    cm = np.zeros((num_classes, num_classes), np.int64)
    for t, p in zip(target.ravel().tolist(), pred.ravel().tolist()):
        if t != ignore_index:
            cm[t, p] += 1
    return cm


def test_the_label_maps_tell_the_mistakes_apart():
    cases = _label_maps()
    for _, pred, target, _ in cases:
        cm = confusion_matrix(pred, target, 5, 255)
        assert not torch.equal(cm, cm.T)  # a transposed answer differs
    assert (cases[1][1] != 4).all() and (cases[1][2] != 4).all()  # class 4 absent
    ignored = cases[2][2] == 255
    assert 0 < int(ignored.sum()) < ignored.numel()


def test_confusion_matrix_accepts_right_answers(capsys):
    check_confusion_matrix(my_confusion_matrix)
    check_confusion_matrix(loop_confusion_matrix)  # numpy int64 is fine
    check_confusion_matrix(confusion_matrix)
    assert capsys.readouterr().out.count("Correct:") == 3


def test_confusion_matrix_names_the_usual_mistakes():
    def transposed(p, t, c, i):
        return my_confusion_matrix(p, t, c, i).T

    def ignored_counted(p, t, c, i):  # the 255s counted as class 0
        return my_confusion_matrix(p, torch.where(t == i, 0, t), c, i)

    def kept_on_pred(p, t, c, i):  # the mask taken from the prediction: the 255s stay
        keep = p != i
        return torch.bincount(t[keep] * c + p[keep], minlength=c * c).view(c, c)

    def as_float(p, t, c, i):  # one-hot products: float counts
        keep = t != i
        return F.one_hot(t[keep], c).T.float() @ F.one_hot(p[keep], c).float()

    def size_from_data(p, t, c, i):
        return my_confusion_matrix(p, t, int(max(p.max(), t[t != i].max())) + 1, i)

    def no_minlength(p, t, c, i):
        keep = t != i
        return torch.bincount(t[keep] * c + p[keep]).view(c, c)

    def own_row(p, t, c, i):  # 255 made an extra class
        return my_confusion_matrix(p, torch.where(t == i, c, t), c + 1, i)

    def one_off(p, t, c, i):
        cm = my_confusion_matrix(p, t, c, i).clone()
        cm[2, 3] += 1
        return cm

    def todo(p, t, c, i):
        raise NotImplementedError()

    assert "rows and columns are swapped" in fails_with(check_confusion_matrix, transposed)
    for counts_ignored in (ignored_counted, kept_on_pred):
        assert "ignore_index" in (msg := fails_with(check_confusion_matrix, counts_ignored))
        assert "ignored (255)" in msg and "drop" in msg.lower()
    assert "expected the 63 labelled ones" in fails_with(check_confusion_matrix, ignored_counted)
    assert "keep = target != ignore_index" in fails_with(check_confusion_matrix, kept_on_pred)
    for floats in (as_float, lambda p, t, c, i: my_confusion_matrix(p, t, c, i).double()):
        msg = fails_with(check_confusion_matrix, floats)
        assert "expected integer counts, int64" in msg and "must stay exact" in msg
    int32 = lambda p, t, c, i: my_confusion_matrix(p, t, c, i).int()  # noqa: E731
    assert "expected int64" in fails_with(check_confusion_matrix, int32)
    assert ".view(num_classes, num_classes)" in fails_with(
        check_confusion_matrix, lambda p, t, c, i: my_confusion_matrix(p, t, c, i).flatten())
    assert "take the size from num_classes" in fails_with(check_confusion_matrix, size_from_data)
    assert "minlength=num_classes**2" in fails_with(check_confusion_matrix, no_minlength)
    assert "do not give it a row" in fails_with(check_confusion_matrix, own_row)
    assert "cell [2, 3] (true class 2, predicted 3)" in fails_with(check_confusion_matrix, one_off)
    assert "still raises NotImplementedError" in fails_with(check_confusion_matrix, todo)
    assert "is the `return` missing?" in fails_with(check_confusion_matrix, lambda p, t, c, i: None)


# ---- exercise 4: mIoU from the matrix -------------------------------------------------------

def parts(cm):
    cm = cm.double()
    tp, rows, cols = cm.diagonal(), cm.sum(1), cm.sum(0)
    return tp, rows, cols, rows + cols - tp


def my_mean_iou(cm):
    tp, _, _, union = parts(cm)
    present = union > 0
    return (tp[present] / union[present]).mean().item()


def test_the_matrices_tell_the_mistakes_apart():
    (_, pa, ta, ca), (_, pb, tb, cb), (_, pc, tc, cc) = _cm_cases()
    assert (iou_per_class(confusion_matrix(pa, ta, ca, 255)) > 0).all()
    b, c = confusion_matrix(pb, tb, cb, 255), confusion_matrix(pc, tc, cc, 255)
    assert b[4].sum() == 0 < b[:, 4].sum() and b[5].sum() == b[:, 5].sum() == 0 and (tb == 255).any()
    assert c[:, 3].sum() == 0 < c[3].sum() and c[5].sum() == c[:, 5].sum() == 0
    assert mean_iou(pb, tb, cb, 255) == confusion_scores(b)["mean_iou"]


def test_mean_iou_accepts_right_answers(capsys):
    check_mean_iou(my_mean_iou)
    check_mean_iou(lambda cm: torch.nanmean(parts(cm)[0] / parts(cm)[3]))  # a 0-d tensor is fine
    check_mean_iou(lambda cm: confusion_scores(cm)["mean_iou"])
    check_mean_iou(lambda cm: my_mean_iou(cm.float()))  # float32 arithmetic is close enough
    assert capsys.readouterr().out.count("Correct:") == 4


def test_mean_iou_names_the_usual_mistakes():
    def over(f):  # f(tp, rows, cols, union) of the float64 matrix
        return lambda cm: f(*parts(cm))

    mistakes = {
        "returned nan": over(lambda tp, r, c, u: (tp / u).mean()),
        "was counted as IoU 0": over(lambda tp, r, c, u: (tp / u.clamp(min=1)).mean()),
        "was counted as IoU 1": over(lambda tp, r, c, u: torch.where(u > 0, tp / u.clamp(min=1), 1.0).mean()),
        "that is pixel accuracy": over(lambda tp, r, c, u: tp.sum() / r.sum()),
        "pools all classes' pixels": over(lambda tp, r, c, u: tp.sum() / u.sum()),
        "frequency-weighted IoU": over(lambda tp, r, c, u: torch.nansum(r / r.sum() * tp / u)),
        "class 4 is predicted but never true and was left out": over(lambda tp, r, c, u: (tp / u)[r > 0].mean()),
        "class 3 is true but never predicted and was left out": over(lambda tp, r, c, u: (tp / u)[c > 0].mean()),
        "recall": over(lambda tp, r, c, u: torch.nanmean(tp / r)),
        "precision": over(lambda tp, r, c, u: torch.nanmean(tp / c)),
        "that is Dice": over(lambda tp, r, c, u: torch.nanmean(2 * tp / (r + c))),
        "TP is counted twice": over(lambda tp, r, c, u: torch.nanmean(tp / (r + c))),
        "expected one number": over(lambda tp, r, c, u: tp / u),
    }
    for said, wrong in mistakes.items():
        assert said in fails_with(check_mean_iou, wrong), said
    assert "class 5 is in neither truth nor prediction" in fails_with(check_mean_iou, mistakes["was counted as IoU 0"])
    assert "per class [" in fails_with(check_mean_iou, lambda cm: my_mean_iou(cm) + 0.01)

    def todo(cm):
        raise NotImplementedError()
    assert "still raises NotImplementedError" in fails_with(check_mean_iou, todo)
    assert "is the `return` missing?" in fails_with(check_mean_iou, lambda cm: None)
    assert "returned a str; expected one number" in fails_with(check_mean_iou, lambda cm: "0.5")


def test_student_copy_stops_at_the_confusion_matrix_exercise():
    """Earlier exercises answered, the confusion matrix not: Run All stops at its check with NotImplementedError."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    exercise = next(i for i in exercise_cells(nb) if "def my_confusion_matrix" in nb.cells[i].source)
    check = next(i for i in range(exercise, len(nb.cells)) if "check_confusion_matrix(" in nb.cells[i].source)
    student = make_student_copy(nb, NOTEBOOK.name)
    student.cells[:exercise] = copy.deepcopy(nb.cells[:exercise])
    assert "raise NotImplementedError()" in student.cells[exercise].source
    assert "bincount" not in student.cells[exercise].source
    run = execute(student, NOTEBOOK.parent, profile="quick", timeout=300, stop_after=check)
    said = f"cell {run.error_cell} raised {run.error_name}: {(run.error_message or '')[:300]}"
    assert run.error_cell == check, said
    assert run.error_name == "CheckFailed", said
    assert "my_confusion_matrix still raises NotImplementedError" in run.error_message, said


# ---- exercise 5: median-frequency weights ----------------------------------------------------

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
