"""The exercise checks of lesson 08 accept right answers and explain wrong ones in words."""
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils import context_margin, covering_tile_size, mirror_pad, predict_tiled, rle_encode
from course_utils.checks.lesson08 import _CASES, _case, check_overlap_tile, check_rle_encode
from course_utils.run_course import execute
from course_utils.student import make_student_copy
from conftest import fails_with

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "08_full_size_prediction.ipynb"
pytestmark = pytest.mark.usefixtures("one_thread")  # the overlap-tile check runs small U-Nets


# ---- exercise 2: Kaggle RLE --------------------------------------------------------------

def rle_encode_by_hand(mask):
    flat = np.concatenate([[0], mask.reshape(-1), [0]])
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts, ends))


def test_rle_encode_accepts_right_answers(capsys):
    check_rle_encode(rle_encode_by_hand)
    check_rle_encode(rle_encode)
    assert capsys.readouterr().out.count("Correct:") == 2


def _runs(mask, order="C"):
    flat = np.concatenate([[0], mask.reshape(-1, order=order), [0]])
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    return list(zip(edges[0::2], edges[1::2]))


def test_rle_encode_names_the_usual_mistakes():
    zero_based = lambda m: " ".join(f"{s} {e - s}" for s, e in _runs(m))  # noqa: E731
    by_column = lambda m: " ".join(f"{s + 1} {e - s}" for s, e in _runs(m, "F"))  # noqa: E731
    start_end = lambda m: " ".join(f"{s + 1} {e}" for s, e in _runs(m))  # noqa: E731
    numbers = lambda m: [int(x) for x in rle_encode(m).split()]  # noqa: E731
    trailing = lambda m: rle_encode(m) + " "  # noqa: E731

    def no_last_run(m):  # forgets to close a run open at the end
        flat = np.concatenate([[0], m.reshape(-1)])
        edges = np.flatnonzero(flat[1:] != flat[:-1])
        return " ".join(f"{s + 1} {e - s}" for s, e in zip(edges[0::2], edges[1::2]))

    assert "from 1" in fails_with(check_rle_encode, zero_based)
    assert "row by row" in fails_with(check_rle_encode, by_column)
    assert "length, not where it ends" in fails_with(check_rle_encode, start_end)
    assert "last pixel is missing" in fails_with(check_rle_encode, no_last_run)
    assert "expected a string" in fails_with(check_rle_encode, numbers)
    assert "single spaces" in fails_with(check_rle_encode, trailing)
    assert "empty string" in fails_with(check_rle_encode, lambda m: rle_encode(m) or "0 0")
    assert "np.int64" in fails_with(check_rle_encode, lambda m: " ".join(repr(np.int64(x)) for x in numbers(m)))


# ---- exercise 1: overlap-tile inference ----------------------------------------------------

def my_tiled(model, image, tile_size, *, pad=mirror_pad, top=None, by=None, keep="first", add=False,
             crop="start", eval_mode=True, no_grad=True, batch_dim=False, bottom_extra=0):
    """The notebook's solution; the keywords make the usual mistakes one at a time."""
    depth = model.config["depth"]
    margin = context_margin(depth)
    out = tile_size - 2 * margin
    step = out // 2**depth * 2**depth
    move = {None: step, "out": out, "tile": tile_size}[by]  # how far the loop moves a tile
    grid = step if by == "tile" else move  # stepping by the input size: padding planned for the right step
    h, w = image.shape[-2:]
    rows, cols = math.ceil(h / grid), math.ceil(w / grid)
    first = margin if top is None else top
    padded = pad(image, first, (rows - 1) * grid + tile_size - first - h + bottom_extra,
                 first, (cols - 1) * grid + tile_size - first - w + bottom_extra)
    result = torch.zeros(1, model.config["out_channels"], (rows - 1) * grid + out, (cols - 1) * grid + out)
    if eval_mode:
        model.eval()
    with torch.no_grad() if no_grad else torch.enable_grad():
        for i in range(0, rows * grid, move):
            for j in range(0, cols * grid, move):
                y = model(padded[None, :, i:i + tile_size, j:j + tile_size])
                n = step if keep in ("first", "last") else out
                y = y[..., :n, :n] if keep != "last" else y[..., -n:, -n:]
                if add:
                    result[..., i:i + n, j:j + n] += y
                else:
                    result[..., i:i + n, j:j + n] = y
    result = result if batch_dim else result[0]
    if crop == "end":
        return result[..., -h:, -w:]
    return result[..., :h, :w] if crop == "start" else result


