"""The U-Net's facts from the paper and the design, and its errors for sizes it cannot take."""
import pytest
import torch
from torch import nn

from course_utils import DoubleConv, Down, UNet, Up, count_parameters, trace_shapes, valid_input_sizes
from course_utils.model import center_crop, nearest_valid_sizes, output_length


def paper_unet() -> UNet:
    return UNet(1, 2, padding="valid", batch_norm=False)


def conv_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def test_paper_network_counts():
    net = paper_unet()
    assert count_parameters(net) == 31_030_658
    assert len(conv_layers(net)) == 23  # 18 3x3 convs, 4 up-convs, one 1x1 head
    assert all(m.bias is not None for m in conv_layers(net))


def test_default_network_counts_and_no_bias_before_batchnorm():
    net = UNet(3, 1)
    assert count_parameters(net) == 31_037_633
    three_by_three = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(three_by_three) == 18 and all(m.bias is None for m in three_by_three)


def test_paper_network_maps_572_to_388():
    net = paper_unet().eval()
    with torch.no_grad():
        out = net(torch.randn(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388)
    assert net.output_size(572, 572) == (388, 388)


def test_trace_matches_figure_1():
    rows = trace_shapes(paper_unet(), 572)
    sizes = {name: shape[1:] for name, shape in rows}
    assert sizes["inc"] == (64, 568, 568)
    assert sizes["down1"] == (128, 280, 280)
    assert sizes["down4"] == (1024, 28, 28)
    assert sizes["up1"] == (512, 52, 52)
    assert sizes["up4"] == (64, 388, 388)
    assert sizes["head"] == (2, 388, 388)
    assert [r[0] for r in rows] == ["input", "inc", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4", "head"]


@pytest.mark.parametrize("padding,upsampling,bn", [("same", "transpose", True), ("same", "bilinear", False),
                                                   ("valid", "bilinear", True)])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_variants_run_and_output_the_predicted_size(padding, upsampling, bn, depth):
    size = valid_input_sizes(depth, padding, limit=200)[-1]
    net = UNet(3, 4, base_channels=4, depth=depth, padding=padding, upsampling=upsampling, batch_norm=bn)
    out = net(torch.randn(2, 3, size, size + (2**depth if padding == "same" else 0)))
    assert out.shape[:2] == (2, 4)
    assert tuple(out.shape[-2:]) == net.output_size(size, size + (2**depth if padding == "same" else 0))
    if padding == "same":
        assert out.shape[-1] == size + 2**depth


def test_valid_sizes_are_12_mod_16_at_depth_4():
    sizes = valid_input_sizes(4, "valid", limit=1000)
    assert 572 in sizes and 570 not in sizes
    assert all(s % 16 == 12 for s in sizes) and sizes[0] == 188
    assert sizes == list(range(188, 1001, 16))


def test_same_sizes_are_multiples_of_two_to_the_depth():
    assert valid_input_sizes(3, "same", limit=64) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert output_length(100, 4, "same") is None and output_length(96, 4, "same") == 96


def test_bad_size_names_the_nearest_sizes_that_work():
    with pytest.raises(ValueError, match=r"570.*556 or 572"):
        paper_unet()(torch.zeros(1, 1, 570, 572))
    with pytest.raises(ValueError, match=r"width of 100.*96 or 112"):
        UNet(3, 1, base_channels=4)(torch.zeros(1, 3, 96, 100))
    assert nearest_valid_sizes(100, 4, "valid") == (None, 188)


def test_wrong_channels_and_unbatched_input_are_explained():
    with pytest.raises(ValueError, match="3 input channels, got 1"):
        UNet(3, 1, base_channels=4)(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="unsqueeze"):
        UNet(3, 1, base_channels=4)(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="padding"):
        UNet(padding="reflect")


def test_blocks_are_the_pieces_of_the_unet():
    net = UNet(3, 1, base_channels=8, depth=2)
    assert isinstance(net.inc, DoubleConv) and all(isinstance(d, Down) for d in net.downs)
    assert all(isinstance(u, Up) for u in net.ups)
    x = torch.randn(1, 8, 20, 20)
    assert DoubleConv(8, 16, padding="valid")(x).shape == (1, 16, 16, 16)
    assert Down(8, 16)(x).shape == (1, 16, 10, 10)
    assert Up(16, 8, padding="valid")(torch.randn(1, 16, 10, 10), torch.randn(1, 8, 24, 24)).shape == (1, 8, 16, 16)


def test_center_crop_is_a_view_and_a_no_op_when_sizes_match():
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    assert center_crop(x, (8, 8)) is x
    crop = center_crop(x, (4, 4))
    assert crop.shape == (1, 1, 4, 4) and crop[0, 0, 0, 0] == 18 and crop.data_ptr() != 0
    assert crop.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()  # no copy


def test_gradients_reach_every_parameter():
    net = UNet(3, 1, base_channels=4, depth=3)
    net(torch.randn(2, 3, 32, 32)).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_config_rebuilds_the_same_architecture():
    net = UNet(3, 5, base_channels=8, depth=3, upsampling="bilinear")
    twin = UNet(**net.config)
    assert twin.load_state_dict(net.state_dict()) is not None
    assert count_parameters(twin) == count_parameters(net)


def test_two_head_unet_shares_everything_but_one_1x1_conv():
    from course_utils.checkpoint import model_from_config
    from course_utils.model import TwoHeadUNet

    seg_only = UNet(3, 13, base_channels=8, depth=3)
    both = TwoHeadUNet(3, 13, base_channels=8, depth=3)
    assert count_parameters(both) - count_parameters(seg_only) == 8 + 1  # the depth head: 8 weights, 1 bias
    out = both.eval()(torch.rand(2, 3, 32, 48))
    assert out["seg"].shape == (2, 13, 32, 48) and out["depth"].shape == (2, 1, 32, 48)
    assert (out["depth"] > 0).all() and 1 < out["depth"].median() < 6  # starts near the typical 2.5 m
    rebuilt = model_from_config(both.config)
    assert type(rebuilt) is TwoHeadUNet and rebuilt.config == both.config
    assert type(model_from_config(seg_only.config)) is UNet
