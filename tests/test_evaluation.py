"""evaluate, threshold_sweep, predict_probabilities and evaluate_segmentation on stand-in models
whose outputs are known, so every expected score is worked out by hand."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from course_utils.evaluation import evaluate, evaluate_segmentation, summarize, threshold_sweep
from course_utils.inference import predict_probabilities
from course_utils.metrics import confusion_matrix, dice_score

H, W = 4, 4


class Lookup(nn.Module):
    """Returns stored logits per image; an image carries its dataset index in every pixel of channel 0."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x):
        return self.logits[x[:, 0, 0, 0].round().long()]


class KnownMasks(Dataset):
    """Images (3, H, W) whose channel 0 holds the index; masks (1, H, W) float {0, 1}; Carvana-like ids."""

    def __init__(self, masks: torch.Tensor):
        self.masks = masks.float()
        self.ids = [f"car{i}_{i + 1:02d}" for i in range(len(masks))]

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, i):
        image = torch.zeros(3, H, W)
        image[0] = i
        return image, self.masks[i]


def logit(p):
    p = torch.as_tensor(p, dtype=torch.float32)
    return torch.log(p / (1 - p))


def known_case():
    """Four images with Dice 1 (exact), 1 (empty vs empty), 0 (missed pixel), 0.5 (half right)."""
    target = torch.zeros(4, 1, H, W)
    pred = torch.zeros(4, 1, H, W)
    target[0, :, :, :2] = pred[0, :, :, :2] = 1  # 8 pixels, exactly right
    target[2, 0, 1, 1] = 1  # one pixel missed
    target[3, 0, :2, :] = 1  # 8 true pixels; 4 found, 4 false alarms
    pred[3, 0, 0, :] = pred[3, 0, 2, :] = 1
    return target, Lookup(torch.where(pred > 0, 4.0, -4.0))


def test_evaluate_gives_one_record_per_image_in_order_with_hand_computed_scores():
    target, model = known_case()
    records = evaluate(model, DataLoader(KnownMasks(target), batch_size=3))
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert [r["id"] for r in records] == ["car0_01", "car1_02", "car2_03", "car3_04"]
    assert [r["dice"] for r in records] == pytest.approx([1.0, 1.0, 0.0, 0.5])
    assert [r["iou"] for r in records] == pytest.approx([1.0, 1.0, 0.0, 1 / 3])
    assert [r["foreground"] for r in records] == pytest.approx([0.5, 0.0, 1 / 16, 0.5])
    assert [r["predicted_foreground"] for r in records] == pytest.approx([0.5, 0.0, 0.0, 0.5])
    assert [r["false_positives"] for r in records] == [0, 0, 0, 4]
    assert [r["false_negatives"] for r in records] == [0, 0, 1, 4]
    assert all(type(r["dice"]) is float and type(r["false_positives"]) is int for r in records)
    s = summarize(records)
    assert s["dice"] == pytest.approx(2.5 / 4) and s["n_images"] == 4
    assert s["dice_global"] == pytest.approx(2 * 12 / (2 * 12 + 4 + 5))
    assert s["worst_id"] == "car2_03" and s["worst_dice"] == 0.0


def test_evaluate_maps_ids_through_a_subset_and_falls_back_to_the_index():
    target, model = known_case()
    data = KnownMasks(target)
    records = evaluate(model, DataLoader(Subset(data, [3, 1]), batch_size=2))
    assert [r["id"] for r in records] == ["car3_04", "car1_02"]
    assert [r["dice"] for r in records] == pytest.approx([0.5, 1.0])
    del data.ids
    assert [r["id"] for r in evaluate(model, DataLoader(data, batch_size=4))] == [0, 1, 2, 3]


def test_evaluate_refuses_loaders_that_reorder_and_bare_datasets():
    target, model = known_case()
    data = KnownMasks(target)
    with pytest.raises(ValueError, match="shuffle=False"):
        evaluate(model, DataLoader(data, batch_size=2, shuffle=True))
    with pytest.raises(TypeError, match="DataLoader"):
        evaluate(model, data)


def test_evaluate_explains_a_multi_class_model():
    data = KnownMasks(torch.zeros(2, 1, H, W))
    with pytest.raises(ValueError, match="evaluate_segmentation"):
        evaluate(Lookup(torch.zeros(2, 3, H, W)), DataLoader(data, batch_size=2))


