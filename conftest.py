"""pytest set-up for the whole run: the quick profile and a private data root.

Set before any test or notebook kernel starts (nbval kernels inherit this environment), so
tests never touch ./data and never pick the full profile on a machine with a GPU.
"""
import os
import tempfile
from pathlib import Path

os.environ["UNET_COURSE_PROFILE"] = "quick"
os.environ.setdefault("UNET_COURSE_DATA", tempfile.mkdtemp(prefix="unet-course-data-"))
os.environ.setdefault("TQDM_MININTERVAL", "5")


def _link_real_isbi2012() -> None:
    """Lesson 13 and the ISBI 2012 task read <data root>/isbi2012, which a learner downloads on first
    use; tests never download, so that folder points at the real stacks of ../shared/real_samples."""
    default = Path(__file__).resolve().parent.parent / "shared" / "real_samples"
    real = Path(os.environ.get("UNET_COURSE_REAL_SAMPLES") or default) / "isbi2012"
    link = Path(os.environ["UNET_COURSE_DATA"]) / "isbi2012"
    if (real / "train-labels.tif").is_file() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(real, target_is_directory=True)


_link_real_isbi2012()


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions: one torch thread is as fast as two, and far faster when other work shares
    the cores. Test modules that train use it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _real_samples(name: str, needs: str) -> Path:
    """../shared/real_samples/<name> (or $UNET_COURSE_REAL_SAMPLES/<name>); skips the test when
    <name>/<needs> is absent, e.g. in a clone made away from the shared folder."""
    default = Path(__file__).resolve().parent.parent / "shared" / "real_samples"
    path = Path(os.environ.get("UNET_COURSE_REAL_SAMPLES") or default) / name
    if not (path / needs).exists():
        pytest.skip(f"real samples not found at {path} (set UNET_COURSE_REAL_SAMPLES)")
    return path


@pytest.fixture
def real_carvana():
    """The real Carvana pairs (train/, train_masks/) of ../shared/real_samples."""
    return _real_samples("carvana", "train_masks")


@pytest.fixture
def real_nyuv2_meta():
    """The real NYUv2 metadata files (splits.mat, classMapping40.mat, ...) of ../shared/real_samples."""
    return _real_samples("nyuv2_meta", "splits.mat")


@pytest.fixture
def real_isbi2012():
    """The real ISBI 2012 stacks (train-volume.tif, train-labels.tif, test-volume.tif) of ../shared/real_samples."""
    return _real_samples("isbi2012", "train-labels.tif")


def fails_with(check, *args, **kwargs) -> str:
    """The message of the CheckFailed an exercise check raises for this answer (the test fails if
    the check passes it). The tests of course_utils.checks import it."""
    from course_utils.checks import CheckFailed

    with pytest.raises(CheckFailed) as info:
        check(*args, **kwargs)
    return str(info.value)


def todo(*args, **kwargs):
    """An unanswered exercise, as a student copy has it."""
    raise NotImplementedError()


@pytest.fixture(autouse=True)
def _work_root_restored():
    """--work-dir sets $UNET_COURSE_WORK for the process (and the kernels it starts): a test that runs
    a CLI's main() in-process must not hand its work folder to the tests after it."""
    saved = os.environ.get("UNET_COURSE_WORK")
    yield
    if saved is None:
        os.environ.pop("UNET_COURSE_WORK", None)
    else:
        os.environ["UNET_COURSE_WORK"] = saved


# ---- every notebook cell nbval runs: no leaked object repr, no report printed twice (tools/notebook_outputs.py)
_PRINTED: dict[str, list] = {}  # notebook -> [(cell number, outputs)] of the cells run so far


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After nbval runs a cell, fail it when its outputs leak a repr or repeat an earlier report."""
    result = yield
    outputs = getattr(item, "test_outputs", None)
    if outputs is None or not hasattr(item, "cell_num"):
        return result  # not a notebook cell
    from tools.notebook_outputs import leaked_reprs, repeated_reports

    first = item.cell.source.strip().splitlines()[0] if item.cell.source.strip() else ""
    where = f"{item.parent.name} Cell {item.cell_num} (code cells counted from 0; it starts {first[:60]!r})"
    leaks = leaked_reprs(outputs)
    if leaks:
        raise AssertionError(f"{where} shows a leaked object repr: {'; '.join(leaks)} (end the line with ';', "
                             f"or assign the call's result to _).\nThe cell:\n{item.cell.source}")
    cells = _PRINTED.setdefault(item.parent.nodeid, [])
    before = repeated_reports(cells)
    cells.append((item.cell_num, list(outputs)))
    repeats = [r for r in repeated_reports(cells) if r not in before]
    if repeats:
        raise AssertionError(f"{where} prints a report an earlier output already printed: {repeats[0]}")
    return result
