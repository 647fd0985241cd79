"""Metrics on hand-computed cases, against torchmetrics on random tensors, and their accumulators."""
import pytest
import torch
from torchmetrics.functional.classification import (binary_jaccard_index, multiclass_confusion_matrix,
                                                    multiclass_jaccard_index)
from torchmetrics.functional.segmentation import dice_score as tm_dice

from course_utils.metrics import (BinaryMetrics, ConfusionMatrix, DepthMetrics, confusion_matrix, confusion_scores,
                                  depth_metrics, dice_score, iou_per_class, iou_score, mean_iou, pixel_accuracy,
                                  precision_score, recall_score)


def masks(*rows):
    return torch.tensor(rows)


def test_hand_computed_dice_iou_accuracy():
    pred = masks([1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0])
    target = masks([1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1])
    assert dice_score(pred, target, "none").tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert dice_score(pred, target).item() == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert dice_score(pred, target, "global").item() == pytest.approx(2 * 1 / (3 + 2))
    assert iou_score(pred, target, "none").tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert pixel_accuracy(pred, target, "none").tolist() == pytest.approx([0.75, 1.0, 0.5])


def test_empty_prediction_and_empty_target_score_one_but_empty_prediction_alone_scores_zero():
    empty = torch.zeros(1, 1, 4, 4)
    one = empty.clone()
    one[0, 0, 2, 3] = 1
    assert dice_score(empty, empty).item() == 1.0
    assert dice_score(empty, one).item() == 0.0
    assert dice_score(one, one).item() == 1.0
    assert iou_score(empty, empty).item() == 1.0


def test_full_masks_and_bool_input():
    full = torch.ones(2, 1, 3, 3, dtype=torch.bool)
    assert dice_score(full, full).item() == 1.0
    assert pixel_accuracy(full, ~full).item() == 0.0


def test_mean_differs_from_global_when_objects_differ_in_size():
    target = torch.zeros(2, 10, 10)
    target[0] = 1  # a big object, predicted perfectly
    target[1, 0, 0] = 1  # a one-pixel object, missed
    pred = target.clone()
    pred[1] = 0
    assert dice_score(pred, target).item() == pytest.approx(0.5)
    assert dice_score(pred, target, "global").item() == pytest.approx(200 / 201)


def test_iou_is_dice_over_two_minus_dice_per_image():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(8, 1, 16, 16, generator=g) > 0.5
    target = torch.rand(8, 1, 16, 16, generator=g) > 0.4
    d, j = dice_score(pred, target, "none"), iou_score(pred, target, "none")
    assert torch.allclose(j, d / (2 - d))


def test_mistakes_are_explained():
    with pytest.raises(ValueError, match="same shape"):
        dice_score(torch.zeros(1, 4), torch.zeros(1, 5))
    with pytest.raises(ValueError, match="threshold it first"):
        dice_score(torch.rand(1, 4), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="reduction"):
        dice_score(torch.zeros(1, 4), torch.zeros(1, 4), reduction="sum")


# ---------------------------------------------------------------------------- precision, recall


def test_precision_recall_hand_computed_and_their_empty_conventions():
    pred = masks([1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0])
    target = masks([1, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0])
    # image 2: nothing there, nothing claimed -> 1; image 3: a car missed -> precision 0 (not undefined);
    # image 4: a false alarm on an empty image -> recall 0
    assert precision_score(pred, target, "none").tolist() == pytest.approx([0.5, 1.0, 0.0, 0.0])
    assert recall_score(pred, target, "none").tolist() == pytest.approx([1 / 3, 1.0, 0.0, 0.0])
    assert precision_score(pred, target, "global").item() == pytest.approx(1 / 3)
    assert recall_score(pred, target, "global").item() == pytest.approx(1 / 4)
    assert precision_score(pred, target).item() == pytest.approx(1.5 / 4)


