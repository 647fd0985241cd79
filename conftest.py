"""pytest set-up for the whole run: the quick profile and a private data root.

Set before any test or notebook kernel starts (nbval kernels inherit this environment), so
tests never touch ./data and never pick the full profile on a machine with a GPU.
"""
import os
import tempfile

os.environ["UNET_COURSE_PROFILE"] = "quick"
os.environ.setdefault("UNET_COURSE_DATA", tempfile.mkdtemp(prefix="unet-course-data-"))
os.environ.setdefault("TQDM_MININTERVAL", "5")
