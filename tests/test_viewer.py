"""PredictionViewer driven headless through its own widgets: sliders, the sort button, the PNG it shows."""
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from scipy import ndimage
from torch.utils.data import Dataset, TensorDataset

from course_utils import UNet, dice_score, iou_score
from course_utils.inference import predict_tiled
from course_utils.tiling import covering_tile_size
from course_utils.data import CarvanaDataset, ensure_toy_carvana
from course_utils.data.isbi2012 import read_stack
from course_utils.em_metrics import rand_error, split_merge
from course_utils.viewer import (FALSE_NEGATIVE, FALSE_POSITIVE, IGNORED, MERGED, SPLIT, WRONG_LABEL,
                                 PredictionViewer)
from course_utils.viz import class_palette

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny convolutions: one thread is faster
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


def test_a_valid_padding_unet_is_shown_on_the_whole_image_by_overlap_tile_inference():
    torch.manual_seed(0)
    model = UNet(3, 1, base_channels=4, depth=1, padding="valid")
    assert model.output_size(32, 48) == (16, 32)  # unpadded convs: one pass predicts only the center
    images, masks = torch.rand(2, 3, 32, 48), (torch.rand(2, 1, 32, 48) > 0.5).float()
    viewer = PredictionViewer(model, TensorDataset(images, masks), panel_width=None)
    assert shown_png(viewer).shape == (18 + 32, 4 * 48 + 12, 3)  # the whole image, mirrored context at the border
    pred = torch.sigmoid(predict_tiled(model, images[0], covering_tile_size(model, 32, 48))) > 0.5
    assert shown_number(viewer, "Dice") == pytest.approx(float(dice_score(pred[None], masks[:1])), abs=5e-5)
    small_tiles = PredictionViewer(model, TensorDataset(images, masks), panel_width=None, tile_size=36)
    assert small_tiles.tile_size == 36 and np.array_equal(small_tiles.frame(), viewer.frame())  # valid tiling is exact


def test_a_model_whose_output_is_smaller_is_shown_on_the_center_crop_it_predicts():
    model = nn.Conv2d(3, 1, 5)  # no padding, no course config: 2 px lost on each side
    images, masks = torch.rand(2, 3, H, W), (torch.rand(2, 1, H, W) > 0.5).float()
    viewer = PredictionViewer(model, TensorDataset(images, masks), panel_width=None)
    assert not viewer.tiled and shown_png(viewer).shape == (18 + H - 4, 4 * (W - 4) + 12, 3)
    with torch.no_grad():
        pred = torch.sigmoid(model(images[:1])) > 0.5
    assert shown_number(viewer, "Dice") == pytest.approx(float(dice_score(pred, masks[:1, :, 2:-2, 2:-2])), abs=5e-5)


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


# ----------------------------------------------------------------------------- EM slices (lesson 13)
CROP = 128


@pytest.fixture
def em_stacks(real_isbi2012):
    """The real ISBI 2012 training stacks: volume uint8 (30, 512, 512), labels {0, 255}."""
    return read_stack(real_isbi2012 / "train-volume.tif"), read_stack(real_isbi2012 / "train-labels.tif")


class EMSlices(Dataset):
    """A few real slices cropped to CROP x CROP: (image (1, H, W) float in [0, 1], mask (1, H, W)
    {0, 1} with 1 = cell), or a target {"mask", "weight"} like a weight-map data set's."""

    def __init__(self, stacks, pages=(0, 1, 2), weights=False, masks=None):
        volume, labels = stacks
        self.images = torch.from_numpy(volume[list(pages), :CROP, :CROP]).float().div(255)[:, None]
        self.masks = torch.from_numpy(labels[list(pages), :CROP, :CROP] == 255).float()[:, None] if masks is None \
            else torch.as_tensor(masks).float()[:, None]
        self.weights = weights

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        target = {"mask": self.masks[i], "weight": torch.ones_like(self.masks[i])} if self.weights else self.masks[i]
        return self.images[i], target