def sweep_case():
    """Image 0 is separated perfectly by any threshold in (0.62, 0.78); image 1 only in (0.68, 0.72)."""
    target = torch.zeros(2, 1, H, W)
    target[:, :, :2] = 1
    probs = torch.where(target > 0, torch.tensor([0.78, 0.72]).view(2, 1, 1, 1),
                        torch.tensor([0.62, 0.68]).view(2, 1, 1, 1))
    return KnownMasks(target), Lookup(logit(probs))


def test_threshold_sweep_finds_the_constructed_best_threshold_and_matches_evaluate():
    data, model = sweep_case()
    loader = DataLoader(data, batch_size=1)
    sweep = threshold_sweep(model, loader)
    assert sweep["thresholds"][0] == 0.05 and sweep["thresholds"][-1] == 0.95 and len(sweep["thresholds"]) == 19
    assert sweep["best_threshold"] == pytest.approx(0.70) and sweep["best_dice"] == pytest.approx(1.0)
    for t, d in zip(sweep["thresholds"], sweep["dice"]):
        assert d == pytest.approx(summarize(evaluate(model, loader, threshold=t))["dice"])
    assert sweep["dice"][sweep["thresholds"].index(0.5)] == pytest.approx(2 / 3)  # everything predicted


def test_threshold_sweep_breaks_ties_towards_one_half_and_checks_thresholds():
    data, model = sweep_case()
    one = DataLoader(Subset(data, [0]), batch_size=1)
    assert threshold_sweep(model, one)["best_threshold"] == pytest.approx(0.65)  # 0.65, 0.70, 0.75 all give 1
    target = data.masks[:1]
    confident = Lookup(logit(torch.where(target > 0, 0.93, 0.07)))  # perfect for every threshold 0.1 .. 0.9
    sweep = threshold_sweep(confident, DataLoader(KnownMasks(target), batch_size=1))
    assert sweep["dice"][1:-1] == pytest.approx([1.0] * 17) and sweep["best_threshold"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        threshold_sweep(model, one, thresholds=[0.5, 50])


def test_predict_probabilities_runs_in_eval_mode_without_gradients_and_restores_train_mode():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 1, 1))
    model[0].running_mean.fill_(5.0)
    model.train()
    images = torch.rand(2, 3, H, W)
    probs = predict_probabilities(model, images)
    assert model.training and model[0].training
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(images))
    assert probs.dtype == torch.float32 and probs.device.type == "cpu" and not probs.requires_grad
    assert torch.allclose(probs, expected)
    with pytest.raises(ValueError, match="unsqueeze"):
        predict_probabilities(model, images[0])