def zero_pad(image, top, bottom, left, right):
    return F.pad(image, (left, right, top, bottom))


def torch_reflect(image, top, bottom, left, right):
    return F.pad(image[None], (left, right, top, bottom), mode="reflect")[0]


def batched(model, image, tile_size):
    """All tiles in one forward pass, outputs written whole: also right."""
    depth, (h, w) = model.config["depth"], image.shape[-2:]
    margin = context_margin(depth)
    out = tile_size - 2 * margin
    step = out // 2**depth * 2**depth
    rows, cols = math.ceil(h / step), math.ceil(w / step)
    padded = mirror_pad(image, margin, (rows - 1) * step + tile_size - margin - h,
                        margin, (cols - 1) * step + tile_size - margin - w)
    corners = [(i * step, j * step) for i in range(rows) for j in range(cols)]
    model.eval()
    with torch.inference_mode():
        ys = model(torch.stack([padded[:, i:i + tile_size, j:j + tile_size] for i, j in corners]))
    result = torch.zeros(1, (rows - 1) * step + out, (cols - 1) * step + out)
    for (i, j), y in zip(corners, ys):
        result[:, i:i + out, j:j + out] = y
    return result[:, :h, :w]


def notebook_solution():
    """my_tiled as the lesson's solution cell defines it."""
    source = next(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.source.startswith("def my_tiled("))
    names = {"math": math, "torch": torch, "context_margin": context_margin, "mirror_pad": mirror_pad}
    exec(source, names)
    return names["my_tiled"]


def test_overlap_tile_accepts_right_answers(capsys):
    check_overlap_tile(notebook_solution())
    check_overlap_tile(my_tiled)
    check_overlap_tile(lambda m, x, t: my_tiled(m, x, t, keep="whole"))  # overlaps overwritten by equal values
    check_overlap_tile(batched)
    check_overlap_tile(lambda m, x, t: predict_tiled(m, x, t))
    assert capsys.readouterr().out.count("Correct:") == 5


