"""One palette for errors (course_utils.viz.ERROR_COLOURS): false positives and false negatives
apart for colour-blind readers too, no NYUv2 class colour near any error colour, and every
picture that draws errors (the viewer, error_overlay) using it.

Distances here are CIEDE2000 from scikit-image, an implementation independent of the package's
own CIE76 `colour_distance`; colour-blind vision is simulated with Machado, Oliveira and
Fernandes' (2009) matrices for full deuteranopia and protanopia (linear RGB).
"""
import numpy as np
import pytest
import torch

from course_utils.data.nyuv2_classes import CLASS_NAMES_13, CLASS_NAMES_40
from course_utils.viewer import FALSE_NEGATIVE, FALSE_POSITIVE, WRONG_LABEL
from course_utils.viz import ERROR_COLOURS, class_palette, colour_distance, error_overlay

color = pytest.importorskip("skimage.color", reason="scikit-image measures the colour distances")

VISIONS = {
    "normal": np.eye(3),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
}


def seen(rgb, vision: str) -> np.ndarray:
    """sRGB (0-255) colours as a reader with this vision sees them, as Lab."""
    c = np.asarray(rgb, np.float64).reshape(-1, 3) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    linear = np.clip(linear @ VISIONS[vision].T, 0, 1)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return color.rgb2lab(srgb[None])[0]


def delta_e(a, b, vision: str = "normal") -> np.ndarray:
    """(len(a), len(b)) CIEDE2000 distances."""
    la, lb = seen(a, vision), seen(b, vision)
    return color.deltaE_ciede2000(la[:, None], lb[None])


def test_the_viewer_draws_errors_in_the_one_palette():
    assert (FALSE_POSITIVE, FALSE_NEGATIVE, WRONG_LABEL) == (
        ERROR_COLOURS["false_positive"], ERROR_COLOURS["false_negative"], ERROR_COLOURS["wrong_label"])


@pytest.mark.parametrize("vision", VISIONS)
def test_false_positives_and_false_negatives_differ_for_every_reader(vision):
    d = delta_e([ERROR_COLOURS["false_positive"]], [ERROR_COLOURS["false_negative"]], vision)[0, 0]
    assert d > 40, f"{vision}: false positive and false negative are only {d:.1f} apart (CIEDE2000)"


@pytest.mark.parametrize("names", [CLASS_NAMES_13, CLASS_NAMES_40], ids=["13 classes", "40 classes"])
def test_no_class_colour_is_near_an_error_colour(names):
    palette = class_palette(len(names))
    errors = list(ERROR_COLOURS.items())
    d = delta_e(palette, [c for _, c in errors])
    k, e = np.unravel_index(d.argmin(), d.shape)
    assert d.min() > 15, (f"class {names[k]!r} {tuple(palette[k])} is {d.min():.1f} (CIEDE2000) from the error "
                          f"colour {errors[e][0]} {errors[e][1]}")
    # the wrong-label colour shares the errors panel's neighbour pictures with the classes: apart for all readers
    for vision in VISIONS:
        d = delta_e(palette, [ERROR_COLOURS["wrong_label"], (0, 0, 0)], vision)
        assert d.min() > 12, f"{vision}: class {names[d.min(axis=1).argmin()]!r} is near wrong-label or ignored"


def test_class_colours_differ_from_each_other_and_the_palette_is_fixed():
    palette = class_palette(40)
    d = delta_e(palette, palette)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 5 and (palette[:13] == class_palette(13)).all()
    assert len({tuple(c) for c in class_palette(120)}) == 120  # many classes still get distinct colours


def test_the_package_distance_agrees_that_errors_and_classes_are_apart():
    palette = class_palette(40).astype(np.float64)
    errors = np.array(list(ERROR_COLOURS.values()), np.float64)
    assert colour_distance(palette, errors, colour_blind=False).min() >= 30
    near = colour_distance(np.array([[44.0, 160, 44]]), np.array([ERROR_COLOURS["false_positive"]], np.float64))
    assert near[0, 0] < colour_distance(np.array([[44.0, 160, 44]]), np.array([ERROR_COLOURS["false_positive"]],
                                                                              np.float64), colour_blind=False)[0, 0]


def test_error_overlay_paints_false_positives_and_negatives_on_the_dimmed_photo():
    image = torch.full((3, 4, 5), 0.8)
    truth = torch.zeros(1, 4, 5, dtype=torch.bool)
    truth[0, :2] = True
    guess = torch.zeros(1, 4, 5, dtype=torch.bool)
    guess[0, 1:3] = True
    rgb = error_overlay(image, truth, guess)
    assert rgb.shape == (4, 5, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert np.allclose(rgb[2], np.array(ERROR_COLOURS["false_positive"]) / 255)
    assert np.allclose(rgb[0], np.array(ERROR_COLOURS["false_negative"]) / 255)
    assert np.allclose(rgb[1], 0.4, atol=0.01) and np.allclose(rgb[3], 0.4, atol=0.01)  # right: the photo, dimmed
