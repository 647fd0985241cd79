"""The exercise checks of lesson 09 accept right answers and explain wrong ones in words."""
import torch
import torch.nn.functional as F

from course_utils import NoSkipUNet, UNet
from course_utils.checks import check_mask_correlation, check_without_skip
from conftest import fails_with, todo


def accepted(check, answer, capsys) -> None:
    check(answer)
    assert capsys.readouterr().out.startswith("Correct:")


# ---- exercise 1: how well a channel lines up with the mask --------------------------------

def correlation(features, mask):
    m = F.adaptive_avg_pool2d(mask[None, None].float(), features.shape[-2:]).flatten()
    f = features.flatten(1)
    f, m = f - f.mean(1, keepdim=True), m - m.mean()
    den = f.norm(dim=1) * m.norm()
    return torch.where(den > 0, f @ m / den.clamp(min=1e-12), torch.zeros_like(den))


def by_corrcoef(features, mask):  # another right answer: numpy-style corrcoef, flat channels set to 0
    m = F.interpolate(mask[None, None].float(), size=features.shape[-2:], mode="area").flatten()
    rows = torch.corrcoef(torch.cat([features.flatten(1), m[None]]))[:-1, -1]
    return torch.nan_to_num(rows, nan=0.0)


def test_mask_correlation_accepts_right_answers(capsys):
    accepted(check_mask_correlation, correlation, capsys)
    accepted(check_mask_correlation, by_corrcoef, capsys)


def test_mask_correlation_explains_mistakes():
    assert "NotImplementedError" in fails_with(check_mask_correlation, todo)
    assert "lost the sign" in fails_with(check_mask_correlation, lambda f, m: correlation(f, m).abs())
    nan_for_flat = lambda f, m: torch.corrcoef(torch.cat([f.flatten(1), F.adaptive_avg_pool2d(  # noqa: E731
        m[None, None].float(), f.shape[-2:]).flatten()[None]]))[:-1, -1]
    assert "NaN" in fails_with(check_mask_correlation, nan_for_flat)
    no_centring = lambda f, m: (f.flatten(1) @ F.adaptive_avg_pool2d(  # noqa: E731
        m[None, None].float(), f.shape[-2:]).flatten())
    assert "[-1, 1]" in fails_with(check_mask_correlation, no_centring)
    nearest = lambda f, m: correlation(f, F.interpolate(m[None, None].float(), size=f.shape[-2:])[0, 0] > 0.5)  # noqa: E731
    assert "adaptive_avg_pool2d" in fails_with(check_mask_correlation, nearest)
    assert "one number per channel" in fails_with(check_mask_correlation, lambda f, m: correlation(f, m).mean())


# ---- exercise 2: one skip switched off ------------------------------------------------------

def without_skip(model, x, level):
    x = model.inc(x)
    skips = []
    for down in model.downs:
        skips.append(x)
        x = down(x)
    for up in model.ups:
        skip = skips.pop()
        x = up(x, torch.zeros_like(skip) if len(skips) == level else skip)
    return model.head(x)


def test_without_skip_accepts_right_answers(capsys):
    accepted(check_without_skip, without_skip, capsys)
    accepted(check_without_skip, lambda model, x, level: model.head(model.features(x, zero_skips=[level])), capsys)


def test_without_skip_explains_mistakes():
    assert "NotImplementedError" in fails_with(check_without_skip, todo)
    assert "still reaches" in fails_with(check_without_skip, lambda model, x, level: model(x))
    counted_from_the_bottom = lambda model, x, level: without_skip(model, x, len(model.downs) - 1 - level)  # noqa: E731
    assert "switched off level 2" in fails_with(check_without_skip, counted_from_the_bottom)
    assert "model.head" in fails_with(check_without_skip, lambda model, x, level: model.features(x, zero_skips=[level]))
    all_off = lambda model, x, level: model.head(model.features(x, zero_skips=range(3)))  # noqa: E731
    assert "other logits" in fails_with(check_without_skip, all_off)


def test_no_skip_unet_zeros_every_skip_and_keeps_the_parameters():
    torch.manual_seed(0)
    unet, noskip = UNet(3, 1, base_channels=4, depth=3).eval(), NoSkipUNet(3, 1, base_channels=4, depth=3).eval()
    noskip.load_state_dict(unet.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(noskip(x), unet.head(unet.features(x, zero_skips={0, 1, 2})))
        assert not torch.allclose(noskip(x), unet(x))
    noskip.train()
    noskip(x).sum().backward()
    skip_half = [up.conv[0].weight.grad[:, : up.up.out_channels] for up in noskip.ups]
    assert all(g.abs().sum() == 0 for g in skip_half)  # the skip's weights only ever multiply zeros
