"""PredictionViewer driven headless through its own widgets: sliders, the sort button, the PNG it shows."""
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from course_utils import UNet, dice_score, iou_score
from course_utils.data import CarvanaDataset, ensure_toy_carvana
from course_utils.viz import (FALSE_NEGATIVE, FALSE_POSITIVE, IGNORED, WRONG_LABEL, PredictionViewer,
                              class_palette)

H, W = 24, 32


def brightness_model() -> nn.Module:
    """Deterministic binary 'model': probability = sigmoid(4 * (mean of the 3 channels - 0.5))."""
    model = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        model.weight.fill_(4 / 3)
        model.bias.fill_(-2.0)
    return model


def binary_set(n: int = 6) -> TensorDataset:
    """Images whose brightness the model reads as probability, and rectangle masks: every image
    gets another Dice, and the threshold moves the predicted border."""
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(n, 1, H, W)
    for i, k in enumerate([3, 0, 5, 1, 4, 2][:n]):  # shuffled, so worst first is not dataset order
        masks[i, :, 2 + k:14 + k, 3:20 + 2 * k] = 1
    ramp = torch.linspace(0.1, 0.9, W).expand(H, W)  # brighter to the right: misses left, false alarms right
    images = (0.3 * masks + 0.6 * ramp + 0.1 * torch.rand(n, 1, H, W, generator=g)).clamp(0, 1).expand(-1, 3, -1, -1)
    return TensorDataset(images.contiguous(), masks)