def test_overlap_tile_cases_need_what_the_exercise_teaches():
    for _, depth, (h, w), tile in _CASES:
        out = tile - 2 * context_margin(depth)
        step = out // 2**depth * 2**depth
        assert h % step and w % step, "sides must not be multiples of the step (else no crop is needed)"
    depths = {depth for _, depth, _, _ in _CASES}
    outs_and_steps = {(t - 2 * context_margin(d), (t - 2 * context_margin(d)) // 2**d * 2**d) for _, d, _, t in _CASES}
    assert depths == {2, 3} and any(o != s for o, s in outs_and_steps), "one case must move by less than its output"
    assert any(min(size) < context_margin(d) for _, d, size, _ in _CASES), "one image thinner than the margin"
    for seed, (_, depth, (h, w), tile) in enumerate(_CASES):  # for a valid net, tiles = one mirror-padded pass
        model, image = _case(depth, h, w, seed)
        m, (th, tw) = context_margin(depth), covering_tile_size(model, h, w)
        with torch.no_grad():
            one = model.eval()(mirror_pad(image, m, th - h - m, m, tw - w - m)[None])[0, :, :h, :w]
        assert torch.allclose(predict_tiled(model, image, tile), one, atol=1e-6), (h, w)


def test_overlap_tile_leaves_the_callers_random_state_alone():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    check_overlap_tile(my_tiled)
    assert torch.equal(torch.rand(4), expected)


MISTAKES = {  # id: (keywords of my_tiled that make the mistake, what the message must say)
    "zero-padding": (dict(pad=zero_pad), "context beyond the edge is zeros"),
    "torch-reflect": (dict(pad=torch_reflect), "F.pad's reflect mode cannot pad by more than the side minus 1"),
    "no-top-left-margin": (dict(top=0), "moved by 20 rows and 20 columns"),
    "margin-half-tile": (dict(top=26), "moved by about -6 rows and -6 columns"),
    "stepped-by-input": (dict(by="tile", keep="whole"), "steps of 52 leave gaps"),
    "stepped-by-output": (dict(by="out", keep="whole"), "not a multiple of 2**depth = 8"),
    "overlaps-added": (dict(keep="whole", add=True), "you added them (+=)"),
    "keeps-last-rows": (dict(keep="last"), "moved by 4 rows and 4 columns"),
    "cropped-at-top-left": (dict(crop="end"), "crop the stitched result at the bottom and right"),
    "not-cropped": (dict(crop=None), "crop the extra rows at the bottom and columns at the right"),
    "last-tile-cut-short": (dict(bottom_extra=-4), "a tile cut short by the end of the padded image"),
    "train-mode": (dict(eval_mode=False), "Call model.eval()"),
    "gradients": (dict(no_grad=False), "torch.no_grad()"),
    "batch-dim-left": (dict(batch_dim=True), "the batch dimension of the model's output is left over"),
}


@pytest.mark.parametrize("wrong, says", MISTAKES.values(), ids=MISTAKES.keys())
def test_overlap_tile_names_the_usual_mistakes(wrong, says):
    said = fails_with(check_overlap_tile, lambda m, x, t: my_tiled(m, x, t, **wrong))
    assert says in said, said


def test_overlap_tile_says_what_else_is_wrong():
    def todo(model, image, tile_size):
        raise NotImplementedError()

    def one_pass(model, image, tile_size):
        (h, w), m = image.shape[-2:], context_margin(model.config["depth"])
        th, tw = covering_tile_size(model, h, w)
        with torch.no_grad():
            return model.eval()(mirror_pad(image, m, th - h - m, m, tw - w - m)[None])[0, :, :h, :w]

    def last_tile_at_edge(model, image, tile_size):  # the last row of tiles moved back to end at the image's edge
        right = my_tiled(model, image, tile_size)
        depth, h = model.config["depth"], image.shape[-2]
        margin = context_margin(depth)
        out = tile_size - 2 * margin
        padded = mirror_pad(image, margin, margin + out, margin, margin + out)
        with torch.no_grad():
            right[:, h - out:, :out] = model.eval()(padded[None, :, h - out:h - out + tile_size, :tile_size])[0]
        return right

    assert "still raises NotImplementedError" in fails_with(check_overlap_tile, todo)
    assert "one pass over the whole image, not tiles" in fails_with(check_overlap_tile, one_pass)
    assert "never ran the model" in fails_with(check_overlap_tile, lambda m, x, t: torch.zeros(1, *x.shape[-2:]))
    assert "expected a torch.Tensor" in fails_with(check_overlap_tile, lambda m, x, t: my_tiled(m, x, t).numpy())
    assert "should be a function" in fails_with(check_overlap_tile, my_tiled(*_case(2, 20, 20, 0), 52))
    assert "not moved back to end at the image's edge" in fails_with(check_overlap_tile, last_tile_at_edge)


def test_student_copy_of_lesson_08_stops_at_the_overlap_tile_exercise():
    """The student copy keeps the given geometry and stubs the rest; run with the lesson's imports, the
    exercise's check stops with NotImplementedError, the first place Run All stops (test_student.py runs
    the whole copy)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    student = make_student_copy(nb, NOTEBOOK.name)
    exercise = next(i for i, c in enumerate(nb.cells) if c.source.startswith("def my_tiled("))
    check = next(i for i, c in enumerate(nb.cells) if c.source.strip() == "check_overlap_tile(my_tiled)")
    imports = next(i for i, c in enumerate(nb.cells) if "from course_utils.checks import" in c.source)
    assert imports < exercise < check <= exercise + 2
    stub = student.cells[exercise].source
    assert "step = out // 2**depth * 2**depth" in stub and stub.endswith("raise NotImplementedError()")
    assert "mirror_pad" not in stub and "no_grad" not in stub
    run = execute(nbformat.v4.new_notebook(cells=[student.cells[k] for k in (imports, exercise, check)]),
                  NOTEBOOK.parent, profile="quick", timeout=120)
    assert run.error_cell == 2 and run.error_name == "CheckFailed", (run.error_cell, run.error_name, run.error_message)
    assert "my_tiled still raises NotImplementedError" in run.error_message
