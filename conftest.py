"""pytest set-up for the whole run: the quick profile and a private data root.

Set before any test or notebook kernel starts (nbval kernels inherit this environment), so
tests never touch ./data and never pick the full profile on a machine with a GPU.
"""
import os
import tempfile

os.environ["UNET_COURSE_PROFILE"] = "quick"
os.environ.setdefault("UNET_COURSE_DATA", tempfile.mkdtemp(prefix="unet-course-data-"))
os.environ.setdefault("TQDM_MININTERVAL", "5")


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
