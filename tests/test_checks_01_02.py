"""The exercise checks of lessons 01-02 accept right answers and explain wrong ones in words."""
import torch
from torch import nn

from course_utils import DoubleConv, Down
from course_utils.checks import (
    check_contracting_sizes,
    check_conv_output_size,
    check_double_conv,
    check_encoder,
    check_receptive_field,
    check_valid_sizes,
)
from course_utils.checks.lesson02 import contracting_sizes_reference
from conftest import fails_with


# ---- lesson 01 ---------------------------------------------------------------------------

def conv_output_size(n, kernel_size=3, padding=0, stride=1):
    return (n + 2 * padding - kernel_size) // stride + 1


def test_conv_output_size_accepts_the_formula_and_agrees_with_torch(capsys):
    check_conv_output_size(conv_output_size)
    assert capsys.readouterr().out.startswith("Correct:")
    for n, k, p, s in [(5, 3, 0, 1), (64, 3, 1, 2), (7, 3, 0, 2), (13, 5, 1, 3)]:
        y = nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n))
        assert y.shape[-1] == conv_output_size(n, k, p, s)


def test_conv_output_size_explains_wrong_answers():
    msg = fails_with(check_conv_output_size, lambda n, kernel_size=3, padding=0, stride=1: n)
    assert "conv_output_size(5, kernel_size=3, padding=0, stride=1) returned 5; expected 3" in msg
    assert "loses one pixel on each side" in msg
    no_stride = lambda n, kernel_size=3, padding=0, stride=1: n + 2 * padding - kernel_size + 1  # noqa: E731
    assert "stride 2 keeps every second position" in fails_with(check_conv_output_size, no_stride)
    true_div = lambda n, kernel_size=3, padding=0, stride=1: (n + 2 * padding - kernel_size) / stride + 1  # noqa: E731
    assert "float" in fails_with(check_conv_output_size, true_div) and "//" in fails_with(check_conv_output_size, true_div)


def test_unwritten_or_crashing_answers_are_named():
    def todo(n, kernel_size=3, padding=0, stride=1):
        raise NotImplementedError()

    assert "still raises NotImplementedError" in fails_with(check_conv_output_size, todo)
    assert "raised ZeroDivisionError" in fails_with(check_conv_output_size, lambda n, **kw: n // 0)
    assert "should be a function" in fails_with(check_conv_output_size, 570)


def test_receptive_field():
    check_receptive_field(lambda n: 2 * n + 1)
    msg = fails_with(check_receptive_field, lambda n: min(2 * n + 1, 7))  # stops growing after 3 convs
    assert "receptive_field(4) returned 7; expected 9" in msg and "widens the field by 2" in msg
    assert "start from the single pixel" in fails_with(check_receptive_field, lambda n: 2 * n)
    assert "not 3" in fails_with(check_receptive_field, lambda n: 3 * n)


def hand_double_conv(in_channels, out_channels, padding="same", bias=False, batch_norm=True, relu=True):
    pad = 1 if padding == "same" else 0
    layers = []
    for c in (in_channels, out_channels):
        layers.append(nn.Conv2d(c, out_channels, 3, padding=pad, bias=bias))
        layers += [nn.BatchNorm2d(out_channels)] if batch_norm else []
        layers += [nn.ReLU()] if relu else []
    return nn.Sequential(*layers)


def test_double_conv_accepts_a_hand_built_block_and_the_package_one(capsys):
    check_double_conv(hand_double_conv)
    check_double_conv(lambda i, o, padding="same": DoubleConv(i, o, padding))
    assert capsys.readouterr().out.count("Correct:") == 2


def test_double_conv_explains_wrong_blocks():
    msg = fails_with(check_double_conv, lambda i, o, padding="same": hand_double_conv(i, o, padding, bias=True))
    assert "2,832 parameters; expected 2,800" in msg and "bias=True with BatchNorm" in msg
    msg = fails_with(check_double_conv, lambda i, o, padding="same": hand_double_conv(i, o, "same"))
    assert "(2, 16, 16, 16)" in msg and "maps (2, 3, 20, 20) to (2, 16, 20, 20)" in msg and "valid" in msg
    msg = fails_with(check_double_conv, lambda i, o, padding="same": hand_double_conv(i, o, padding, batch_norm=False))
    assert "0 nn.BatchNorm2d layers; expected 2" in msg
    msg = fails_with(check_double_conv, lambda i, o, padding="same": hand_double_conv(i, o, padding, relu=False))
    assert "negative values" in msg and "ReLU" in msg
    one_conv = lambda i, o, padding="same": nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU())  # noqa: E731
    assert "1 nn.Conv2d layers; expected 2" in fails_with(check_double_conv, one_conv)
    assert "expected an nn.Module" in fails_with(check_double_conv, lambda i, o, padding="same": [i, o])


# ---- lesson 02 ---------------------------------------------------------------------------