def expected(model: nn.Module, dataset: TensorDataset, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image Dice and IoU computed here, without the viewer."""
    images, masks = dataset.tensors
    with torch.no_grad():
        pred = torch.sigmoid(model(images)) > threshold
    return dice_score(pred, masks, "none"), iou_score(pred, masks, "none")


def shown_png(viewer: PredictionViewer) -> np.ndarray:
    picture = Image.open(io.BytesIO(viewer.image.value))
    assert picture.format == "PNG" and viewer.image.format == "png"
    return np.asarray(picture.convert("RGB"))


def shown_number(viewer: PredictionViewer, name: str) -> float:
    found = re.search(rf"{name} ([0-9.]+|nan)", viewer.scores.value)
    assert found, f"no {name} in {viewer.scores.value!r}"
    return float(found.group(1))


def test_index_slider_changes_the_image_and_its_scores():
    model, data = brightness_model(), binary_set()
    viewer = PredictionViewer(model, data, panel_width=64)
    dice, iou = expected(model, data, 0.5)
    first = viewer.image.value
    assert shown_png(viewer).shape == (18 + 48, 4 * 64 + 3 * 4, 3)  # title strip, 4 panels 64 wide (24x32 -> 48x64)
    assert shown_number(viewer, "Dice") == pytest.approx(float(dice[0]), abs=5e-5)
    assert shown_number(viewer, "IoU") == pytest.approx(float(iou[0]), abs=5e-5)

    viewer.index.value = 3
    assert viewer.current == 3 and viewer.image.value != first
    assert shown_number(viewer, "Dice") == pytest.approx(float(dice[3]), abs=5e-5)
    assert shown_number(viewer, "Dice") != pytest.approx(float(dice[0]), abs=5e-5)
    assert np.array_equal(shown_png(viewer), viewer.frame())
    assert viewer.index.max == len(data) - 1


def test_threshold_changes_prediction_and_dice_without_rerunning_the_model():
    model, data = brightness_model(), binary_set()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    viewer = PredictionViewer(model, data)
    viewer.index.value = 2
    before, n_calls = viewer.image.value, len(calls)

    viewer.threshold.value = 0.62
    assert len(calls) == n_calls, "moving the threshold reran the model"
    viewer.index.value = 0
    viewer.index.value = 2  # back to a cached image: still no model call
    assert len(calls) == n_calls
    dice, _ = expected(model, data, 0.62)
    assert viewer.image.value != before
    assert shown_number(viewer, "Dice") == pytest.approx(float(dice[2]), abs=5e-5)
    assert "threshold 0.62" in viewer.scores.value


def test_sort_button_walks_worst_first_and_back_to_dataset_order():
    model, data = brightness_model(), binary_set()
    viewer = PredictionViewer(model, data, batch_size=4)
    viewer.threshold.value = 0.45
    dice, _ = expected(model, data, 0.45)
    viewer.index.value = 4

    viewer.sort_button.click()
    worst = int(dice.argmin())
    assert viewer.index.value == 0 and viewer.current == worst
    assert viewer.order == sorted(range(len(data)), key=lambda i: float(dice[i]))
    assert shown_number(viewer, "Dice") == pytest.approx(float(dice.min()), abs=5e-5)
    assert "rank 1 of 6" in viewer.scores.value and "worst first" in viewer.order_label.value
    viewer.index.value = len(data) - 1
    assert viewer.current == int(dice.argmax())

    viewer.sort_button.click()  # second press: dataset order, still on the same image
    assert viewer.order == list(range(len(data))) and viewer.current == int(dice.argmax())
    assert viewer.index.value == int(dice.argmax()) and viewer.order_label.value == "dataset order"


def test_error_panel_marks_false_positives_and_false_negatives_in_their_colours():
    model, data = brightness_model(), binary_set(2)
    viewer = PredictionViewer(model, data, panel_width=None)  # native size: panel pixel = image pixel
    images, masks = data.tensors
    with torch.no_grad():
        pred = (torch.sigmoid(model(images[:1])) > 0.5)[0, 0].numpy()
    truth = masks[0, 0].numpy() > 0.5
    errors = shown_png(viewer)[18:, 3 * (W + 4):]  # the fourth panel, below the titles
    assert errors.shape == (H, W, 3)
    fp, fn = pred & ~truth, ~pred & truth
    assert fp.any() and fn.any(), "the test image should have both kinds of error"
    assert (errors[fp] == FALSE_POSITIVE).all() and (errors[fn] == FALSE_NEGATIVE).all()
    assert not (errors[~(fp | fn)] == FALSE_POSITIVE).all(axis=-1).any()
    gt_panel = shown_png(viewer)[18:, W + 4:2 * W + 4]
    assert (gt_panel[truth] > 200).all() and (gt_panel[~truth] < 60).all()
    assert f"false positives {fp.sum()} px, false negatives {fn.sum()} px" in viewer.scores.value


def test_viewer_on_the_toy_carvana_with_a_tiny_unet_displays_itself(tmp_path):
    root = ensure_toy_carvana(tmp_path / "toy", n_cars=1, image_size=(32, 48))
    dataset = CarvanaDataset(root)
    torch.manual_seed(0)
    viewer = PredictionViewer(UNet(3, 1, base_channels=4, depth=2), dataset, panel_width=48)
    assert viewer.index.max == 15 and dataset.ids[0] in viewer.scores.value
    bundle = viewer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == viewer.widget.model_id
    assert viewer.image in viewer.widget.children and viewer.index in viewer.widget.children[0].children
    before = viewer.image.value
    viewer.index.value = 7
    assert viewer.image.value != before and dataset.ids[7] in viewer.scores.value


def test_a_valid_padding_unet_is_shown_on_the_center_crop_it_predicts():
    torch.manual_seed(0)
    model = UNet(3, 1, base_channels=4, depth=1, padding="valid")
    assert model.output_size(32, 48) == (16, 32)  # unpadded convs: 8 px lost on each side
    images, masks = torch.rand(2, 3, 32, 48), (torch.rand(2, 1, 32, 48) > 0.5).float()
    viewer = PredictionViewer(model, TensorDataset(images, masks), panel_width=None)
    assert shown_png(viewer).shape == (18 + 16, 4 * 32 + 12, 3)
    with torch.no_grad():
        pred = torch.sigmoid(model.eval()(images[:1])) > 0.5
    assert shown_number(viewer, "Dice") == pytest.approx(float(dice_score(pred, masks[:1, :, 8:24, 8:40])), abs=5e-5)


def label_model() -> nn.Module:
    """4-class 'model': classes 0-2 light up their own image channel, class 3 wins where all are dark."""
    model = nn.Conv2d(3, 4, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
        for c in range(3):
            model.weight[c, c] = 1.0
        model.bias[3] = 0.5
    return model


def label_set(n: int = 4) -> TensorDataset:
    """Images that spell their labels (one-hot channels), labels with some wrong pixels and an
    unlabelled (255) band, so each image has its own accuracy and mIoU."""
    g = torch.Generator().manual_seed(1)
    truth = torch.randint(0, 4, (n, H, W), generator=g)
    images = torch.stack([(truth == c).float() for c in range(3)], dim=1)
    labels = truth.clone()
    for i in range(n):
        labels[i, :, : 3 * i + 1] = (labels[i, :, : 3 * i + 1] + 1) % 4  # wrong stripe, wider each image
    labels[:, -3:] = 255
    return TensorDataset(images, labels)


def label_scores(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Pixel accuracy and mIoU of one image, class by class, here."""
    keep = target != 255
    p, t = pred[keep], target[keep]
    ious = [((p == c) & (t == c)).sum() / ((p == c) | (t == c)).sum() for c in range(4) if ((p == c) | (t == c)).any()]
    return float((p == t).mean()), float(np.mean(ious))


def test_multiclass_viewer_shows_labels_with_a_palette_legend_and_miou():
    model, data = label_model(), label_set()
    names = ["floor", "wall", "bed", "other"]
    viewer = PredictionViewer(model, data, class_names=names, panel_width=None)
    assert viewer.multiclass and viewer.num_classes == 4
    assert viewer.threshold.disabled and viewer.threshold.layout.display == "none"
    assert all(name in viewer.legend.value for name in names) and "ignored" in viewer.legend.value
    images, labels = data.tensors
    with torch.no_grad():
        pred = model(images).argmax(1).numpy()
    target = labels.numpy()
    for k in (0, 2):
        viewer.index.value = k
        accuracy, miou = label_scores(pred[k], target[k])
        assert shown_number(viewer, "mIoU") == pytest.approx(miou, abs=5e-5)
        assert shown_number(viewer, "pixel accuracy") == pytest.approx(accuracy, abs=5e-5)
    picture = shown_png(viewer)[18:]
    truth_panel, pred_panel, errors = (picture[:, k * (W + 4):k * (W + 4) + W] for k in (1, 2, 3))
    palette = class_palette(4)
    labelled = target[2] != 255
    assert (truth_panel[labelled] == palette[target[2][labelled]]).all()
    assert (truth_panel[~labelled] == IGNORED).all() and (errors[~labelled] == IGNORED).all()
    assert (pred_panel == palette[pred[2]]).all()
    wrong = labelled & (pred[2] != target[2])
    assert wrong.any() and (errors[wrong] == WRONG_LABEL).all()

    viewer.sort_button.click()  # multi-class sorts by mIoU
    mious = [label_scores(pred[i], target[i])[1] for i in range(len(data))]
    assert viewer.current == int(np.argmin(mious)) and "mIoU" in viewer.sort_button.description + viewer.order_label.value


def test_palette_is_fixed_and_distinct():
    assert (class_palette(40)[:13] == class_palette(13)).all()
    assert len({tuple(c) for c in class_palette(40)}) == 40
    assert not any((c == IGNORED).all() for c in class_palette(40))


@pytest.mark.parametrize("dataset, model, message", [
    (TensorDataset(torch.rand(0, 3, H, W), torch.zeros(0, 1, H, W)), brightness_model(), "empty"),
    (TensorDataset(torch.rand(2, 3, H, W)), brightness_model(), r"items \(image, mask\).*length 1"),
    ([{"image": torch.rand(3, H, W), "mask": torch.zeros(1, H, W)}], brightness_model(), r"\(image, mask\).*dict"),
    (TensorDataset(torch.rand(2, 1, H, W), torch.zeros(2, 1, H, W)), UNet(3, 1, 4, 2), "3-channel.*have 1"),
    (TensorDataset(torch.rand(2, 3, H, W), torch.zeros(2, 1, H, 16)), brightness_model(), "mask has shape"),
    (TensorDataset(torch.rand(2, 3, H, W), torch.full((2, H, W), 7)), brightness_model(), "one output channel"),
    (TensorDataset(torch.rand(2, 3, H, W), torch.full((2, H, W), 9)), label_model(), "holds \\[9\\].*ignore_index"),
    (torch.utils.data.DataLoader(TensorDataset(torch.rand(2, 3, H, W))), brightness_model(), "not a DataLoader"),
], ids=["empty", "not-pairs", "dict-items", "input-channels", "mask-size", "labels-for-binary", "label-range",
        "dataloader"])
def test_mistakes_get_errors_that_say_what_is_wrong(dataset, model, message):
    with pytest.raises((ValueError, TypeError), match=message):
        PredictionViewer(model, dataset)


def test_class_names_must_match_the_classes():
    with pytest.raises(ValueError, match="3 names but the model predicts 4"):
        PredictionViewer(label_model(), label_set(1), class_names=["a", "b", "c"])


def test_an_image_with_no_labelled_pixels_says_so_and_sorts_last():
    images, labels = label_set(3).tensors
    labels = labels.clone()
    labels[0] = 255  # nothing labelled in image 0
    viewer = PredictionViewer(label_model(), TensorDataset(images, labels))
    assert "no labelled pixels" in viewer.scores.value
    viewer.sort_button.click()
    assert viewer.order[-1] == 0 and viewer.current != 0
