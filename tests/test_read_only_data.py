"""Data apart from work (issue 16): a read-only data root is only read; every write goes to the work root.

A read-only bind mount needs privileges a test may not have, and chmod does not stop root, so the
data root is made read-only the way a teacher can: UNET_COURSE_DATA_READONLY=1 (is_writable then says
no for everything under it). Each test also checks the real thing: no file or folder under the
data root changed (paths, sizes and modification times, folders included).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import course_utils
from course_utils import CarvanaDataset, ensure_toy_carvana
from course_utils.config import TrainConfig
from course_utils.data.cache import cache_folder
from course_utils.environment import is_writable, set_work_root, user_work_dir, work_root
from course_utils.predict import main as predict_main
from course_utils.run_course import execute, main as run_course_main
from course_utils.student import write_student_copies
from course_utils.train import load_or_train

REPO = Path(__file__).resolve().parent.parent
TINY = ["--epochs", "1", "--image-size", "32", "48", "--base-channels", "4", "--batch-size", "16",
        "--num-workers", "0", "--profile", "quick", "--no-progress"]

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root (links not followed): relative path -> (size, mtime in ns)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files, "."]:
            path = Path(folder) / name
            st = path.lstat()
            found[str(path.relative_to(root))] = (st.st_size if name in files else 0, st.st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def shared_root() -> Path:
    """The session's data root holding the default toy Carvana (drawn once while still writable)."""
    root = Path(os.environ["UNET_COURSE_DATA"])
    saved = os.environ.pop("UNET_COURSE_WORK", None)
    ensure_toy_carvana()
    if saved is not None:
        os.environ["UNET_COURSE_WORK"] = saved
    assert (root / "toy_carvana" / "train_masks.csv").is_file()
    return root