def test_contracting_sizes_accepts_the_reference(capsys):
    check_contracting_sizes(contracting_sizes_reference)
    assert "572 -> 570 -> 568 -> 284" in capsys.readouterr().out


def test_contracting_sizes_explains_wrong_lists():
    def one_short(n, depth=4):
        return contracting_sizes_reference(n, depth)[:-1]

    msg = fails_with(check_contracting_sizes, one_short)
    assert "returned 14 sizes; expected 15" in msg

    def same_padding(n, depth=4):
        sizes = [n]
        for level in range(depth + 1):
            if level:
                n //= 2
                sizes.append(n)
            sizes += [n, n]
        return sizes

    msg = fails_with(check_contracting_sizes, same_padding)
    assert "position 1 (after the first 3x3 conv of level 0 (-2)) is 572; expected 570" in msg

    def never_raises(n, depth=4):
        sizes = [n]
        for level in range(depth + 1):
            if level:
                n //= 2
                sizes.append(n)
            n -= 2
            sizes.append(n)
            n -= 2
            sizes.append(n)
        return sizes

    msg = fails_with(check_contracting_sizes, never_raises)
    assert "contracting_sizes(570, depth=4)" in msg and "should raise ValueError" in msg
    assert "279 is odd before pool 2" in msg

    def raises_type_error(n, depth=4):
        if n == 570:
            raise TypeError("odd")
        return contracting_sizes_reference(n, depth)

    assert "raised TypeError: odd; expected a ValueError" in fails_with(check_contracting_sizes, raises_type_error)
    assert "expected a list of ints" in fails_with(check_contracting_sizes, lambda n, depth=4: "572 570")


class Encoder(nn.Module):
    def __init__(self, in_channels, base_channels=64, depth=4, padding="same", skip_last=False):
        super().__init__()
        self.inc = DoubleConv(in_channels, base_channels, padding)
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1], padding) for i in range(depth))
        self.skip_last = skip_last

    def forward(self, x):
        feats = [self.inc(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats[:-1] if self.skip_last else feats


def test_encoder_accepts_a_down_block_encoder(capsys):
    check_encoder(Encoder)
    assert capsys.readouterr().out.startswith("Correct:")


def test_encoder_explains_wrong_encoders():
    msg = fails_with(check_encoder, lambda *a, **kw: Encoder(*a, **kw, skip_last=True))
    assert "returned 3 feature maps; expected depth + 1 = 4" in msg

    class OnlyBottom(Encoder):
        def forward(self, x):
            return super().forward(x)[-1]

    assert "returned one tensor of shape (2, 32, 4, 4)" in fails_with(check_encoder, OnlyBottom)

    class NoDoubling(nn.Module):
        def __init__(self, in_channels, base_channels=64, depth=4, padding="same"):
            super().__init__()
            self.inc = DoubleConv(in_channels, base_channels, padding)
            self.downs = nn.ModuleList(Down(base_channels, base_channels, padding) for _ in range(depth))

    msg = fails_with(check_encoder, NoDoubling)
    assert "parameters; expected" in msg and "[4, 8, 16, 32] channels" in msg

    class WrongPadding(Encoder):
        def __init__(self, in_channels, base_channels=64, depth=4, padding="same"):
            super().__init__(in_channels, base_channels, depth, "same")

    msg = fails_with(check_encoder, WrongPadding)
    assert "feature map 0 has shape (2, 4, 188, 188); expected (2, 4, 184, 184)" in msg
    assert "each DoubleConv takes 4 px off" in msg


def test_valid_sizes():
    candidates = [252, 256, 388, 512, 570, 572, 636, 1024]
    check_valid_sizes({252, 572, 636}, candidates)
    msg = fails_with(check_valid_sizes, {252, 572, 636, 512}, candidates)
    assert msg.startswith("512 does not work: 512 -> 510 -> 508 -> 254 -> 252 -> 250 -> 125")
    assert "121 is odd before pool 3" in msg
    msg = fails_with(check_valid_sizes, {252, 572}, candidates)
    assert "636 works but is missing" in msg and "12 mod 16" in msg
    assert "not among the candidates" in fails_with(check_valid_sizes, {572, 188}, candidates)
    assert "set of sizes" in fails_with(check_valid_sizes, 572, candidates)


def test_encoder_asks_for_unet_names():
    class OtherNames(nn.Module):
        def __init__(self, in_channels, base_channels=64, depth=4, padding="same"):
            super().__init__()
            inner = Encoder(in_channels, base_channels, depth, padding)
            self.first, self.blocks = inner.inc, inner.downs

    msg = fails_with(check_encoder, OtherNames)
    assert "not UNet's names" in msg and "self.inc" in msg and "self.downs" in msg


def test_encoder_without_forward_is_named():
    class NoForward(Encoder):
        def forward(self, x):
            raise NotImplementedError()

    assert "forward raises NotImplementedError" in fails_with(check_encoder, NoForward)
