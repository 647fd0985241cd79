"""The exercise checks of lesson 05 accept right answers and explain wrong ones in words."""
import numpy as np
from PIL import Image

from course_utils import rle_decode
from course_utils.checks import check_read_mask, check_rle_decode, check_split_by_car
from conftest import fails_with


# ---- exercise 1: read a mask file --------------------------------------------------------

def read_mask(path):
    with Image.open(path) as im:
        mask = np.asarray(im)
    values = set(np.unique(mask).tolist())
    if values <= {0, 1}:
        return mask.astype(np.uint8)
    if values <= {0, 255}:
        return (mask // 255).astype(np.uint8)
    raise ValueError(f"{path} holds {sorted(values)}")


def test_read_mask_accepts_a_right_answer_and_the_course_loader(capsys):
    from course_utils.data.carvana_files import read_mask as _read_mask

    check_read_mask(read_mask)
    check_read_mask(_read_mask)
    assert capsys.readouterr().out.count("Correct:") == 2


def test_read_mask_names_the_usual_mistakes():
    def grey(path):  # the classic: convert('L') turns palette index 1 into 255
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))

    msg = fails_with(check_read_mask, grey)
    assert "kaggle_mask.gif" in msg and "{0, 255}" in msg and "expected {0, 1}" in msg

    def rgb(path):
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))

    assert "colour channels" in fails_with(check_read_mask, rgb)

    def always_divide(path):  # right for 0/255 files, wipes out {0, 1} ones
        with Image.open(path) as im:
            return (np.asarray(im) // 255).astype(np.uint8)

    assert "only zeros" in fails_with(check_read_mask, always_divide)

    def no_validation(path):
        with Image.open(path) as im:
            return (np.asarray(im) > 0).astype(np.uint8)

    msg = fails_with(check_read_mask, no_validation)
    assert "resized_bilinear.png" in msg and "raise a ValueError" in msg

    def as_bool(path):
        return read_mask(path).astype(bool)

    assert "dtype bool" in fails_with(check_read_mask, as_bool)
    assert "height and width are swapped" in fails_with(check_read_mask, lambda p: read_mask(p).T.copy())
    assert "PIL image" in fails_with(check_read_mask, lambda p: Image.open(p))


def test_read_mask_reports_unwritten_and_crashing_answers():
    def todo(path):
        raise NotImplementedError()

    assert "still raises NotImplementedError" in fails_with(check_read_mask, todo)
    assert "raised KeyError" in fails_with(check_read_mask, lambda p: {}["mask"])

    def asserts_instead(path):  # refuses the grey mask, but with the wrong kind of error
        with Image.open(path) as im:
            values = np.unique(np.asarray(im))
        assert set(values.tolist()) <= {0, 1, 255}, "grey mask"
        return read_mask(path)

    msg = fails_with(check_read_mask, asserts_instead)
    assert "raised AssertionError" in msg and "Raise a ValueError" in msg


# ---- exercise 2: decode an RLE by hand ---------------------------------------------------

def by_hand(rle, shape, order="C", offset=1):
    flat = np.zeros(shape[0] * shape[1], np.uint8)
    nums = [int(t) for t in rle.split()]
    for start, length in zip(nums[0::2], nums[1::2]):
        flat[start - offset: start - offset + length] = 1
    return flat.reshape(shape, order=order)


def test_rle_decode_accepts_a_right_answer_and_the_package_one(capsys):
    check_rle_decode(by_hand)
    check_rle_decode(rle_decode)
    assert capsys.readouterr().out.count("Correct:") == 2


def test_rle_decode_names_the_usual_mistakes():
    msg = fails_with(check_rle_decode, lambda r, s: by_hand(r, s, order="F"))
    assert "column by column" in msg and "row by row" in msg
    msg = fails_with(check_rle_decode, lambda r, s: by_hand(r, s, offset=0))
    assert "shifted by one pixel" in msg and "from 1" in msg
    assert "Reshape the flat array" in fails_with(check_rle_decode, lambda r, s: by_hand(r, s).ravel())

    def split_on_space(rle, shape):
        nums = [int(t) for t in rle.split(" ")]
        return by_hand(" ".join(map(str, nums)), shape)

    msg = fails_with(check_rle_decode, split_on_space)
    assert "raised ValueError" in msg and "rle.split() with no argument" in msg

    def one_run_only(rle, shape):  # forgets to loop over the pairs
        nums = rle.split()
        return by_hand(" ".join(nums[:2]), shape)

    msg = fails_with(check_rle_decode, one_run_only)
    assert "rle_decode_by_hand('1 1 6 1', (2, 3)) returned" in msg and "expected" in msg


# ---- exercise 3: split by car ------------------------------------------------------------

def car(image_id):
    return image_id.rsplit("_", 1)[0]


def sides(ids, val_cars):
    """(train_ids, val_ids) for a set of validation cars."""
    return [i for i in ids if car(i) not in val_cars], [i for i in ids if car(i) in val_cars]


def split_by_car(ids, val_fraction=0.2, seed=0):
    cars = sorted({car(i) for i in ids})
    return sides(ids, set(np.random.default_rng(seed).permutation(cars)[: round(val_fraction * len(cars))]))


def test_split_by_car_accepts_a_right_answer(capsys):
    check_split_by_car(split_by_car)
    assert capsys.readouterr().out.startswith("Correct:")


def test_split_by_car_explains_a_split_by_image():
    def by_image(ids, val_fraction=0.2, seed=0):
        val = set(np.random.default_rng(seed).permutation(sorted(ids))[: round(val_fraction * len(ids))])
        return [i for i in ids if i not in val], [i for i in ids if i in val]

    msg = fails_with(check_split_by_car, by_image)
    assert "cars have photos on both sides" in msg and "in training" in msg and "in validation" in msg


def test_split_by_car_explains_fraction_order_seed_and_shape_mistakes():
    def too_many(ids, val_fraction=0.2, seed=0):  # twice the cars asked for
        cars = sorted({car(i) for i in ids})
        return sides(ids, set(np.random.default_rng(seed).permutation(cars)[: int(2 * val_fraction * len(cars))]))

    msg = fails_with(check_split_by_car, too_many)
    assert "put 8 of 20 cars (40%) in validation" in msg and "about 4" in msg

    def unsorted(ids, val_fraction=0.2, seed=0):  # cars in the order the ids came in
        cars = list(dict.fromkeys(car(i) for i in ids))
        return sides(ids, set(np.random.default_rng(seed).permutation(cars)[: round(val_fraction * len(cars))]))

    assert "sort the car ids" in fails_with(check_split_by_car, unsorted)

    rng = np.random.default_rng(0)

    def shared_generator(ids, val_fraction=0.2, seed=0):  # ignores seed, draws from one generator
        cars = sorted({car(i) for i in ids})
        return sides(ids, set(rng.permutation(cars)[: round(val_fraction * len(cars))]))

    msg = fails_with(check_split_by_car, shared_generator)
    assert "different split when called again with the same seed" in msg

    def fixed(ids, val_fraction=0.2, seed=0):  # ignores its seed
        return split_by_car(ids, val_fraction, seed=0)

    assert "same cars for seeds 0 to 4" in fails_with(check_split_by_car, fixed)

    def car_ids(ids, val_fraction=0.2, seed=0):
        train, val = split_by_car(ids, val_fraction, seed)
        return sorted({car(i) for i in train}), sorted({car(i) for i in val})

    assert "not car ids" in fails_with(check_split_by_car, car_ids)
    assert "expected a pair" in fails_with(check_split_by_car, lambda ids, val_fraction=0.2, seed=0: ids)

    def loses_a_car(ids, val_fraction=0.2, seed=0):
        train, val = split_by_car(ids, val_fraction, seed)
        return train[16:], val

    assert "on neither side" in fails_with(check_split_by_car, loses_a_car)


def test_split_by_car_reports_unwritten_and_crashing_answers_briefly():
    def todo(ids, val_fraction=0.2, seed=0):
        raise NotImplementedError()

    assert "still raises NotImplementedError" in fails_with(check_split_by_car, todo)
    msg = fails_with(check_split_by_car, lambda ids, fraction=0.2, seed=0: ([], []))
    assert "split_by_car(ids, val_fraction=0.2, seed=0) raised TypeError" in msg and len(msg) < 300
    assert "should be a function" in fails_with(check_split_by_car, ([], []))
