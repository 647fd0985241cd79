"""The ISBI 2012 challenge's metrics (course_utils.em_metrics, lesson 13) on the real label slices
and on hand-made cases whose scores are worked out in the test."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from conftest import _real_samples
from course_utils.em_metrics import (EMScores, baseline_scores, em_scores, em_scores_per_slice, mean_scores,
                                     pixel_error, rand_error, rand_scores, split_merge, threshold_sweep_em)

# two cells of 8 pixels side by side, a membrane column between them
TWO_CELLS = np.array([[255, 255, 0, 255, 255]] * 4, dtype=np.uint8)


def _read(path):
    with Image.open(path) as im:
        pages = []
        for k in range(im.n_frames):
            im.seek(k)
            pages.append(np.array(im))
    return np.stack(pages)


@pytest.fixture(scope="module")
def stacks():
    """(train-volume, train-labels) of the real ISBI 2012 stacks, (30, 512, 512) uint8 each."""
    root = _real_samples("isbi2012", "train-labels.tif")
    return _read(root / "train-volume.tif"), _read(root / "train-labels.tif")


@pytest.fixture(scope="module")
def cells(stacks):
    return stacks[1] == 255  # (30, 512, 512) bool


def _rand_by_hand(pred, true):
    """1 - F, precision, recall from a contingency table, the challenge's definition written out:
    cells are 4-connected components; pixels on true membrane are left out; a predicted membrane
    pixel is alone in its segment; pairs are ordered pairs of distinct pixels."""
    t, p = ndimage.label(true)[0], ndimage.label(pred)[0]
    on = t > 0
    table = np.zeros((t.max() + 1, p.max() + 1))
    np.add.at(table, (t[on], p[on]), 1)

    def pairs(counts):
        return float((counts * (counts - 1)).sum())

    both, in_true, in_pred = pairs(table[1:, 1:]), pairs(table[1:].sum(1)), pairs(table[1:, 1:].sum(0))
    precision, recall = both / in_pred, both / in_true
    return 1 - 2 * precision * recall / (precision + recall), precision, recall


# ---------------------------------------------------------------------------- definitions on hand cases


def test_merging_two_cells_by_hand():
    s = rand_scores(np.full((4, 5), 255), TWO_CELLS)  # one predicted cell over both
    # 112 pairs together in the truth (2 x 8 x 7), 240 in the prediction (16 x 15), 112 in both
    assert s["precision"] == pytest.approx(112 / 240) and s["recall"] == 1.0
    assert s["rand_error"] == pytest.approx(4 / 11)
    assert (s["n_true_cells"], s["n_pred_cells"]) == (2, 1)
    assert pixel_error(np.full((4, 5), 255), TWO_CELLS) == pytest.approx(4 / 20)


def test_thick_predicted_membrane_is_single_pixels_not_one_merging_segment():
    pred = TWO_CELLS.copy()
    pred[:, [1, 3]] = 0  # membrane three pixels wide: each cell keeps one column of 4
    s = rand_scores(pred, TWO_CELLS)
    # 24 pairs together in the prediction, all together in the truth too: nothing merged
    assert s["precision"] == 1.0 and s["recall"] == pytest.approx(24 / 112)
    assert s["rand_error"] == pytest.approx(11 / 17)


def test_split_lowers_recall_not_precision():
    """Guards the swap of skimage's precision and recall (scikit-image issue #6485)."""
    truth = np.full((4, 4), 255)
    pred = truth.copy()
    pred[:, 2] = 0
    s = rand_scores(pred, truth)
    assert s["precision"] == 1.0 and s["recall"] < 0.5


def test_cells_touching_at_a_corner_are_two_cells():
    s = rand_scores(np.full((2, 2), 255), np.array([[255, 0], [0, 255]]))
    assert s["n_true_cells"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rand_error_matches_the_contingency_table_definition(seed):
    rng = np.random.default_rng(seed)
    true = rng.random((24, 24)) < 0.6
    pred = true ^ (rng.random((24, 24)) < 0.15)
    error, precision, recall = _rand_by_hand(pred, true)
    s = rand_scores(pred, true)
    assert 0.05 < error < 0.95  # a real test: neither perfect nor hopeless
    assert s["rand_error"] == pytest.approx(error, abs=1e-12)
    assert (s["precision"], s["recall"]) == pytest.approx((precision, recall), abs=1e-12)


def test_degenerate_masks_follow_the_challenge():
    truth = np.full((4, 4), 255)
    assert rand_error(np.zeros((4, 4), np.uint8), truth) == 1.0  # every cell lost
    assert rand_error(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)) == 0.0  # nothing to score


