"""EncoderUNet: torchvision's classifiers as the contracting path (issue: torchvision in the course)."""
from __future__ import annotations

import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from course_utils import EncoderUNet, load_checkpoint, make_toy_carvana
from course_utils.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    """4 toy cars x 16 angles at 64x96: 3 cars train, 1 car held out (val_fraction 0.25)."""
    return Path(make_toy_carvana(tmp_path_factory.mktemp("toy") / "toy_carvana", n_cars=4, image_size=(64, 96), seed=0))


@pytest.mark.parametrize("encoder", ["vgg11", "resnet34"])
def test_logits_have_the_input_size_and_gradients_reach_the_encoder(encoder):
    torch.manual_seed(0)
    net = EncoderUNet(encoder)
    x = torch.rand(2, 3, 64, 96)
    out = net(x)
    assert out.shape == (2, 1, 64, 96)
    out.mean().backward()
    first = next(p for p in net.stages[0].parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert net.config["depth"] == {"vgg11": 4, "resnet34": 5}[encoder]


def test_a_greyscale_encoder_sums_the_rgb_kernels(tmp_path):
    classifier = torchvision.models.resnet34(weights=None)
    torch.save(classifier.state_dict(), tmp_path / "r34.pt")
    grey = EncoderUNet("resnet34", in_channels=1, weights=tmp_path / "r34.pt")
    assert torch.equal(grey.stages[0][0].weight, classifier.conv1.weight.sum(1, keepdim=True))
    assert grey(torch.rand(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_a_side_the_encoder_cannot_take_names_the_nearest_that_work():
    with pytest.raises(ValueError, match=r"multiple of 32; got 64 x 100\. Nearest that work: height 64, width 96 or 128"):
        EncoderUNet("resnet34")(torch.rand(1, 3, 64, 100))
    with pytest.raises(ValueError, match=r"multiple of 2\*\*4 = 16\. Nearest that work: 64x80 or 64x96"):
        TrainConfig(encoder="vgg11", image_size=(64, 90)).check()
    with pytest.raises(ValueError, match="carvana"):
        TrainConfig(task="nyuv2", encoder="vgg11").check()


@pytest.mark.parametrize("encoder, build", [("vgg11", torchvision.models.vgg11_bn),
                                            ("resnet34", torchvision.models.resnet34)])
def test_a_saved_torchvision_state_dict_is_exactly_what_the_encoder_holds(tmp_path, encoder, build):
    torch.manual_seed(1)
    classifier = build(weights=None)
    torch.save(classifier.state_dict(), tmp_path / "w.pt")
    net = EncoderUNet(encoder, weights=tmp_path / "w.pt")
    theirs = {k: v for k, v in classifier.state_dict().items() if not k.startswith(("fc.", "classifier."))}
    ours = [t for stage in net.stages for t in stage.state_dict().values()]
    assert len(ours) == len(theirs)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs.values()))  # same tensors, in order


def test_a_wrong_weights_file_says_what_it_needs(tmp_path):
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pt")
    with pytest.raises(ValueError, match="does not hold torchvision's vgg11_bn weights"):
        EncoderUNet("vgg11", weights=tmp_path / "r34.pt")
    with pytest.raises(FileNotFoundError, match="no weights file"):
        EncoderUNet("vgg11", weights=tmp_path / "missing.pt")


def test_without_a_network_imagenet_weights_say_how_to_pass_a_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: torchvision must download

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # what torchvision's weights API calls
    with pytest.raises(RuntimeError, match=r"(?s)could not fetch torchvision's ImageNet weights for resnet34.*"
                                           r"weights='resnet34.pt'.*--encoder-weights resnet34.pt"):
        EncoderUNet("resnet34", weights="imagenet")


def test_the_cli_trains_an_encoder_unet_that_its_checkpoint_rebuilds(toy_root, tmp_path):
    torch.save(torchvision.models.vgg11_bn(weights=None).state_dict(), tmp_path / "vgg.pt")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "course_utils.train", "--data-dir", str(toy_root), "--out", str(out),
                           "--encoder", "vgg11", "--encoder-weights", str(tmp_path / "vgg.pt"), "--epochs", "2",
                           "--image-size", "32", "48", "--batch-size", "8", "--val-fraction", "0.25", "--lr", "1e-3",
                           "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "model: EncoderUNet, vgg11 encoder" in proc.stdout, proc.stdout
    model, ckpt = load_checkpoint(out / "best.pt")
    assert isinstance(model, EncoderUNet) and ckpt["model_config"]["encoder"] == "vgg11"
    x = torch.rand(1, 3, 32, 48)
    assert model.eval()(x).shape == (1, 1, 32, 48)
    assert ckpt["best_dice"] > 0.5  # two short epochs on the toy cars already find them


def test_torchvision_segmenters_give_logits_of_the_input_size_and_set_bn_momentum():
    from course_utils import TorchvisionSegmenter

    torch.manual_seed(0)
    light = TorchvisionSegmenter("lraspp_mobilenet_v3_large")
    assert light(torch.rand(2, 3, 64, 96)).shape == (2, 1, 64, 96)
    norms = [m for m in light.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.1 for m in norms)
    shipped = TorchvisionSegmenter("lraspp_mobilenet_v3_large", bn_momentum=None)
    assert 0.01 in {m.momentum for m in shipped.modules() if isinstance(m, torch.nn.BatchNorm2d)}  # the backbone's
    with pytest.raises(ValueError, match="must be one of"):
        TorchvisionSegmenter("deeplabv3_resnet50")