def threshold_model() -> nn.Module:
    """A 1-channel 'model' that predicts its input: probability > 0.5 exactly where the image is > 0.5."""
    model = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        model.weight.fill_(8.0)
        model.bias.fill_(-4.0)
    return model


def panels(viewer: PredictionViewer, width: int = CROP) -> list[np.ndarray]:
    picture = shown_png(viewer)[18:]
    return [picture[:, k * (width + 4):k * (width + 4) + width] for k in range(4)]


def test_em_slices_show_a_grey_image_its_truth_and_errors(em_stacks):
    torch.manual_seed(0)
    data = EMSlices(em_stacks)
    viewer = PredictionViewer(UNet(1, 1, base_channels=4, depth=2), data, panel_width=None)
    image, truth, _, errors = panels(viewer)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()  # grey
    assert np.abs(image[..., 0].astype(int) - em_stacks[0][0, :CROP, :CROP]).max() <= 1
    cell = data.masks[0, 0].numpy() > 0.5
    assert (truth[cell] > 200).all() and (truth[~cell] < 60).all()
    assert "Dice" in viewer.scores.value and viewer.view.value == "pixels" and viewer.view.layout.display != "none"
    with_weights = PredictionViewer(viewer.model, EMSlices(em_stacks, weights=True), panel_width=None)
    assert np.array_equal(with_weights.frame(), viewer.frame())  # a {"mask", "weight"} target shows its mask


def test_a_valid_unet_predicts_whole_em_slices_with_tiles(em_stacks):
    torch.manual_seed(0)
    model = UNet(1, 1, base_channels=4, depth=2, padding="valid")
    with torch.no_grad():
        model.head.weight.mul_(300)  # untrained logits barely vary: spread them so the threshold has work to do
    data = EMSlices(em_stacks, pages=(3,))
    tile = covering_tile_size(model, CROP, CROP)
    probs = torch.sigmoid(predict_tiled(model, data.images[0], tile))
    mirrored = torch.sigmoid(predict_tiled(model, data.images[0].flip(-1), tile)).flip(-1)
    t = float(probs.median())  # a threshold that leaves cells on both sides
    viewer = PredictionViewer(model, data, panel_width=None, threshold=t)
    assert viewer.tiled and shown_png(viewer).shape == (18 + CROP, 4 * CROP + 12, 3)
    dice = float(dice_score(probs[None] > t, data.masks[:1]))
    assert shown_number(viewer, "Dice") == pytest.approx(dice, abs=5e-5)
    averaged = PredictionViewer(model, data, panel_width=None, threshold=t, tta=True)  # mirrored and averaged
    tta_dice = float(dice_score((probs + mirrored)[None] / 2 > t, data.masks[:1]))
    assert shown_number(averaged, "Dice") == pytest.approx(tta_dice, abs=5e-5) and abs(tta_dice - dice) > 1e-4


def test_cells_view_shows_components_and_the_rand_error(em_stacks):
    torch.manual_seed(0)
    data = EMSlices(em_stacks)
    viewer = PredictionViewer(UNet(1, 1, base_channels=4, depth=2), data, panel_width=None, threshold=0.45)
    pixels_view, pixels_legend = viewer.image.value, viewer.legend.value
    viewer.view.value = "cells"
    assert viewer.image.value != pixels_view and viewer.legend.value != pixels_legend
    assert "merged" in viewer.legend.value and "Rand error" in viewer.sort_button.description
    truth = data.masks[0, 0].numpy() > 0.5
    pred = viewer._prediction(viewer._entries([0])[0]).numpy()
    assert shown_number(viewer, "Rand error") == pytest.approx(rand_error(pred, truth), abs=5e-5)
    assert shown_number(viewer, "pixel error") == pytest.approx(float((pred != truth).mean()), abs=5e-5)
    true_cells = panels(viewer)[1]
    assert (true_cells[~truth] == 0).all()  # membrane black
    labels, n = ndimage.label(truth)
    assert f"{n} true cells" in viewer.scores.value
    colours = {tuple(true_cells[labels == c][0]) for c in range(1, n + 1)}
    assert len(colours) > n // 2  # cells coloured by component, not one colour for all

    viewer.threshold.value = 0.6  # the cells follow the threshold
    pred = viewer._prediction(viewer._entries([0])[0]).numpy()
    assert shown_number(viewer, "Rand error") == pytest.approx(rand_error(pred, truth), abs=5e-5)
    assert f"{ndimage.label(pred)[1]} predicted" in viewer.scores.value

    viewer.sort_button.click()  # the cells view sorts by Rand error, the highest first
    errors = [rand_error(viewer._prediction(e).numpy(), e["target"].numpy())
              for e in viewer._entries([0, 1, 2])]
    assert viewer.current == int(np.argmax(errors)) and "worst first by Rand error" in viewer.order_label.value