def test_inputs_are_checked_and_torch_works():
    assert pixel_error(torch.tensor([[1, 0]]), torch.tensor([[True, True]])) == 0.5
    with pytest.raises(ValueError, match="threshold"):
        rand_error(np.full((4, 5), 0.7), TWO_CELLS)
    with pytest.raises(ValueError, match="same shape"):
        pixel_error(np.zeros((4, 4)), TWO_CELLS)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        em_scores(np.full((4, 5), 2.0), TWO_CELLS)


# ---------------------------------------------------------------------------- real label slices


def test_the_truth_scores_zero(cells):
    for m in cells[[0, 25, 29]]:
        assert em_scores(m, m) == {"pixel_error": 0.0, "rand_error": 0.0}
        assert split_merge(m, m) == {"merged": 0, "split": 0, "merged_cells": [], "split_cells": []}


def test_one_pixel_gap_in_a_membrane_barely_moves_pixel_error_but_raises_rand_error(cells):
    truth = cells[25]
    labels = ndimage.label(truth)[0]
    # row 404, columns 283-285: a membrane 3 px wide between two cells of 9,044 and 9,733 pixels
    assert not truth[404, 283:286].any() and labels[404, 282] != labels[404, 286] > 0 < labels[404, 282]
    opened = truth.copy()
    opened[404, 283:286] = True
    s = em_scores(opened, truth)
    assert s["pixel_error"] == pytest.approx(3 / 512**2)  # 1.1e-5
    assert s["rand_error"] == pytest.approx(0.0514, abs=5e-4)  # above U-Net's 0.0382 in Table 1
    assert rand_scores(opened, truth)["recall"] == 1.0
    sm = split_merge(opened, truth)
    assert (sm["merged"], sm["split"]) == (1, 0)


def test_a_new_membrane_through_a_cell_splits_it(cells):
    truth = cells[25]
    labels = ndimage.label(truth)[0]
    biggest = np.bincount(labels.ravel())[1:].argmax() + 1
    row = int(np.median(np.nonzero(labels == biggest)[0]))
    cut = truth.copy()
    cut[row, labels[row] == biggest] = False  # a line of membrane across the cell
    s = rand_scores(cut, truth)
    assert pixel_error(cut, truth) < 1e-3
    assert s["rand_error"] == pytest.approx(0.0591, abs=5e-4)
    assert s["precision"] == 1.0 and s["n_pred_cells"] == s["n_true_cells"] + 1
    sm = split_merge(cut, truth)
    assert (sm["merged"], sm["split"]) == (0, 1) and sm["split_cells"] == [biggest]


def test_dilated_membranes_per_slice_and_pooled(cells):
    held_out = cells[25:]
    dilated = np.stack([~ndimage.binary_dilation(~m) for m in held_out])
    records = em_scores_per_slice(dilated, held_out)
    assert [r["slice"] for r in records] == list(range(5))
    mean = mean_scores(records)
    assert mean["n_slices"] == 5
    assert mean["pixel_error"] == pytest.approx(0.0558, abs=5e-4)
    assert mean["rand_error"] == pytest.approx(0.0394, abs=5e-4)
    assert 0.03 < rand_error(dilated, held_out) < 0.05  # the stack pooled the organisers' way


def test_baselines_on_the_held_out_slices(stacks):
    volume, labels = stacks
    b = baseline_scores(volume[:25], labels[:25], volume[25:], labels[25:])
    assert b["all cell"]["pixel_error"] == pytest.approx((labels[25:] == 0).mean())  # 0.199
    assert b["all cell"]["rand_error"] > 0.85 and b["all cell"]["threshold"] is None
    grey = b["grey threshold"]
    assert 0 <= grey["threshold"] <= 255 and grey["pixel_error"] < b["all cell"]["pixel_error"]
    assert grey["rand_error"] > 0.5  # noise joins the cells: no threshold of grey values separates them
    with pytest.raises(ValueError, match="uint8"):
        baseline_scores(volume[:25] / 255, labels[:25], volume[25:], labels[25:])