def test_predict_probabilities_softmax_for_many_channels_and_amp_stays_float32():
    model = nn.Conv2d(3, 5, 1)
    probs = predict_probabilities(model, torch.rand(2, 3, H, W))
    assert probs.shape == (2, 5, H, W) and torch.allclose(probs.sum(1), torch.ones(2, H, W))
    bf16 = predict_probabilities(model, torch.rand(2, 3, H, W), amp_dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32 and bf16.shape == (2, 5, H, W)


class XRamp(nn.Module):
    """Logits that grow left to right whatever the image: a prediction mirroring changes."""

    def forward(self, x):
        return torch.linspace(-3, 3, x.shape[-1]).expand(x.shape[0], 1, *x.shape[-2:]).clone()


def test_tta_changes_nothing_for_a_mirror_symmetric_model_and_averages_an_asymmetric_one():
    images = torch.rand(2, 3, H, W)
    pointwise = nn.Conv2d(3, 1, 1)  # mirroring the image mirrors its prediction
    assert torch.allclose(predict_probabilities(pointwise, images, tta=True), predict_probabilities(pointwise, images))
    plain, tta = predict_probabilities(XRamp(), images), predict_probabilities(XRamp(), images, tta=True)
    assert not torch.allclose(plain, tta)
    assert torch.allclose(tta, (plain + plain.flip(-1)) / 2)
    assert torch.allclose(tta, torch.full_like(tta, 0.5))  # the ramp and its mirror cancel


def test_tta_in_evaluate_scores_the_averaged_prediction():
    target = torch.zeros(1, 1, H, W)
    target[..., W // 2:] = 1  # the right half: XRamp gets it exactly, its mirror-average predicts nothing
    loader = DataLoader(KnownMasks(target), batch_size=1)
    assert evaluate(XRamp(), loader)[0]["dice"] == pytest.approx(1.0)
    assert evaluate(XRamp(), loader, tta=True)[0]["dice"] == pytest.approx(0.0)
    assert threshold_sweep(XRamp(), loader, [0.4], tta=True)["dice"] == pytest.approx([2 / 3])  # 0.5 > 0.4: all


class KnownLabels(Dataset):
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = torch.zeros(3, H, W)
        image[0] = i
        return image, self.labels[i]


def test_evaluate_segmentation_sums_one_confusion_matrix_over_the_loader():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (5, H, W), generator=g)
    labels[0, 0] = 255  # unlabelled pixels
    scores = torch.randn(5, 3, H, W, generator=g)
    result = evaluate_segmentation(Lookup(scores), DataLoader(KnownLabels(labels), batch_size=2), 3,
                                   ignore_index=255)
    expected = confusion_matrix(scores.argmax(1), labels, 3, ignore_index=255)
    assert torch.equal(result["confusion_matrix"], expected)
    kept = labels != 255
    assert result["pixel_accuracy"] == pytest.approx((scores.argmax(1) == labels)[kept].float().mean().item())
    assert result["n_images"] == 5 and len(result["iou_per_class"]) == 3
    perfect = evaluate_segmentation(Lookup(torch.nn.functional.one_hot(labels.clamp(max=2), 3).permute(0, 3, 1, 2)
                                           .float()), DataLoader(KnownLabels(labels), batch_size=5), 3,
                                    ignore_index=255)
    assert perfect["mean_iou"] == pytest.approx(1.0)


def test_dice_of_records_agrees_with_dice_score_on_the_thresholded_probabilities():
    target, model = known_case()
    data = KnownMasks(target)
    images = torch.stack([data[i][0] for i in range(len(data))])
    probs = predict_probabilities(model, images)
    records = evaluate(model, DataLoader(data, batch_size=4))
    assert [r["dice"] for r in records] == pytest.approx(dice_score(probs > 0.5, target, "none").tolist())


class WithDepth(Dataset):
    """Items as NYUv2Dataset(tasks=("seg", "depth")) gives them: (image, {"seg": labels, "depth": metres})."""

    def __init__(self, labels):
        self.inner = KnownLabels(labels)

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        image, labels = self.inner[i]
        return image, {"seg": labels, "depth": torch.ones(1, H, W)}


def test_evaluate_segmentation_takes_class_channels_of_a_joint_model_and_dict_targets():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (4, H, W), generator=g)
    scores = torch.randn(4, 3, H, W, generator=g)
    depth = torch.full((4, 1, H, W), 100.0)  # a depth channel that would win every argmax if it were scored
    joint = Lookup(torch.cat([scores, depth], 1))
    result = evaluate_segmentation(joint, DataLoader(WithDepth(labels), batch_size=2), 3, channels=slice(0, 3))
    assert torch.equal(result["confusion_matrix"], confusion_matrix(scores.argmax(1), labels, 3))
    probs = predict_probabilities(joint, torch.stack([KnownLabels(labels)[i][0] for i in range(4)]),
                                  channels=slice(0, 3))
    assert torch.allclose(probs, torch.softmax(scores, 1))
    with pytest.raises(ValueError, match="4 channels, but num_classes=3"):
        evaluate_segmentation(joint, DataLoader(WithDepth(labels), batch_size=2), 3)


def test_two_headed_model_is_scored_on_its_class_output_and_shown_by_the_viewer():
    from course_utils.model import TwoHeadUNet
    from course_utils.viewer import PredictionViewer

    torch.manual_seed(0)
    model = TwoHeadUNet(3, 4, base_channels=4, depth=2).eval()
    images = torch.rand(3, 3, 16, 16)
    labels = torch.randint(0, 4, (3, 16, 16))
    with torch.no_grad():
        expected = torch.softmax(model(images)["seg"], 1)
    assert torch.allclose(predict_probabilities(model, images), expected, atol=1e-6)
    data = list(zip(images, labels))
    result = evaluate_segmentation(model, DataLoader(data, batch_size=2), 4)
    assert torch.equal(result["confusion_matrix"], confusion_matrix(expected.argmax(1), labels, 4))
    viewer = PredictionViewer(model, data)
    before = viewer.image.value
    viewer.index.value = 2
    assert viewer.image.value != before and "mIoU" in viewer.scores.value
