"""Overlap-tile inference (course_utils.inference): mirroring, the tile grid, and the paper's
claim that tiling a valid U-Net equals one pass over the whole mirror-padded image."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.inference import predict_tiled
from course_utils.tiling import context_margin, covering_tile_size, mirror_pad, tile_grid
from course_utils.model import UNet


def lively(net: UNet) -> UNet:
    """He-initialised weights and random biases/BatchNorm statistics: outputs of order 1 that
    depend on the whole receptive field (PyTorch's default init shrinks a narrow U-Net's output
    to nearly a constant, and a constant would hide a misplaced tile)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.1, 0.1)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def valid_net(depth: int = 2) -> UNet:
    torch.manual_seed(depth)
    return lively(UNet(3, 1, base_channels=4, depth=depth, padding="valid", batch_norm=False))


def same_net(depth: int = 2, out_channels: int = 1) -> UNet:
    torch.manual_seed(10 + depth)
    return lively(UNet(3, out_channels, base_channels=4, depth=depth))


def whole_pass(net: UNet, image: torch.Tensor) -> torch.Tensor:
    """One forward pass over the image mirror-padded just enough to cover it, cropped back."""
    h, w = image.shape[-2:]
    m = context_margin(net.config["depth"]) if net.config["padding"] == "valid" else 0
    th, tw = covering_tile_size(net, h, w)
    with torch.no_grad():
        return net(mirror_pad(image, m, th - m - h, m, tw - m - w)[None])[0, :, :h, :w]


# ---------------------------------------------------------------------------- mirroring


@pytest.mark.parametrize("pads", [(2, 3, 1, 4), (0, 0, 0, 0), (9, 12, 17, 30)])
def test_mirror_pad_matches_numpy_reflect_even_past_the_image_side(pads):
    image = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 5, 7)
    top, bottom, left, right = pads
    expected = np.pad(image.numpy(), ((0, 0), (top, bottom), (left, right)), mode="reflect")
    assert torch.equal(mirror_pad(image, *pads), torch.from_numpy(expected))


def test_mirror_pad_of_a_single_row_repeats_it_and_refuses_negative_pads():
    row = torch.tensor([[[1.0, 2.0, 3.0]]])
    assert mirror_pad(row, 2, 1, 0, 0).tolist() == [[[1.0, 2.0, 3.0]] * 4]
    with pytest.raises(ValueError, match="0 or more"):
        mirror_pad(row, -1, 0, 0, 0)


# ---------------------------------------------------------------------------- the grid


@pytest.mark.parametrize("padding, tile, overlap", [("valid", 52, None), ("valid", 60, 8), ("same", 32, None),
                                                    ("same", 24, 4)])
def test_keep_boxes_cover_every_pixel_once_and_inputs_sit_on_the_pooling_grid(padding, tile, overlap):
    net = valid_net() if padding == "valid" else same_net()
    h, w = 37, 53
    tiles = tile_grid(h, w, net, tile, overlap)
    hits = np.zeros((h, w), int)
    margin = (tile - net.output_size(tile, tile)[0]) // 2
    for t in tiles:
        k, o, i = t.keep_box, t.output_box, t.input_box
        hits[k.top:k.bottom, k.left:k.right] += 1
        assert (i.height, i.width) == (tile, tile) and (o.height, o.width) == net.output_size(tile, tile)
        assert (o.top - i.top, o.left - i.left) == (margin, margin)
        assert o.top <= k.top < k.bottom <= o.bottom and o.left <= k.left < k.right <= o.right
        assert (i.top + margin) % 4 == 0 and (i.left + margin) % 4 == 0  # 2**depth = 4
    assert (hits == 1).all()


def test_same_padding_keeps_tile_centres_by_default():
    tiles = tile_grid(100, 100, same_net(), 32)  # overlap 8 (a quarter, a multiple of 2**(depth+1))
    inner = [t for t in tiles if t.keep_box.top > 0 and t.keep_box.left > 0 and t.keep_box.bottom < 100
             and t.keep_box.right < 100]
    assert inner, "the test needs interior tiles"
    for t in inner:
        k, o = t.keep_box, t.output_box
        assert (k.top - o.top, o.bottom - k.bottom) == (4, 4) and (k.left - o.left, o.right - k.right) == (4, 4)


