"""The profile, the data root and the doctor."""
import pytest

import course_utils
from course_utils import data_root, doctor, pick_device, profile


def test_profile_is_forced_by_the_environment(monkeypatch):
    monkeypatch.setenv("UNET_COURSE_PROFILE", "full")
    assert profile() == "full"
    monkeypatch.setenv("UNET_COURSE_PROFILE", "Quick")
    assert profile() == "quick"
    monkeypatch.setenv("UNET_COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="quick.*full"):
        profile()


def test_profile_is_quick_without_gpu_or_real_data(monkeypatch, tmp_path):
    monkeypatch.delenv("UNET_COURSE_PROFILE")
    monkeypatch.setenv("UNET_COURSE_DATA", str(tmp_path))
    assert profile() == "quick"  # no real Carvana under tmp_path, whatever the device
    monkeypatch.setattr("course_utils.environment.has_gpu", lambda: True)
    assert profile() == "quick"
    (tmp_path / "carvana").mkdir()
    (tmp_path / "carvana" / "train_masks.csv").write_text("img,rle_mask\n")
    assert profile() == "full"


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UNET_COURSE_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    monkeypatch.delenv("UNET_COURSE_DATA")
    assert data_root().name == "data" and (data_root().parent / "course_utils").is_dir()


def test_doctor_reports_device_versions_and_missing_data(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("UNET_COURSE_DATA", str(tmp_path))
    report = doctor()
    out = capsys.readouterr().out
    assert report["device"] == pick_device().type
    assert report["data"] == {"carvana": False, "toy_carvana": False, "nyuv2": False, "toy_nyuv2": False,
                              "isbi2012": False}
    assert "missing -> python -m course_utils.data download isbi2012" in out
    assert "torch" in report["versions"] and report["ram_gib"] > 0
    assert "missing -> python -m course_utils.data download carvana" in out
    assert f"profile: {report['profile']}" in out


def test_every_public_name_resolves():
    for name in course_utils.__all__:
        assert getattr(course_utils, name) is not None, name
    with pytest.raises(AttributeError):
        course_utils.not_a_name