def test_dice_is_the_harmonic_mean_of_precision_and_recall():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.rand(6, 1, 12, 12, generator=g) > 0.5, torch.rand(6, 1, 12, 12, generator=g) > 0.3
    p, r = precision_score(pred, target, "none"), recall_score(pred, target, "none")
    assert torch.allclose(dice_score(pred, target, "none"), 2 * p * r / (p + r))


@pytest.mark.filterwarnings("ignore:dice_score metric currently defaults")
def test_per_image_dice_and_iou_match_torchmetrics():
    g = torch.Generator().manual_seed(2)
    pred = torch.rand(8, 1, 16, 16, generator=g) > 0.5
    target = torch.rand(8, 1, 16, 16, generator=g) > torch.linspace(0.1, 0.9, 8).view(8, 1, 1, 1)
    theirs = tm_dice(pred.long(), target.long(), num_classes=1, average="none")[:, 0]
    assert torch.allclose(dice_score(pred, target, "none"), theirs.double(), atol=1e-6)
    jaccard = torch.stack([binary_jaccard_index(pred[i], target[i]) for i in range(8)])
    assert torch.allclose(iou_score(pred, target, "none"), jaccard.double(), atol=1e-6)
    pooled = tm_dice(pred.long(), target.long(), num_classes=1, average="micro", aggregation_level="global")
    assert dice_score(pred, target, "global").item() == pytest.approx(pooled.item(), abs=1e-6)


# ---------------------------------------------------------------------------- confusion matrix and mIoU


def random_labels(seed, n=3, classes=5, size=(12, 10), ignore=255, ignored_fraction=0.1):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randint(0, classes, (n, *size), generator=g)
    target = torch.randint(0, classes, (n, *size), generator=g)
    target[torch.rand(n, *size, generator=g) < ignored_fraction] = ignore
    return pred, target


def test_confusion_matrix_matches_torchmetrics_with_an_ignored_label():
    pred, target = random_labels(3)
    cm = confusion_matrix(pred, target, 5, ignore_index=255)
    assert cm.dtype == torch.int64 and cm.shape == (5, 5)
    assert torch.equal(cm, multiclass_confusion_matrix(pred, target, 5, ignore_index=255))
    assert cm.sum() == (target != 255).sum()


def test_confusion_matrix_rows_are_true_classes_and_ignored_pixels_are_skipped():
    target = torch.tensor([[0, 0, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 0]])
    assert confusion_matrix(pred, target, 2, ignore_index=255).tolist() == [[1, 1], [0, 1]]
    # the ignored pixel's (wrong) prediction changes nothing
    assert confusion_matrix(torch.tensor([[0, 1, 1, 1]]), target, 2, ignore_index=255).tolist() == [[1, 1], [0, 1]]


def test_scores_give_the_same_matrix_as_their_argmax_and_binary_masks_work_with_two_classes():
    g = torch.Generator().manual_seed(4)
    scores, target = torch.randn(2, 4, 6, 6, generator=g), torch.randint(0, 4, (2, 6, 6), generator=g)
    assert torch.equal(confusion_matrix(scores, target, 4), confusion_matrix(scores.argmax(1), target, 4))
    pred, truth = torch.tensor([[[1.0, 1.0, 0.0]]]), torch.tensor([[[1.0, 0.0, 0.0]]])
    cm = confusion_matrix(pred, truth, 2)
    assert cm.tolist() == [[1, 1], [0, 1]]
    assert iou_per_class(cm)[1].item() == pytest.approx(iou_score(pred, truth).item())


def test_iou_per_class_and_mean_iou_match_torchmetrics_when_every_class_is_present():
    pred, target = random_labels(5)
    ours = mean_iou(pred, target, 5, ignore_index=255)
    theirs = multiclass_jaccard_index(pred, target, 5, average="macro", ignore_index=255)
    assert ours == pytest.approx(theirs.item(), abs=1e-6)
    per_class = multiclass_jaccard_index(pred, target, 5, average="none", ignore_index=255)
    assert torch.allclose(iou_per_class(confusion_matrix(pred, target, 5, 255)), per_class.double(), atol=1e-6)
    assert ours < 0.3  # random labels: a test that would notice everything scoring 1


