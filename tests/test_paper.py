"""course_utils.paper: generated touching cells, the paper's weight map and loss, its init."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn
from torch.nn import functional as F

from course_utils import UNet
from course_utils.paper import (border_term, cell_distances, class_frequency_weights, he_std, paper_init_,
                                separated_foreground, separated_pairs, separation_border, touching_cells,
                                touching_pairs, two_nearest, weight_map, weighted_cross_entropy)


def two_touching_cells() -> np.ndarray:
    """(12, 16): cell 1 in columns 2-7, cell 2 in columns 8-12 (they share an edge), cell 3 alone."""
    lab = np.zeros((12, 16), np.int32)
    lab[2:8, 2:8], lab[2:8, 8:13] = 1, 2
    lab[10:12, 0:3] = 3
    return lab


# ---------------------------------------------------------------------------- touching_cells

def test_touching_cells_gives_images_and_labels_of_cells_that_touch():
    images, instances = touching_cells(3, (64, 80), seed=5)
    assert images.shape == instances.shape == (3, 64, 80)
    assert images.dtype == np.float32 and instances.dtype == np.int32
    assert 0 <= images.min() and images.max() <= 1
    for lab in instances:
        k = lab.max()
        assert set(np.unique(lab)) == set(range(k + 1)) and k >= 10  # labels 1..K, no gaps
        assert all(ndimage.label(lab == i)[1] == 1 for i in range(1, k + 1))  # each cell is one piece
        touching = {c for pair in touching_pairs(lab) for c in pair}
        assert len(touching) > k / 2  # most cells touch a neighbour
        assert 0.3 < (lab > 0).mean() < 0.8  # cells and background both present


def test_touching_cells_is_repeatable_and_depends_on_the_seed():
    a, b, c = touching_cells(2, 48, seed=1), touching_cells(2, 48, seed=1), touching_cells(2, 48, seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_cells_are_brighter_than_background_and_their_contacts_darker():
    images, instances = touching_cells(2, 96, seed=0)
    cells, contact = separated_foreground(instances), separation_border(instances)
    assert images[cells].mean() > images[instances == 0].mean() + 0.2
    assert images[contact].mean() < images[cells].mean() - 0.05  # a faint line where cells meet


# ---------------------------------------------------------------------------- the target with gaps

def test_separation_border_is_a_two_pixel_line_between_touching_cells_only():
    lab = two_touching_cells()
    border = separation_border(lab)
    expected = np.zeros_like(border)
    expected[2:8, 7:9] = True  # column 7 of cell 1 and column 8 of cell 2 (3 x 3 neighbourhood)
    assert np.array_equal(border, expected)
    assert not border[lab == 3].any() and not border[lab == 0].any()


def test_separated_foreground_splits_touching_cells_and_works_on_batches():
    lab = two_touching_cells()
    target = separated_foreground(lab)
    assert ndimage.label(lab > 0)[1] == 2 and ndimage.label(target)[1] == 3
    batch = np.stack([lab, np.zeros_like(lab), lab[::-1].copy()])
    assert np.array_equal(separated_foreground(batch)[0], target)
    assert np.array_equal(separated_foreground(batch)[2], target[::-1])
    assert not separated_foreground(batch)[1].any()


# ---------------------------------------------------------------------------- the weight map

def brute_force_weight_map(lab, w0, sigma):
    """The formula pixel by pixel with distances measured by looping over every cell pixel."""
    target = separated_foreground(lab)
    fg = target.mean()
    top = max(fg, 1 - fg)
    wc = np.where(target, top / fg, top / (1 - fg))
    cells = [np.argwhere(target & (lab == k)) for k in range(1, lab.max() + 1)]
    cells = [c for c in cells if len(c)]
    out = wc.astype(np.float64)
    for y, x in np.argwhere(~target):
        d = sorted(np.sqrt(((c - (y, x)) ** 2).sum(1)).min() for c in cells)
        out[y, x] += w0 * math.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2))
    return out


def test_weight_map_matches_the_formula_computed_pixel_by_pixel():
    _, instances = touching_cells(1, 40, seed=3)
    lab = instances[0]
    assert np.allclose(weight_map(lab, 10.0, 5.0), brute_force_weight_map(lab, 10.0, 5.0), atol=1e-4)
    assert np.allclose(weight_map(lab, 4.0, 2.0), brute_force_weight_map(lab, 4.0, 2.0), atol=1e-4)


def test_weight_map_is_high_in_gaps_and_w_c_far_from_cells():
    lab = np.zeros((40, 60), np.int32)
    lab[5:20, 5:20], lab[5:20, 20:35] = 1, 2  # touching
    lab[30:36, 50:56] = 3  # alone, far away
    w = weight_map(lab)
    wc = class_frequency_weights(separated_foreground(lab))
    gap = separation_border(lab)
    assert w.dtype == np.float32 and w.shape == lab.shape
    assert w[gap].max() > wc[gap].max() + 8  # d1 + d2 = 3 in the middle of the 2-px gap: 10 exp(-9/50)
    assert np.allclose(w[separated_foreground(lab)], wc[separated_foreground(lab)])  # no border term on cells
    assert abs(w[39, 0] - wc[39, 0]) < 1e-3  # far from every cell: w_c only
    assert np.allclose(weight_map(lab, class_balance=False)[39, 0], 1.0, atol=1e-3)


def test_weight_map_of_fewer_than_two_cells_has_no_border_term_and_batches_work():
    lone = np.zeros((10, 10), np.int32)
    lone[3:6, 3:6] = 1
    assert np.allclose(weight_map(lone), class_frequency_weights(lone > 0))
    assert np.allclose(weight_map(np.zeros((5, 7), np.int32)), 1.0)
    batch = np.stack([lone, np.zeros_like(lone)])
    assert weight_map(batch).shape == (2, 10, 10)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        weight_map(np.zeros(5, np.int32))


def test_distances_and_the_two_nearest():
    lab = two_touching_cells()
    dist = cell_distances(lab)
    assert dist.shape == (3, 12, 16)
    assert dist[0, 4, 8] == 2 and dist[1, 4, 7] == 2  # the gap: column 7 is cell 1's border, 8 cell 2's
    d1, d2 = two_nearest(dist)
    assert np.array_equal(d1, dist.min(0)) and np.all(d2 >= d1)
    d1, d2 = two_nearest(dist[:1])
    assert np.isinf(d2).all() and np.all(border_term(d1, d2) == 0)


def test_border_term_values():
    assert border_term(np.array([1.0]), np.array([1.0]))[0] == pytest.approx(10 * math.exp(-4 / 50))
    assert border_term(np.array([0.0]), np.array([0.0]), w0=3.0)[0] == pytest.approx(3.0)
    assert border_term(np.array([20.0]), np.array([20.0]))[0] < 1e-6


def test_class_frequency_weights():
    mask = np.zeros((4, 5), bool)
    mask[:1, :] = True  # 5 of 20 foreground
    w = class_frequency_weights(mask)
    assert np.allclose(w[mask], 3.0) and np.allclose(w[~mask], 1.0)
    assert np.allclose(class_frequency_weights(~mask)[~mask], 1.0)  # the commoner class weighs 1
    assert np.allclose(class_frequency_weights(np.ones((3, 3), bool)), 1.0)


# ---------------------------------------------------------------------------- the loss

def test_weighted_cross_entropy_is_the_weighted_mean_of_the_pixel_losses():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 2, 5, 6, requires_grad=True), torch.randint(0, 2, (2, 5, 6))
    weights = torch.rand(2, 5, 6) * 10
    assert torch.allclose(weighted_cross_entropy(logits, target), F.cross_entropy(logits, target))
    per_pixel = F.cross_entropy(logits, target, reduction="none")
    assert torch.allclose(weighted_cross_entropy(logits, target, weights), (weights * per_pixel).mean())
    assert torch.allclose(weighted_cross_entropy(logits, target[:, None], weights),
                          weighted_cross_entropy(logits, target, weights))
    one = torch.zeros(2, 5, 6)
    one[0, 1, 2] = 1.0  # only one pixel counts: only its logits get a gradient
    weighted_cross_entropy(logits, target, one).backward()
    assert logits.grad[0, :, 1, 2].abs().sum() > 0 and logits.grad.abs().sum() == logits.grad[0, :, 1, 2].abs().sum()


def test_weighted_cross_entropy_with_one_channel_is_binary_cross_entropy():
    logits, target, weights = torch.randn(3, 1, 4, 4), torch.randint(0, 2, (3, 4, 4)), torch.rand(3, 4, 4)
    want = F.binary_cross_entropy_with_logits(logits[:, 0], target.float(), weight=weights)
    assert torch.allclose(weighted_cross_entropy(logits, target, weights), want)
    with pytest.raises(ValueError, match="target's shape"):
        weighted_cross_entropy(logits, target, weights[:, :2])


def test_a_few_weighted_steps_learn_the_gaps(one_thread):
    """Real training steps: the weighted loss on touching cells falls."""
    torch.manual_seed(0)
    images, instances = touching_cells(4, 32, seed=0)
    x, y = torch.from_numpy(images)[:, None], torch.from_numpy(separated_foreground(instances)).long()
    w = torch.from_numpy(weight_map(instances))
    net = UNet(1, 2, base_channels=4, depth=2)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    losses = []
    for _ in range(25):
        loss = weighted_cross_entropy(net(x), y, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


# ---------------------------------------------------------------------------- init

def test_he_std_counts_the_inputs_of_one_unit():
    assert he_std(nn.Conv2d(64, 128, 3)) == pytest.approx(math.sqrt(2 / 576))
    assert he_std(nn.Conv2d(64, 2, 1)) == pytest.approx(math.sqrt(2 / 64))
    assert he_std(nn.ConvTranspose2d(128, 64, 2, stride=2)) == pytest.approx(math.sqrt(2 / 128))
    with pytest.raises(TypeError, match="Conv2d"):
        he_std(nn.Linear(3, 4))


def test_paper_init_sets_the_std_and_zero_biases_and_keeps_the_signal():
    net = UNet(1, 2, base_channels=16, depth=2, padding="valid", batch_norm=False)
    paper_init_(net, torch.Generator().manual_seed(0))
    conv = net.ups[0].conv[0]
    assert conv.weight.std().item() == pytest.approx(he_std(conv), rel=0.05)
    assert all(m.bias.abs().sum() == 0 for m in net.modules() if isinstance(m, nn.Conv2d))
    x = torch.rand(1, 1, 92, 92)
    with torch.no_grad():
        kept = net.features(x).pow(2).mean().sqrt().item()
        default = UNet(1, 2, base_channels=16, depth=2, padding="valid", batch_norm=False)
        torch.manual_seed(0)
        shrunk = default.features(x).pow(2).mean().sqrt().item()
    assert kept > 10 * shrunk  # PyTorch's default init lets the signal fade through 13 conv layers


# ---------------------------------------------------------------------------- separated pairs

def test_separated_pairs_counts_touching_cells_kept_apart():
    lab = two_touching_cells()
    assert touching_pairs(lab) == [(1, 2)]
    assert separated_pairs(separated_foreground(lab), lab) == (1, 1)
    assert separated_pairs(lab > 0, lab) == (0, 1)  # merged
    half_missed = separated_foreground(lab) & (lab != 2)
    assert separated_pairs(half_missed, lab) == (0, 1)  # a missed cell is not "separated"
    diagonal = np.zeros((4, 4), np.int32)
    diagonal[:2, :2], diagonal[2:, 2:] = 1, 2
    assert touching_pairs(diagonal) == [(1, 2)]