@pytest.fixture
def read_only(shared_root, monkeypatch, tmp_path) -> Path:
    """The data root marked read-only, with a fresh per-user cache folder; yields the data root and
    checks afterwards that nothing under it changed."""
    monkeypatch.setenv("UNET_COURSE_DATA_READONLY", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    monkeypatch.delenv("UNET_COURSE_WORK", raising=False)
    before = snapshot(shared_root)
    yield shared_root
    assert snapshot(shared_root) == before, "something under the read-only data root changed"


def test_work_root_is_the_data_root_when_writable(shared_root, monkeypatch):
    monkeypatch.delenv("UNET_COURSE_WORK", raising=False)
    monkeypatch.delenv("UNET_COURSE_DATA_READONLY", raising=False)
    assert is_writable(shared_root) and work_root() == shared_root.resolve()


def test_read_only_data_root_moves_every_write_and_says_so_once(read_only, tmp_path, capsys, monkeypatch):
    assert not is_writable(read_only) and not is_writable(read_only / "toy_carvana" / "new-folder")
    assert work_root() == work_root() == user_work_dir() == tmp_path / "home-cache" / "unet-course" / "work"
    assert capsys.readouterr().out.count("is read-only") == 1
    monkeypatch.setenv("UNET_COURSE_WORK", str(tmp_path / "mine"))
    assert work_root() == (tmp_path / "mine").resolve()
    monkeypatch.setenv("UNET_COURSE_WORK", str(read_only / "work"))
    with pytest.raises(PermissionError, match="--work-dir"):
        work_root()
    with pytest.raises(PermissionError, match="--work-dir"):
        set_work_root(read_only / "work")


def test_a_read_only_mount_is_seen_without_writing(tmp_path, monkeypatch):
    class ReadOnlyMount:
        f_flag = os.ST_RDONLY

    assert is_writable(tmp_path)
    monkeypatch.setattr(os, "statvfs", lambda path: ReadOnlyMount())
    assert not is_writable(tmp_path)


def test_doctor_reports_both_roots(read_only, capsys):
    report = course_utils.doctor()
    out = capsys.readouterr().out
    assert report["data_root_writable"] is False and report["work_root_writable"] is True
    assert report["work_root"] == str(work_root()) != report["data_root"]
    assert "(read-only;" in out and f"work root: {report['work_root']}  (writable;" in out
    assert report["data"]["toy_carvana"] is True


def test_loader_cache_goes_to_the_work_root(read_only):
    toy = read_only / "toy_carvana"
    ds = CarvanaDataset(toy, size=(32, 48))
    folder = cache_folder(toy, (32, 48))
    assert folder.is_relative_to(work_root() / ".cache") and (folder / "index.json").is_file()
    assert folder.parent.name.startswith("toy_carvana-") and len(ds) == 640


def test_train_cli_with_a_read_only_data_root(read_only, tmp_path):
    """`python -m course_utils.train` from inside the read-only data root, on its toy Carvana."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "course_utils.train", *TINY], cwd=read_only, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr
    work = tmp_path / "home-cache" / "unet-course" / "work"
    assert proc.stdout.count("is read-only") == 1
    runs = list((work / "runs").glob("quick-*"))
    assert len(runs) == 1 and (runs[0] / "best.pt").is_file()
    assert list((work / ".cache").glob("toy_carvana-*/32x48-*/index.json"))

    chosen = tmp_path / "chosen"
    proc = subprocess.run([sys.executable, "-m", "course_utils.train", *TINY, "--work-dir", str(chosen)],
                          cwd=read_only, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert "is read-only" not in proc.stdout
    assert len(list((chosen / "runs").glob("quick-*/best.pt"))) == 1
    assert list((chosen / ".cache").glob("toy_carvana-*/32x48-*/index.json"))


def tiny_config(root: Path) -> TrainConfig:
    return TrainConfig(data_dir=str(root / "toy_carvana"), image_size=(32, 48), base_channels=4, batch_size=16,
                       epochs=1, num_workers=0, progress=False).check()


def test_shared_model_and_predict_with_a_read_only_data_root(read_only, tmp_path, capsys):
    """A lesson's load_or_train trains once into the work root, then loads; predict reads the
    read-only photos and refuses to write beside them."""
    cfg = tiny_config(read_only)
    model, ckpt = load_or_train(cfg, name="read-only-test")
    best = work_root() / "runs" / "read-only-test-quick" / "best.pt"
    assert best.is_file() and "training once into" in capsys.readouterr().out
    load_or_train(cfg, name="read-only-test")
    assert f"loaded {best}" in capsys.readouterr().out

    photos = sorted((read_only / "toy_carvana" / "train").glob("*.jpg"))[:2]
    args = ["--checkpoint", str(best), *map(str, photos), "--device", "cpu"]
    assert predict_main([*args, "--out", str(tmp_path / "preds")]) == 0
    assert len(list((tmp_path / "preds").glob("*_mask.png"))) == 2
    with pytest.raises(SystemExit):
        predict_main([*args, "--out", str(read_only / "preds")])
    assert "is read-only" in capsys.readouterr().err


def test_a_class_shares_a_model_trained_once_into_the_data_root(shared_root, tmp_path, monkeypatch, capsys):
    """The teacher trains into the shared (still writable) root; a student's read-only view loads it."""
    monkeypatch.delenv("UNET_COURSE_WORK", raising=False)
    cfg = tiny_config(shared_root)
    load_or_train(cfg, name="class-shared")
    monkeypatch.setenv("UNET_COURSE_DATA_READONLY", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "student"))
    before = snapshot(shared_root)
    capsys.readouterr()
    load_or_train(cfg, name="class-shared")
    assert f"loaded {shared_root / 'runs' / 'class-shared-quick' / 'best.pt'}" in capsys.readouterr().out
    assert not (work_root() / "runs").exists() and snapshot(shared_root) == before


LESSON = [
    "import course_utils\nfrom course_utils import CarvanaDataset\n"
    "ds = CarvanaDataset(course_utils.ensure_toy_carvana(), size=(32, 48))\nlen(ds)",
    "def answer():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION\nanswer()",
]


def test_lessons_and_student_copies_run_against_a_read_only_data_root(read_only, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernels start in the notebooks' own (temporary) folders
    lessons, students = tmp_path / "lessons", tmp_path / "student"
    lessons.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in LESSON])
    nb.metadata["course"] = {"budget_s": 60}
    nbformat.write(nb, lessons / "99_read_only.ipynb")
    chosen = tmp_path / "chosen"
    assert run_course_main([str(lessons / "99_read_only.ipynb"), "--work-dir", str(chosen)]) == 0
    assert list((chosen / ".cache").glob("toy_carvana-*/32x48-*/index.json"))

    (copy,) = write_student_copies(lessons, students)
    run = execute(nbformat.read(copy, as_version=4), students)
    assert (run.cells_run, run.error_cell, run.error_name) == (1, 1, "NotImplementedError")