def test_a_class_in_neither_prediction_nor_target_is_left_out_of_the_mean():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    iou = iou_per_class(confusion_matrix(pred, target, 3))  # class 2 is nowhere
    assert iou[:2].tolist() == pytest.approx([1 / 2, 2 / 3]) and torch.isnan(iou[2])
    assert mean_iou(pred, target, 3) == pytest.approx((1 / 2 + 2 / 3) / 2)
    # a class predicted but never there counts, with IoU 0
    assert mean_iou(torch.tensor([[0, 2, 1, 1]]), target, 3) == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_confusion_scores_pixel_accuracy_counts_labelled_pixels_only():
    target = torch.tensor([[0, 0, 1, 1, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 0, 0]])
    s = confusion_scores(confusion_matrix(pred, target, 2, ignore_index=255))
    assert s["pixel_accuracy"] == pytest.approx(3 / 4)
    assert s["mean_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    assert s["mean_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_an_ignore_index_among_the_labels_is_not_scored_as_a_class():
    target = torch.tensor([[0, 1, 1, 2, 2]])  # 0 = unlabelled, as in NYUv2
    pred = torch.tensor([[1, 1, 0, 2, 2]])  # predicting 0 on a labelled pixel is a miss
    cm = confusion_matrix(pred, target, 3, ignore_index=0)
    assert cm.tolist() == [[0, 0, 0], [1, 1, 0], [0, 0, 2]]
    iou = iou_per_class(cm, ignore_index=0)
    assert torch.isnan(iou[0]) and iou[1:].tolist() == pytest.approx([0.5, 1.0])
    assert mean_iou(pred, target, 3, ignore_index=0) == pytest.approx(0.75)


def test_confusion_matrix_mistakes_are_explained():
    t = torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="num_classes=2 allows 0..1"):
        confusion_matrix(t, t, 2)
    with pytest.raises(ValueError, match="ignore_index=255"):
        confusion_matrix(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 255]]), 2)
    with pytest.raises(ValueError, match="negative label -1.*ignore_index=-1"):
        confusion_matrix(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, -1]]), 2)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="3 channels, but num_classes=4"):
        confusion_matrix(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="fractions"):
        confusion_matrix(torch.rand(1, 4) / 2, torch.zeros(1, 4), 2)
    assert confusion_matrix(torch.tensor([[0, -1]]), torch.tensor([[0, -1]]), 2, ignore_index=-1).sum() == 1


# ---------------------------------------------------------------------------- accumulators


def test_binary_metrics_over_batches_equal_the_whole_set_at_once():
    g = torch.Generator().manual_seed(6)
    pred = torch.rand(10, 1, 8, 8, generator=g) > 0.5
    target = torch.rand(10, 1, 8, 8, generator=g) > 0.6
    target[3], pred[3] = False, False  # an empty image, predicted empty: Dice 1
    m = BinaryMetrics()
    for s in (slice(0, 3), slice(3, 4), slice(4, 10)):
        m.update(pred[s], target[s])
    r = m.compute()
    assert r["n_images"] == 10
    assert r["dice"] == pytest.approx(dice_score(pred, target).item())
    assert r["dice_global"] == pytest.approx(dice_score(pred, target, "global").item())
    assert r["iou"] == pytest.approx(iou_score(pred, target).item())
    assert r["pixel_accuracy"] == pytest.approx(pixel_accuracy(pred, target, "global").item())
    assert r["precision"] == pytest.approx(precision_score(pred, target, "global").item())
    assert r["recall"] == pytest.approx(recall_score(pred, target, "global").item())
    assert r["dice"] != pytest.approx(r["dice_global"])  # the empty image weighs in only per image
    parts = BinaryMetrics(), BinaryMetrics()  # two processes' shares, added as all_reduce_sums adds them
    parts[0].update(pred[:4], target[:4])
    per_image = parts[1].update(pred[4:], target[4:])
    assert per_image["dice"].tolist() == pytest.approx(dice_score(pred[4:], target[4:], "none").tolist())
    one, two = parts[0].sums(), parts[1].sums()
    assert one["counts"].dtype == torch.int64 and one["scores"].dtype == torch.float64
    added = BinaryMetrics()
    added.load_sums({k: one[k] + two[k] for k in one})
    assert added.compute() == pytest.approx(r) and added.n_images == 10
    m.reset()
    with pytest.raises(ValueError, match="update"):
        m.compute()


