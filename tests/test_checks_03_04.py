"""The exercise checks of lessons 03-04 accept right answers and explain wrong ones in words."""
import torch
import torch.nn.functional as F

from course_utils.checks import (
    check_center_crop,
    check_crop_and_concat,
    check_double_conv_parameters,
    check_up_conv_by_hand,
    check_upsampling_parameters,
    check_valid_output_size,
)
from course_utils.model import UNet, center_crop, count_parameters, output_length
from conftest import fails_with


def accepted(check, answer, capsys) -> None:
    check(answer)
    assert capsys.readouterr().out.startswith("Correct:")


# ---- lesson 03, exercise 1: up-convolution by hand ----------------------------------------

def up_conv(x, weight, bias):
    c_in, h, w = x.shape
    out = torch.zeros(weight.shape[1], 2 * h, 2 * w)
    for i in range(h):
        for j in range(w):
            out[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = (x[:, i, j, None, None, None] * weight).sum(0)
    return out + bias[:, None, None]


def test_up_conv_accepts_loops_and_torch(capsys):
    accepted(check_up_conv_by_hand, up_conv, capsys)
    accepted(check_up_conv_by_hand, lambda x, w, b: F.conv_transpose2d(x[None], w, b, stride=2)[0], capsys)


def test_up_conv_explains_mistakes():
    assert "off by the bias" in fails_with(check_up_conv_by_hand, lambda x, w, b: up_conv(x, w, b) - b[:, None, None])
    flipped = lambda x, w, b: up_conv(x, w.flip(-1, -2), b)  # noqa: E731
    assert "upside down and mirrored" in fails_with(check_up_conv_by_hand, flipped)
    assert "swapped" in fails_with(check_up_conv_by_hand, lambda x, w, b: up_conv(x, w.transpose(-1, -2), b))
    assert "only input channel 0" in fails_with(check_up_conv_by_hand, lambda x, w, b: up_conv(x[:1], w[:1], b))
    msg = fails_with(check_up_conv_by_hand, lambda x, w, b: up_conv(x, w, b) * 1.5)
    assert "nn.ConvTranspose2d gives" in msg and "weight[c, " in msg


def test_up_conv_explains_shapes_and_missing_code():
    in_channels = lambda x, w, b: torch.zeros(x.shape[0], 2 * x.shape[1], 2 * x.shape[2])  # noqa: E731
    msg = fails_with(check_up_conv_by_hand, in_channels)
    assert "(2, 4, 6)" in msg and "weight.shape[1]" in msg
    stride1 = lambda x, w, b: F.conv_transpose2d(x[None], w, b, stride=1)[0]  # noqa: E731
    assert "stride-1" in fails_with(check_up_conv_by_hand, stride1)
    assert "expected a torch.Tensor" in fails_with(check_up_conv_by_hand, lambda x, w, b: x.tolist())

    def todo(x, w, b):
        raise NotImplementedError()

    assert "still raises NotImplementedError" in fails_with(check_up_conv_by_hand, todo)


# ---- lesson 03, exercise 2: parameters of the upsampling layer ------------------------------

def test_upsampling_parameters(capsys):
    right = lambda c, mode: c * (c // 2) * (4 if mode == "transpose" else 1) + c // 2  # noqa: E731
    accepted(check_upsampling_parameters, right, capsys)
    assert "left out the biases" in fails_with(check_upsampling_parameters, lambda c, m: right(c, m) - c // 2)
    no_half = lambda c, m: c * c * (4 if m == "transpose" else 1) + c  # noqa: E731
    assert "halves the channels: 1024 in, 512 out" in fails_with(check_upsampling_parameters, no_half)
    one_weight = lambda c, m: c * (c // 2) + c // 2  # noqa: E731
    assert "4 weights for each" in fails_with(check_upsampling_parameters, one_weight)
    four_weights = lambda c, m: c * (c // 2) * 4 + c // 2  # noqa: E731
    msg = fails_with(check_upsampling_parameters, four_weights)
    assert "upsampling_parameters(1024, 'bilinear') returned 2,097,664; expected 524,800" in msg and "1x1 conv" in msg
    assert "whole number" in fails_with(check_upsampling_parameters, lambda c, m: right(c, m) / 1)


# ---- lesson 03, exercise 3: center crop ----------------------------------------------------

def test_center_crop(capsys):
    def crop(x, size):
        top, left = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
        return x[..., top : top + size[0], left : left + size[1]]

    accepted(check_center_crop, crop, capsys)
    accepted(check_center_crop, center_crop, capsys)
    corner = lambda x, size: x[..., : size[0], : size[1]]  # noqa: E731
    msg = fails_with(check_center_crop, corner)
    assert "starts at row 0, column 0" in msg and "row 4, column 4" in msg

    def round_up(x, size):
        top, left = -(-(x.shape[-2] - size[0]) // 2), -(-(x.shape[-1] - size[1]) // 2)
        return x[..., top : top + size[0], left : left + size[1]]

    msg = fails_with(check_center_crop, round_up)
    assert "row 3, column 3" in msg and "row 2, column 2" in msg and "round the offset down" in msg
    assert "swapped" in fails_with(check_center_crop, lambda x, size: crop(x, size[::-1]))
    assert "cut only the last two" in fails_with(check_center_crop, lambda x, size: x[0, 0, : size[0], : size[1]])


# ---- lesson 04, exercise 1: crop and concatenate -------------------------------------------

def test_crop_and_concat(capsys):
    right = lambda skip, x: torch.cat([center_crop(skip, x.shape[-2:]), x], dim=1)  # noqa: E731
    accepted(check_crop_and_concat, right, capsys)
    assert "crop the skip to x's size first" in fails_with(check_crop_and_concat, lambda s, x: torch.cat([s, x], 1))
    reversed_order = lambda s, x: torch.cat([x, center_crop(s, x.shape[-2:])], 1)  # noqa: E731
    assert "order [x, skip]" in fails_with(check_crop_and_concat, reversed_order)
    corner = lambda s, x: torch.cat([s[..., : x.shape[-2], : x.shape[-1]], x], 1)  # noqa: E731
    assert "not the centre window" in fails_with(check_crop_and_concat, corner)
    on_height = lambda s, x: torch.cat([center_crop(s, x.shape[-2:]), x], 2)  # noqa: E731
    msg = fails_with(check_crop_and_concat, on_height)
    assert "(1, 4, 112, 56)" in msg and "dim=1" in msg
    assert "skip's, then x's" in fails_with(check_crop_and_concat, lambda s, x: x)


# ---- lesson 04, exercise 2: output size of the unpadded U-Net ------------------------------

def test_valid_output_size(capsys):
    accepted(check_valid_output_size, lambda n, depth: output_length(n, depth, "valid"), capsys)
    for n in (572, 188, 300):  # the check's reference agrees with the real network
        assert UNet(1, 2, base_channels=2, padding="valid").output_size(n, n)[0] == output_length(n, 4, "valid")

    def without_none(n, depth):
        for _ in range(depth):
            n = (n - 4) // 2
        n -= 4
        for _ in range(depth):
            n = 2 * n - 4
        return n

    msg = fails_with(check_valid_output_size, without_none)
    assert "valid_output_size(570, depth=4) returned" in msg and "expected None" in msg and "odd" in msg

    def one_px_per_conv(n, depth):
        out = output_length(n, depth, "valid")
        if out is None:
            return None
        for _ in range(depth):
            n = (n - 2) // 2
        n -= 2
        for _ in range(depth):
            n = 2 * n - 2
        return n

    msg = fails_with(check_valid_output_size, one_px_per_conv)
    assert "expected 388" in msg and "572 -> 568 (convs) -> 284 (pool)" in msg and "two 3x3 convs" in msg

    def no_bottleneck(n, depth):
        out = output_length(n, depth, "valid")
        return None if out is None else out + 2**depth * 4

    assert "skipped the bottleneck" in fails_with(check_valid_output_size, no_bottleneck)


# ---- lesson 04, exercise 3: parameters of a DoubleConv -------------------------------------

def double_conv_parameters(c_in, c_out, batch_norm):
    weights = 9 * c_in * c_out + 9 * c_out * c_out
    return weights + (4 * c_out if batch_norm else 2 * c_out)


def test_double_conv_parameters(capsys):
    accepted(check_double_conv_parameters, double_conv_parameters, capsys)
    # the formula adds up to the paper's 31,030,658
    widths = [64, 128, 256, 512, 1024]
    total = double_conv_parameters(1, 64, False) + sum(double_conv_parameters(a, b, False) for a, b in zip(widths, widths[1:]))
    total += sum(c * (c // 2) * 4 + c // 2 + double_conv_parameters(c, c // 2, False) for c in widths[1:]) + 64 * 2 + 2
    assert total == count_parameters(UNet(1, 2, padding="valid", batch_norm=False)) == 31_030_658

    no_bias = lambda a, b, bn: 9 * a * b + 9 * b * b + (2 * b if bn else 0)  # noqa: E731
    assert "Add the biases" in fails_with(check_double_conv_parameters, no_bias)
    bias_and_bn = lambda a, b, bn: 9 * a * b + 9 * b * b + 2 * b + (4 * b if bn else 0)  # noqa: E731
    assert "carry no bias" in fails_with(check_double_conv_parameters, bias_and_bn)
    running_stats = lambda a, b, bn: double_conv_parameters(a, b, bn) + (4 * b if bn else 0)  # noqa: E731
    assert "buffers" in fails_with(check_double_conv_parameters, running_stats)
    c_in_twice = lambda a, b, bn: 2 * 9 * a * b + (4 * b if bn else 2 * b)  # noqa: E731
    msg = fails_with(check_double_conv_parameters, c_in_twice)
    assert "double_conv_parameters(1, 64, batch_norm=False) returned 1,280; expected 37,568" in msg
    assert "c_out input channels" in msg
    one_weight = lambda a, b, bn: double_conv_parameters(a, b, bn) - 8 * (a * b + b * b)  # noqa: E731
    assert "9 weights per" in fails_with(check_double_conv_parameters, one_weight)