def test_tile_and_overlap_errors_say_what_works():
    with pytest.raises(ValueError, match=r"tile_size 50 .*nearest tile sizes that work: 48 or 52"):
        tile_grid(100, 100, valid_net(), 50)
    with pytest.raises(ValueError, match=r"tile_size 30 .*28 or 32"):
        tile_grid(100, 100, same_net(), 30)
    with pytest.raises(ValueError, match=r"use tile_size 100 or more"):  # depth 3: 92 gives a 4-pixel output
        tile_grid(200, 200, valid_net(3), 92)
    with pytest.raises(ValueError, match=r"overlap 12 leaves no room.*from 0 to 8"):
        tile_grid(100, 100, valid_net(), 52, overlap=12)
    with pytest.raises(TypeError, match="course U-Net"):
        tile_grid(10, 10, nn.Conv2d(3, 1, 1), 8)


# ---------------------------------------------------------------------------- predictions


@pytest.mark.parametrize("depth, tile, overlap", [(2, 52, None), (2, 64, 8), (3, 124, None), (3, (108, 132), None)])
def test_valid_net_tiled_equals_one_pass_over_the_mirror_padded_image(depth, tile, overlap):
    net = valid_net(depth)
    image = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(1))
    tiled = predict_tiled(net, image, tile, overlap)
    assert len(tile_grid(37, 53, net, tile, overlap)) > 1, "the test needs several tiles"
    assert tiled.shape == (1, 37, 53) and tiled.dtype == torch.float32
    whole = whole_pass(net, image)
    assert whole.std() > 0.1, "the test needs an output that varies"
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-4)


def test_same_net_tiles_agree_with_the_whole_image_where_their_context_is_complete():
    net = same_net(2, out_channels=2)
    image = torch.rand(3, 100, 120, generator=torch.Generator().manual_seed(2))
    assert context_margin(2) + 2**2 - 1 == 23  # how far a pixel's receptive field reaches, at most
    with torch.no_grad():
        whole = net(image[None])[0]  # zero padding at the image border: compare 24 px inside it
    exact = predict_tiled(net, image, 88, overlap=48)  # keeps 24 px off each tile border
    inside = (slice(None), slice(24, -24), slice(24, -24))
    torch.testing.assert_close(exact[inside], whole[inside], rtol=0, atol=1e-4)
    assert whole[inside].std() > 0.1, "the test needs an output that varies"
    short = predict_tiled(net, image, 88, overlap=32)  # keeps only 16 < reach px: tile borders show
    assert (short - whole)[inside].abs().max() > 1e-3


def test_odd_sizes_and_inputs_of_every_accepted_form():
    net = same_net()
    image = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(3))
    out = predict_tiled(net, image, 16)
    assert out.shape == (1, 37, 53)
    torch.testing.assert_close(predict_tiled(net, image[None], 16), out)
    as_uint8 = (image * 255).round().to(torch.uint8)
    from_array = predict_tiled(net, as_uint8.permute(1, 2, 0).numpy(), 16)
    torch.testing.assert_close(from_array, predict_tiled(net, as_uint8.float() / 255, 16))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        predict_tiled(net, torch.rand(2, 3, 37, 53), 16)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        predict_tiled(net, torch.rand(1, 37, 53), 16)


def test_memory_stays_bounded_by_the_tile_and_the_batch():
    net = same_net()
    seen = []
    hook = net.register_forward_hook(lambda _m, inputs, _out: seen.append(tuple(inputs[0].shape)))
    try:
        image = torch.rand(3, 300, 420)
        predict_tiled(net, image, 32, batch_size=3)
    finally:
        hook.remove()
    n_tiles = len(tile_grid(300, 420, net, 32))
    assert len(seen) == math.ceil(n_tiles / 3) and n_tiles > 100
    assert all(b <= 3 and (h, w) == (32, 32) for b, _c, h, w in seen)


def test_model_mode_is_restored_and_no_gradients_are_kept():
    net = same_net()
    net.train()
    out = predict_tiled(net, torch.rand(3, 20, 20), 16)
    assert net.training and not out.requires_grad
    running = net.inc[1].running_mean.clone()
    predict_tiled(net, torch.rand(3, 20, 20), 16)
    assert torch.equal(running, net.inc[1].running_mean), "BatchNorm statistics must not change (eval mode)"


def test_bfloat16_autocast_returns_float32_close_to_float32():
    net = same_net()
    image = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(4))
    low = predict_tiled(net, image, 32, amp_dtype=torch.bfloat16)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, predict_tiled(net, image, 32), rtol=0.05, atol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tiles_run_on_the_model_device_and_results_come_back_to_the_cpu():
    net = valid_net()
    image = torch.rand(3, 37, 53)
    on_gpu = predict_tiled(net.cuda(), image, 52)
    assert on_gpu.device.type == "cpu"
    torch.testing.assert_close(on_gpu, whole_pass(net.cpu(), image), rtol=0, atol=1e-4)
