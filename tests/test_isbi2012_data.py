"""The ISBI 2012 data layer (course_utils.data.isbi2012, lesson 13) on the real stacks of
../shared/real_samples/isbi2012 and on small stacks cut from them and written to tmp_path;
and the fast weight map (course_utils.paper.weight_map) against the exact one on real slices."""
from __future__ import annotations

import time

import albumentations as A
import numpy as np
import pytest
import torch
from conftest import _real_samples
from PIL import Image
from scipy import ndimage

from course_utils.data import (GridElastic, ISBI2012Dataset, cell_labels, check_isbi2012, em_eval_transform,
                               em_train_transform, held_out_split, read_isbi2012, read_stack, write_stack)
from course_utils.paper import (border_term, cell_distances, class_frequency_weights, separated_foreground,
                                touching_cells, two_nearest, weight_map)

NAMES = ("train-volume.tif", "train-labels.tif", "test-volume.tif")


@pytest.fixture(scope="module")
def isbi_real():
    """The folder of the real stacks (skips when absent)."""
    return _real_samples("isbi2012", "train-labels.tif")


@pytest.fixture(scope="module")
def stacks(isbi_real):
    """(volume, labels) of the real training stacks, read once."""
    return read_isbi2012(isbi_real)


def write_folder(root, volume, labels=None, test=None):
    """A folder in the challenge's layout holding the given stacks (those that are not None)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, pages in zip(NAMES, (volume, labels, test)):
        if pages is not None:
            write_stack(root / name, pages)
    return root


# ---------------------------------------------------------------------------- reading and checking
def test_the_real_stacks_read_as_the_challenge_describes_them(isbi_real, stacks):
    volume, labels = stacks
    assert volume.shape == labels.shape == (30, 512, 512) and volume.dtype == labels.dtype == np.uint8
    assert set(np.unique(labels).tolist()) == {0, 255} and 0.7 < (labels == 255).mean() < 0.85
    with Image.open(isbi_real / "train-labels.tif") as im:  # page 7 read on its own, as the README says
        im.seek(7)
        assert np.array_equal(np.array(im), labels[7])
    check_isbi2012(isbi_real)  # passes: nothing raised


def test_a_missing_labels_file_says_where_it_belongs_and_how_to_get_it(tmp_path, stacks):
    root = write_folder(tmp_path / "isbi", stacks[0][:2])
    with pytest.raises(FileNotFoundError) as err:
        read_isbi2012(root)
    message = str(err.value)
    assert str(root / "train-labels.tif") in message and f"download isbi2012 --root {root}" in message


@pytest.mark.parametrize("cut,says", [
    (lambda s: s[:29], "holds 29 pages of 512 x 512, but"),
    (lambda s: s[:, :256, :300], "holds 30 pages of 256 x 300, but"),
])
def test_labels_that_do_not_fit_the_images_name_both_files_and_shapes(tmp_path, stacks, cut, says):
    volume, labels = stacks
    root = write_folder(tmp_path / "isbi", volume, cut(labels))
    with pytest.raises(ValueError) as err:
        read_isbi2012(root)
    message = str(err.value)
    assert says in message and "holds 30 pages of 512 x 512" in message
    assert str(root / "train-labels.tif") in message and str(root / "train-volume.tif") in message


def test_label_values_other_than_0_and_255_are_named_with_their_page(tmp_path, stacks):
    volume, labels = stacks[0][:6], stacks[1][:6].copy()
    labels[4, 10, 10:13] = (1, 128, 128)
    labels[5, 0, 0] = 7
    with pytest.raises(ValueError) as err:
        read_isbi2012(write_folder(tmp_path / "a", volume, labels))
    assert "page 4" in str(err.value) and "[1, 128]" in str(err.value) and "2 of its 6 pages" in str(err.value)
    with pytest.raises(ValueError, match="multiplied by 255"):  # the common slip: labels saved as 0/1
        read_isbi2012(write_folder(tmp_path / "b", volume, stacks[1][:6] // 255))


@pytest.mark.parametrize("name", ["train-volume.tif", "train-labels.tif"])
def test_a_real_stack_cut_in_half_is_reported_as_cut_short(tmp_path, isbi_real, name):
    root = tmp_path / "isbi"
    root.mkdir()
    for other in NAMES:
        data = (isbi_real / other).read_bytes()
        (root / other).write_bytes(data[: len(data) // 2] if other == name else data)
    with pytest.raises(ValueError) as err:
        read_isbi2012(root)
    assert str(root / name) in str(err.value) and "cut short" in str(err.value)
    with pytest.raises(ValueError, match="cut short"):
        check_isbi2012(root)


def test_check_names_every_file_that_is_not_the_challenges(tmp_path, stacks):
    volume, labels = stacks
    bad = labels.copy()
    bad[3, 5, 5] = 128
    root = write_folder(tmp_path / "isbi", volume[:29], bad)  # test-volume.tif missing
    with pytest.raises(ValueError) as err:
        check_isbi2012(root)
    message = str(err.value)
    assert "train-volume.tif: 29 pages of 512 x 512" in message and "30 pages of 512 x 512" in message
    assert "train-labels.tif, page 3, holds the values [128]" in message
    assert f"{root / 'test-volume.tif'}: missing" in message
    write_folder(root, volume, labels, volume)
    check_isbi2012(root)
    write_stack(root / "test-volume.tif", volume[:, :500])
    with pytest.raises(ValueError, match="test-volume.tif: 30 pages of 500 x 512"):
        check_isbi2012(root)


def test_a_stack_that_is_not_8_bit_is_refused(tmp_path, stacks):
    path = write_stack(tmp_path / "float.tif", stacks[0][:2].astype(np.float32))
    with pytest.raises(ValueError, match="mode 'F'.*8-bit"):
        read_stack(path)


# ---------------------------------------------------------------------------- split and cells
def test_held_out_split_defaults_to_the_last_five_and_checks_its_indices():
    train, held = held_out_split()
    assert train == list(range(25)) and held == [25, 26, 27, 28, 29]
    assert held_out_split(10, (9, 0)) == ([1, 2, 3, 4, 5, 6, 7, 8], [0, 9])
    assert held_out_split(3, ()) == ([0, 1, 2], [])
    for held_out, says in [((30,), r"\[30\] are not page indices"), ((-1,), r"\[-1\] are not"),
                           ((3, 3), r"\[3\] are listed twice"), (range(30), "none is left to train on")]:
        with pytest.raises(ValueError, match=says):
            held_out_split(30, held_out)


def test_cells_are_4_connected_components_of_the_cell_pixels(stacks):
    mask = np.array([[255, 0, 0],
                     [0, 255, 255],
                     [0, 0, 0]], np.uint8)  # touching only at a corner: two cells
    cells = cell_labels(mask)
    assert cells.dtype == np.int32 and cells.max() == 2 and cells[0, 0] != cells[1, 1] and cells[1, 1] == cells[1, 2]
    assert np.array_equal(cell_labels(mask // 255), cells) and np.array_equal(cell_labels(mask > 0), cells)
    real = cell_labels(stacks[1][0])
    assert real.max() == 136 and np.array_equal(real == 0, stacks[1][0] == 0)  # 0 = membrane, nothing else
    with pytest.raises(ValueError, match="threshold a probability map"):
        cell_labels(np.array([[0, 128], [255, 0]], np.uint8))


# ---------------------------------------------------------------------------- the dataset
def test_train_items_are_the_slices_and_their_masks(isbi_real, stacks):
    volume, labels = stacks
    ds = ISBI2012Dataset(isbi_real, slices=held_out_split()[1])
    assert len(ds) == 5 and ds.slices == [25, 26, 27, 28, 29] and ds.ids[0] == "train-volume_25"
    assert ds.images.shape == (5, 512, 512) and np.array_equal(ds.labels, labels[25:])
    image, mask = ds[2]
    assert image.shape == mask.shape == (1, 512, 512) and image.dtype == mask.dtype == torch.float32
    assert torch.equal(image[0], torch.from_numpy(volume[27] / np.float32(255)))
    assert torch.equal(mask[0], torch.from_numpy((labels[27] == 255).astype(np.float32)))
    assert len(ISBI2012Dataset(isbi_real)) == 30 and em_eval_transform() is None


def test_test_items_are_images_alone(isbi_real):
    ds = ISBI2012Dataset(isbi_real, split="test", slices=[3, 4])
    item = ds[0]
    assert isinstance(item, torch.Tensor) and item.shape == (1, 512, 512)
    assert ds.ids == ["test-volume_03", "test-volume_04"] and ds.labels is None
    page = torch.from_numpy(read_stack(isbi_real / NAMES[2])[3]).float()
    assert torch.allclose(item[0] * 255, page, atol=1e-4)
    crops = ISBI2012Dataset(isbi_real, split="test", slices=[0], transform=em_train_transform(64, seed=0))
    assert crops[0].shape == (1, 64, 64)
    with pytest.raises(ValueError, match="no labels"):
        ISBI2012Dataset(isbi_real, split="test", weight_map=True)
    with pytest.raises(ValueError, match="'train'.*'test'"):
        ISBI2012Dataset(isbi_real, split="val")
    with pytest.raises(ValueError, match=r"slices \[30\].*0 to 29"):
        ISBI2012Dataset(isbi_real, split="test", slices=[29, 30])


def test_weight_map_items_carry_the_papers_weights(isbi_real, stacks):
    ds = ISBI2012Dataset(isbi_real, slices=[0, 29], weight_map=True)
    image, target = ds[1]
    assert set(target) == {"mask", "weight"} and target["weight"].shape == (1, 512, 512)
    expected = weight_map(cell_labels(stacks[1][29]), 10.0, 5.0)
    assert torch.equal(target["weight"][0], torch.from_numpy(expected))
    heavy = target["weight"][0] > 5  # where the border term dominates: between two nearby cells
    assert heavy.sum() > 1000 and (target["mask"][0][heavy] == 0).float().mean() > 0.99
    images, targets = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))  # batches keep the dict
    assert images.shape == targets["mask"].shape == targets["weight"].shape == (2, 1, 512, 512)


def test_an_elastic_item_keeps_image_mask_and_weight_aligned(tmp_path, stacks):
    """The labels written as the images too: after the deformation the bilinear image, thresholded,
    must still match the nearest-neighbour mask, and the weights must still sit on the membranes."""
    labels = stacks[1][:3]
    ds = ISBI2012Dataset(write_folder(tmp_path / "isbi", labels, labels), weight_map=True,
                         transform=A.Compose([GridElastic(grid=3, sigma=10.0, p=1.0)], seed=5))
    plain = ISBI2012Dataset(tmp_path / "isbi", weight_map=True)
    (image, target), (image0, target0) = ds[1], plain[1]
    mask, weight = target["mask"][0], target["weight"][0]
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert (mask != target0["mask"][0]).float().mean() > 0.02  # it was really deformed
    assert ((image[0] > 0.5).float() != mask).float().mean() < 0.01  # image and mask moved together
    shifted = torch.roll(mask, 2, dims=1)  # what a 2-pixel misalignment looks like: the check can fail
    assert ((image[0] > 0.5).float() != shifted).float().mean() > 0.03
    heavy = weight > 5
    assert heavy.sum() > 1000 and (mask[heavy] == 0).float().mean() > 0.99
    on_cells = weight[mask == 1]  # the weights of cell pixels stay w_c of cells (one value)
    assert (on_cells == on_cells.median()).float().mean() > 0.97


def test_the_training_transform_crops_flips_rotates_and_pads(isbi_real, stacks, tmp_path):
    ds = ISBI2012Dataset(isbi_real, slices=[0, 1], weight_map=True, transform=em_train_transform(192, seed=0))
    image, target = ds[0]
    assert image.shape == target["mask"].shape == target["weight"].shape == (1, 192, 192)
    assert 0 <= image.min() and image.max() <= 1 and set(target["mask"].unique().tolist()) <= {0.0, 1.0}
    small = write_folder(tmp_path / "small", stacks[0][:2, :64, :80], stacks[1][:2, :64, :80])
    image, mask = ISBI2012Dataset(small, transform=em_train_transform((92, 100), seed=1))[0]  # bigger than 64 x 80
    assert image.shape == mask.shape == (1, 92, 100) and set(mask.unique().tolist()) <= {0.0, 1.0}
    repeat = [ISBI2012Dataset(small, transform=em_train_transform(48, seed=3))[1][1] for _ in range(2)]
    assert torch.equal(*repeat)  # a seed repeats the draws


def test_a_transform_that_breaks_the_pair_is_refused(tmp_path, stacks):
    root = write_folder(tmp_path / "isbi", stacks[0][:2, :64, :64], stacks[1][:2, :64, :64])

    def image_only_crop(image, mask):
        return {"image": image[:32], "mask": mask}

    with pytest.raises(ValueError, match="train-volume_01 different sizes: image 32 x 64, mask 64 x 64"):
        ISBI2012Dataset(root, transform=image_only_crop)[1]

    def smeared(image, mask):
        return {"image": image, "mask": mask * 3}

    with pytest.raises(ValueError, match="no longer binary"):
        ISBI2012Dataset(root, transform=smeared)[0]


# ---------------------------------------------------------------------------- the fast weight map
def exact_weight_map(instances, w0=10.0, sigma=5.0):
    """The weight map with every cell's distance transform over the whole image (lesson 12's way)."""
    target = separated_foreground(instances)
    d1, d2 = two_nearest(cell_distances(instances))
    return class_frequency_weights(target) + np.where(target, 0, border_term(d1, d2, w0, sigma))


@pytest.mark.parametrize("page", [0, 17, 29])
def test_the_fast_weight_map_equals_the_exact_one_on_real_slices(stacks, page):
    cells = cell_labels(stacks[1][page][:256, 128:384])  # a quarter slice: the exact way takes ~1 s
    for w0, sigma in [(10.0, 5.0), (4.0, 2.0)]:
        fast, exact = weight_map(cells, w0, sigma), exact_weight_map(cells, w0, sigma)
        assert np.allclose(fast, exact, rtol=1e-4, atol=1e-6), np.abs(fast - exact).max()


def test_the_fast_weight_map_equals_the_exact_one_on_generated_cells():
    _, instances = touching_cells(3, 96, seed=4)
    for cells in instances:
        assert np.allclose(weight_map(cells), exact_weight_map(cells), rtol=1e-4, atol=1e-6)


def test_a_whole_real_slice_takes_a_fraction_of_a_second(stacks):
    cells = cell_labels(stacks[1][0])
    start = time.perf_counter()
    w = weight_map(cells)
    took = time.perf_counter() - start
    assert took < 1.5, f"weight_map took {took:.2f} s on one 512 x 512 slice (the exact way takes ~4 s)"
    assert w.shape == (512, 512) and ndimage.label(cells > 0)[1] == 136