def two_neighbours(truth: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Cell labels, the largest cell away from the border and the neighbour it shares most wall with."""
    labels, n = ndimage.label(truth)
    edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    sizes = np.bincount(labels.ravel())
    a = max((c for c in range(1, n + 1) if c not in edge), key=lambda c: sizes[c])
    ring = ndimage.binary_dilation(labels == a, iterations=6) & (labels > 0) & (labels != a)
    return labels, a, int(np.bincount(labels[ring]).argmax())


def test_an_erased_membrane_shows_one_merge_and_a_cut_cell_one_split(em_stacks):
    truth = em_stacks[1][0, :CROP, :CROP] == 255
    labels, a, b = two_neighbours(truth)
    near = ndimage.distance_transform_edt(labels != a) + ndimage.distance_transform_edt(labels != b)
    merge = truth | (~truth & (near <= near[~truth].min() + 1))  # the wall between a and b, erased
    cut = truth.copy()
    row = int(np.argwhere(labels == a)[:, 0].mean())
    cut[row, labels[row] == a] = False  # a one-pixel membrane across cell a
    assert ndimage.label(merge)[1] == ndimage.label(truth)[1] - 1
    data = EMSlices(em_stacks, pages=(0, 0), masks=np.stack([truth, truth]))
    data.images = torch.from_numpy(np.stack([merge, cut])).float()[:, None]  # the 'model' predicts its image
    viewer = PredictionViewer(threshold_model(), data, panel_width=None)
    viewer.view.value = "cells"
    assert re.search(r"\b1 merged, 0 split\b", viewer.scores.value), viewer.scores.value
    assert split_merge(merge, truth)["merged"] == 1 and viewer.cell_scores(0)["merged"] == 1
    assert shown_number(viewer, "Rand error") == pytest.approx(rand_error(merge, truth), abs=5e-5)
    assert shown_number(viewer, "Rand error") > 0.01 and shown_number(viewer, "pixel error") < 0.01
    _, true_cells, predicted, marks = panels(viewer)
    joined = ndimage.label(merge)[0] == ndimage.label(merge)[0][labels == a][0]
    red, green, blue = np.moveaxis(marks.astype(int), -1, 0)  # merged tinted magenta, split cyan, the rest grey
    assert np.array_equal(red - green > 100, joined) and (green == red)[~joined].all() and not (blue - red > 100).any()
    assert (predicted == MERGED).all(axis=-1).any() and not (true_cells == SPLIT).all(axis=-1).any()

    viewer.index.value = 1
    assert re.search(r"\b0 merged, 1 split\b", viewer.scores.value), viewer.scores.value
    _, true_cells, predicted, marks = panels(viewer)
    red, green, blue = np.moveaxis(marks.astype(int), -1, 0)
    assert np.array_equal(blue - red > 100, labels == a) and (true_cells == SPLIT).all(axis=-1).any()
    assert viewer.cell_scores(1)["rand_error"] == pytest.approx(rand_error(cut, truth), abs=1e-9)


def test_multiclass_has_no_cells_view():
    viewer = PredictionViewer(label_model(), label_set(2))
    assert viewer.view.disabled and viewer.view.layout.display == "none"
    assert "Rand error" not in viewer.scores.value
    with pytest.raises(ValueError, match="binary masks"):
        viewer.cell_scores()