def test_threshold_sweep_shows_a_threshold_that_merges_everything(cells):
    truth = cells[25:27]
    probs = np.where(truth, 0.9, 0.3)  # faint membranes
    sweep = threshold_sweep_em(probs, truth, [0.2, 0.5])
    assert [r["threshold"] for r in sweep] == [0.2, 0.5]
    assert sweep[1]["rand_error"] == 0.0 and sweep[0]["rand_error"] > 0.85


# ---------------------------------------------------------------------------- held-out accumulator


def _batches(cells):
    """Two batches of (logits, target) from real slices: 128 x 128 crops, noisy logits."""
    rng = np.random.default_rng(0)
    masks = torch.from_numpy(cells[25:29, 200:328, 200:328]).float()[:, None]  # (4, 1, 128, 128)
    logits = (masks * 4 - 2) + torch.from_numpy(rng.normal(0, 1.5, masks.shape)).float()
    return [(logits[:2], masks[:2], 0.4), (logits[2:], masks[2:], 0.6)]


def test_em_scores_accumulator_matches_per_slice_scores(cells):
    scores = EMScores()
    for logits, masks, loss in _batches(cells):
        scores.update(logits, masks, loss)
    out = scores.compute()
    logits, masks = torch.cat([b[0] for b in _batches(cells)]), torch.cat([b[1] for b in _batches(cells)])
    mean = mean_scores(em_scores_per_slice(torch.sigmoid(logits), masks))
    assert out["val_loss"] == pytest.approx(0.5)
    assert out["val_pixel_error"] == pytest.approx(mean["pixel_error"])
    assert out["val_rand_error"] == pytest.approx(mean["rand_error"]) and out["val_rand_error"] > 0.01
    assert 0.5 < out["val_dice"] < 1


def test_em_scores_split_over_two_processes_add_up(cells):
    whole, parts = EMScores(), [EMScores(), EMScores()]
    for (logits, masks, loss), part in zip(_batches(cells), parts):
        whole.update(logits, masks, loss)
        part.update(logits, masks, loss)
    added = EMScores()
    one, two = parts[0].sums(), parts[1].sums()
    added.load_sums({k: one[k] + two[k] for k in one})  # what all_reduce_sums does
    assert added.compute() == pytest.approx(whole.compute())
    again = EMScores()
    again.load_sums(whole.sums())
    assert again.compute() == whole.compute()
    assert whole.sums()["n"].dtype == torch.int64 and whole.sums()["scores"].dtype == torch.float64


def test_em_scores_take_the_weight_map_target_and_check_shapes(cells):
    plain, weighted = EMScores(), EMScores()
    for logits, masks, loss in _batches(cells):
        plain.update(logits, masks, loss)
        weighted.update(logits, {"mask": masks, "weight": torch.ones_like(masks)}, loss)
    assert weighted.compute() == plain.compute()
    logits, masks, _ = _batches(cells)[0]
    with pytest.raises(ValueError, match="center_crop"):
        EMScores().update(logits[..., 4:-4, 4:-4], masks, 0.5)


def test_em_scores_also_score_each_error_at_its_best_threshold_as_the_leaderboard(cells):
    """Faint membranes (probability 0.55 of cell): 0.5 merges every cell, 0.6 keeps them apart."""
    truth = torch.from_numpy(cells[25:27]).float()[:, None]  # (2, 1, 512, 512)
    probs = torch.where(truth > 0, 0.9, 0.55)
    scores = EMScores()
    scores.update(torch.logit(probs), truth, 0.3)
    out = scores.compute()
    assert out["val_rand_error"] > 0.85 and out["val_pixel_error"] > 0.15  # at 0.5: all cell
    assert out["val_rand_error_best"] == 0.0 and out["val_pixel_error_best"] == 0.0
    assert out["val_rand_threshold"] == 0.5 + 0.1  # the best threshold nearest 0.5
    parts = EMScores(), EMScores()
    for k, part in enumerate(parts):
        part.update(torch.logit(probs[k:k + 1]), truth[k:k + 1], 0.3)
    added = EMScores()
    one, two = parts[0].sums(), parts[1].sums()
    added.load_sums({k: one[k] + two[k] for k in one})
    assert added.compute() == pytest.approx(out)