def test_confusion_matrix_accumulator_equals_the_whole_set_and_resets():
    pred, target = random_labels(7, n=6)
    acc = ConfusionMatrix(5, ignore_index=255)
    for s in (slice(0, 2), slice(2, 5), slice(5, 6)):
        acc.update(pred[s], target[s])
    whole = confusion_matrix(pred, target, 5, 255)
    assert torch.equal(acc.matrix, whole)
    assert acc.mean_iou() == pytest.approx(mean_iou(pred, target, 5, 255))
    assert torch.allclose(acc.iou_per_class(), iou_per_class(whole))
    assert acc.pixel_accuracy() == pytest.approx((pred == target)[target != 255].float().mean().item())
    acc.reset()
    assert acc.matrix.sum() == 0


# ---------------------------------------------------------------------------- depth


def test_depth_metrics_hand_computed_with_missing_depth_ignored():
    target = torch.tensor([[[2.0, 4.0, 0.0, float("nan")]]])
    pred = torch.tensor([[[2.0, 3.0, 9.0, 9.0]]])  # the 0 and the nan are holes: not scored
    m = depth_metrics(pred, target)
    assert m["n_pixels"] == 2
    assert m["abs_rel"] == pytest.approx((0 + 1 / 4) / 2)
    assert m["rmse"] == pytest.approx((1 / 2) ** 0.5)
    assert m["delta1"] == pytest.approx(0.5)  # 4/3 = 1.33 is not < 1.25
    assert m["delta2"] == pytest.approx(1.0)  # but < 1.25**2 = 1.5625


def test_delta_threshold_is_strict_and_non_positive_predictions_never_count():
    target = torch.ones(1, 5)
    pred = torch.tensor([[1.2, 1 / 1.2, -1.0, 0.0, 1.25]])  # 1.25 itself is not below 1.25
    m = depth_metrics(pred, target)
    assert m["delta1"] == pytest.approx(2 / 5)


def test_depth_metrics_pool_pixels_not_images_and_accumulate_exactly():
    target = torch.ones(2, 1, 2, 2)
    target[1, 0, 0, 1:] = 0
    target[1, 0, 1] = 0  # image 1 has one valid pixel
    pred = target.clone()
    pred[1] = 2.0  # its one valid pixel is off by 100%
    m = depth_metrics(pred, target)
    assert m["abs_rel"] == pytest.approx(1 / 5)  # pooled over 5 pixels; per image it would be 0.5
    acc = DepthMetrics()
    acc.update(pred[:1], target[:1])
    acc.update(pred[1:], target[1:])
    r = acc.compute()
    assert r["n_images"] == 2 and r["n_pixels"] == 5
    for k in ("abs_rel", "rmse", "delta1", "delta2", "delta3"):
        assert r[k] == pytest.approx(m[k])


def test_depth_mistakes_are_explained():
    with pytest.raises(ValueError, match="no valid depth"):
        depth_metrics(torch.ones(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="same shape"):
        depth_metrics(torch.ones(1, 2, 3), torch.ones(1, 1, 3))
