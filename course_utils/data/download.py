"""Download the real data sets, check them and lay them out as the course reads them.

    python -m course_utils.data download carvana           # into <work root>/carvana (lesson 05)
    python -m course_utils.data download nyuv2             # into <work root>/nyuv2 (lesson 10)
    download_carvana(), download_nyuv2()                   # the same from Python

The work root is the data root when that is writable (environment.work_root()).

Carvana: only the four files the course needs are fetched (about 0.5 GB, not the 25 GB of the
whole competition): train.zip (5088 JPEGs), train_masks.zip (their GIF masks), train_masks.csv.zip
(the masks as RLE) and metadata.csv.zip (make, model, year of each car). Each zip is checked
(every member's CRC) before it is unpacked, no member may land outside the data folder, and a
finished archive leaves a marker, so a second run skips it. It needs the optional `kaggle`
package, a Kaggle account with an API token, and the competition's rules accepted once on the
website; when something is missing, the DownloadError says exactly what to do.

NYU Depth V2: the labeled set (one 2.97 GB MATLAB file from NYU's server) and three small
metadata files (the official train/test split and the 40- and 13-class mappings, from
github.com/ankurhanda/nyuv2-meta-data) over plain HTTPS with fetch_file (fetch.py): it resumes
an interrupted download and checks each file's size and SHA-256 before renaming it into place.

ISBI 2012 (lesson 13) has its own module, course_utils.data.isbi2012_download.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from .fetch import DownloadError, Remote, bytes_on_disk, fetch_file, part_path
from .kaggle_input import attached_dataset, find_attached, unpack_attached_carvana
from .unzip import ARCHIVES, Archive, check_zip, extract_archive, is_unpacked

__all__ = ["download_carvana", "download_nyuv2", "DownloadError", "Remote", "COMPETITION", "ARCHIVES",
           "RULES_URL", "NYUV2_FILES"]

COMPETITION = "carvana-image-masking-challenge"
RULES_URL = f"https://www.kaggle.com/c/{COMPETITION}/rules"
DATA_URL = f"https://www.kaggle.com/c/{COMPETITION}/data"
TOKEN_URL = "https://www.kaggle.com/settings"  # Account -> API -> Create New Token
FREE_SPACE_NEEDED = 1 << 30  # the zips (~0.45 GB) and what they unpack to, with room to spare


def download_carvana(root: str | Path | None = None, *, keep_zips: bool = False, api: Any = None) -> Path:
    """Fetch, check and unpack Carvana's train images, masks, train_masks.csv and metadata.csv; return root.

    root: the data-set folder, default work_root() / "carvana" (the data root when writable). It ends up holding train/,
    train_masks/, train_masks.csv and metadata.csv, the layout CarvanaDataset reads.
    keep_zips: keep the downloaded zips after unpacking (default: delete them, saving ~0.45 GB).
    api: an authenticated kaggle.KaggleApi (default: the one the kaggle package makes).
    Zips copied into root by hand are checked and unpacked without downloading anything, and a
    folder unzipped by hand (5088 images, 5088 masks, both csv files) is left as it is. In a Kaggle
    Notebook with the competition attached (kaggle_input.py), its zips are unpacked from the input
    folder without a download or token.
    Raises DownloadError with instructions when the kaggle package, credentials, the accepted
    competition rules or the network are missing. Lesson 05.
    """
    if root is None:
        from ..environment import work_root

        root = work_root() / "carvana"
    root = Path(root).expanduser()
    attached = attached_dataset("carvana")
    if attached is not None and not any((root / a.name).exists() for a in ARCHIVES):
        if (attached / "train_masks.csv").is_file():  # an unpacked copy: read where it lies
            print(f"Carvana is attached, unpacked, at {attached}: the course reads it there.", flush=True)
            return attached
        print(f"Found the competition's zips attached at {attached}: no download or token needed.", flush=True)
        unpack_attached_carvana(root, attached)
        _check_layout(root)
        return root
    root.mkdir(parents=True, exist_ok=True)
    for archive in ARCHIVES:
        if is_unpacked(root, archive):
            print(f"{archive.name}: already unpacked into {root / archive.target}, skipping.", flush=True)
            continue
        api = _whole_zip(root, archive, api)
        extract_archive(root / archive.name, root, archive)
        if not keep_zips:
            (root / archive.name).unlink()
    _check_layout(root)
    return root


def _whole_zip(root: Path, archive: Archive, api: Any) -> Any:
    """Make root/archive.name a whole zip: keep one that checks, else download it (a second time from
    scratch if needed); return the kaggle client, made only when something had to be downloaded."""
    zip_path = root / archive.name
    problem = check_zip(zip_path) if zip_path.exists() else "missing"
    if problem != "missing" and problem:
        print(f"{zip_path} is incomplete or damaged ({problem}); downloading it again.", flush=True)
    for force in (False, True):  # first let kaggle resume a partial file; then start over
        if not problem:
            break
        if api is None:
            _check_free_space(root)
            api = _kaggle_api()
        if force:
            zip_path.unlink(missing_ok=True)
        _fetch(api, archive.name, root, force)
        problem = check_zip(zip_path) if zip_path.exists() else "missing"
    if problem == "missing":
        raise DownloadError(f"Kaggle reported no error, but {zip_path} is not there. " + _by_hand(root))
    if problem:
        zip_path.unlink(missing_ok=True)
        raise DownloadError(
            f"{zip_path} was downloaded twice and is damaged both times ({problem}); it has been deleted. "
            "Check your disk and connection and run the download again. " + _by_hand(root)
        )
    return api


# ---------------------------------------------------------------------------- the kaggle client
def _kaggle_api() -> Any:
    """The kaggle package's authenticated client, or a DownloadError saying how to get one."""
    _colab_secrets_to_environment()
    try:
        import kaggle  # most versions authenticate while importing
    except ImportError as err:
        if (err.name or "").split(".")[0] == "kaggle":
            raise DownloadError(
                "The download uses the `kaggle` package, which is not installed. Install it with\n"
                "    pip install kaggle\n"
                "(or pip install -e '.[kaggle]' in the course folder) and run the download again. "
                "Until then the toy set works: ensure_toy_carvana() or the quick profile."
            ) from None
        raise DownloadError(f"The kaggle package is installed but cannot be imported ({err}). "
                            "Repair it with: pip install --upgrade kaggle") from err
    except (OSError, SystemExit, ValueError, KeyError) as err:
        raise DownloadError(_no_credentials(err)) from None
    api = getattr(kaggle, "api", None)
    if api is None:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
    try:
        api.authenticate()
    except (OSError, SystemExit, ValueError, KeyError) as err:
        raise DownloadError(_no_credentials(err)) from None
    return api


def _colab_secrets_to_environment() -> None:
    """On Colab, copy the KAGGLE_USERNAME / KAGGLE_KEY secrets (key icon, left bar) into the environment."""
    if "google.colab" not in sys.modules or (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")):
        return
    try:
        from google.colab import userdata  # type: ignore[import-not-found]

        values = {name: userdata.get(name) for name in ("KAGGLE_USERNAME", "KAGGLE_KEY")}
    except Exception:  # no such secrets, or access not granted: the credentials message explains
        return
    os.environ.update({k: v for k, v in values.items() if v})


def _fetch(api: Any, name: str, root: Path, force: bool) -> None:
    """One competition file into root (kaggle shows a progress bar); errors become DownloadErrors."""
    print(f"Downloading {name} from Kaggle ({COMPETITION}) into {root} ...", flush=True)
    try:
        api.competition_download_file(COMPETITION, name, path=str(root), force=force, quiet=False)
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as err:  # the kaggle client raises many types; sort them by what they mean
        raise DownloadError(_explain(err, name, root)) from err


def _http_status(err: BaseException) -> int | None:
    """The HTTP status of a kaggle/requests/urllib3 error, wherever in the chain it sits."""
    for e in _chain(err):
        for status in (getattr(e, "status", None), getattr(getattr(e, "response", None), "status_code", None)):
            if isinstance(status, int):
                return status
    return None


def _is_network_error(err: BaseException) -> bool:
    names = ("ConnectionError", "NewConnectionError", "MaxRetryError", "NameResolutionError", "Timeout",
             "ConnectTimeout", "ReadTimeout", "ProtocolError", "gaierror", "SSLError")
    return any(isinstance(e, (ConnectionError, TimeoutError)) or any(t.__name__ in names for t in type(e).__mro__)
               for e in _chain(err))


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _explain(err: BaseException, name: str, root: Path) -> str:
    status = _http_status(err)
    if status == 403:
        return (f"Kaggle refused {name} (HTTP 403 Forbidden): your account has not accepted the competition's "
                f"rules. Sign in, open {RULES_URL} , click 'I Understand and Accept' (once; it is a "
                "completed competition, you only agree to its data terms), then run the download again.")
    if status == 401:
        return ("Kaggle did not accept your credentials (HTTP 401 Unauthorized): the username or key is wrong "
                f"or the token was revoked. Create a new token at {TOKEN_URL} (API -> Create New Token), "
                "replace kaggle.json with it (chmod 600), and run the download again.")
    if status == 404:
        return (f"Kaggle has no file {name} in the competition {COMPETITION} (HTTP 404). The competition's "
                f"files may have been renamed; see {DATA_URL} . " + _by_hand(root))
    if _is_network_error(err):
        return (f"Could not reach kaggle.com to download {name} ({type(err).__name__}: {err}). "
                "Check the connection (and a proxy, if you use one) and run the download again. "
                + _by_hand(root))
    return f"Downloading {name} failed ({type(err).__name__}: {err}). " + _by_hand(root)


def _no_credentials(err: BaseException) -> str:
    said = f" (kaggle said: {str(err).rstrip('. ')})" if str(err) and not isinstance(err, SystemExit) else ""
    return (
        f"The kaggle package found no Kaggle credentials{said}. Either:\n"
        f"  1. create an API token at {TOKEN_URL} (API -> Create New Token); it downloads kaggle.json.\n"
        "     Put it at ~/.kaggle/kaggle.json (Windows: C:\\Users\\<you>\\.kaggle\\kaggle.json; newer kaggle\n"
        "     versions also read ~/.config/kaggle/kaggle.json) and make it private: chmod 600 ~/.kaggle/kaggle.json\n"
        "  2. or set the environment variables KAGGLE_USERNAME and KAGGLE_KEY (the two values in kaggle.json).\n"
        "  On Colab: add KAGGLE_USERNAME and KAGGLE_KEY as secrets (key icon in the left bar), allow this\n"
        "  notebook to read them, and run the download again: it reads them itself.\n"
        "Meanwhile the toy set works: ensure_toy_carvana() or the quick profile."
    )


def _by_hand(root: Path) -> str:
    names = ", ".join(a.name for a in ARCHIVES)
    return (
        f"To get the data without this download: on a machine with a browser, sign in to Kaggle, accept the "
        f"rules at {RULES_URL} and download {names} from {DATA_URL} ; copy the four zips into {root} and run "
        f"`python -m course_utils.data download carvana --root {root}` again: it checks and unpacks them "
        "without a network. "
        "Or unzip them yourself so that the folder holds train/, train_masks/, train_masks.csv and metadata.csv. "
        "Meanwhile the toy set works: ensure_toy_carvana() or the quick profile."
    )


def _check_free_space(root: Path) -> None:
    free = shutil.disk_usage(root).free
    if free < FREE_SPACE_NEEDED:
        raise DownloadError(f"{root} has {free / 2**30:.2f} GiB free; Carvana's train images and masks need about "
                            f"{FREE_SPACE_NEEDED / 2**30:.0f} GiB while downloading. "
                            "Free some space or pass another root.")


def _check_layout(root: Path) -> None:
    """The end state CarvanaDataset reads: every image with its mask, and both csv files."""
    from .carvana_files import IMAGES, MASKS, car_id, find_masks, image_ids

    try:
        ids = image_ids(root)
        find_masks(root, ids)  # raises, naming the first image without a mask
    except FileNotFoundError as err:
        raise DownloadError(f"The download finished but the data set is incomplete: {err}") from None
    cars = len({car_id(i) for i in ids})
    print(f"Carvana is ready in {root}: {len(ids)} images of {cars} cars in {IMAGES}/, their masks in {MASKS}/, "
          "train_masks.csv and metadata.csv.", flush=True)


# ---------------------------------------------------------------------------- NYU Depth V2 over HTTPS
NYUV2_PAGE = "https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html"
NYUV2_META = "https://raw.githubusercontent.com/ankurhanda/nyuv2-meta-data/master/"
NYUV2_FILES = (
    Remote("nyu_depth_v2_labeled.mat", "https://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
           2972037809, "2d724b0c0ab358aa1ce5df855e5bd14a2279ab7202efe22f32a30d612dcb86aa"),
    Remote("splits.mat", NYUV2_META + "splits.mat", 2626,
           "6e081404491a8bfba2f066beaa9713ef6046f9007aa5f799f2a350506a580cee"),
    Remote("classMapping40.mat", NYUV2_META + "classMapping40.mat", 10474,
           "ff177194cce9a2163517f1e1e6f1c64c50987162f542dedddc04bbf6ebe6d851"),
    Remote("class13Mapping.mat", NYUV2_META + "class13Mapping.mat", 408,
           "4e79ab24c345896c19abc62476b2c3520f3e2db00f71f868c5027208af48a3de"),
)


def download_nyuv2(root: str | Path | None = None, *, files: tuple[Remote, ...] | None = None,
                   timeout: float = 30.0) -> Path:
    """Fetch and check NYU Depth V2's labeled set and its metadata files into root; return root.

    root: the data-set folder, default work_root() / "nyuv2" (the data root when writable). It ends up holding
    nyu_depth_v2_labeled.mat (2.97 GB), splits.mat, classMapping40.mat and class13Mapping.mat,
    the files NYUv2Dataset reads. An interrupted download resumes on the next run; files
    already there (downloaded before, or copied in by hand) are checked, not fetched again; a labeled
    file attached to a Kaggle Notebook is linked in, not downloaded.
    files: what to fetch (default NYUV2_FILES; pass others for a mirror). timeout: seconds
    without data before giving up. Raises DownloadError saying what to do when it cannot work. Lesson 10.
    """
    if root is None:
        from ..environment import work_root

        root = work_root() / "nyuv2"
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    files = NYUV2_FILES if files is None else tuple(files)
    _link_attached(root, files[0].name)
    need = sum(max(0, r.size - bytes_on_disk(root / r.name) - bytes_on_disk(part_path(root / r.name)))
               for r in files if bytes_on_disk(root / r.name) != r.size)
    free = shutil.disk_usage(root).free
    if need > free:
        raise DownloadError(f"{root} has {free / 2**30:.2f} GiB free; NYUv2 needs {need / 2**30:.2f} GiB more. "
                            "Free some space or pass another root.")
    for remote in files:
        fetch_file(remote, root / remote.name, timeout=timeout, by_hand=_nyuv2_by_hand(root, files))
    _check_nyuv2(root)
    return root


def _link_attached(root: Path, name: str) -> None:
    """A copy of `name` attached to a Kaggle Notebook, linked into root instead of downloaded."""
    source = find_attached((name,))
    if source is not None and not (root / name).exists():
        (root / name).symlink_to(source / name)
        print(f"{name}: using the copy attached at {source} (linked into {root}).", flush=True)


def _nyuv2_by_hand(root: Path, files: tuple[Remote, ...]) -> str:
    listing = "".join(f"\n    {r.url}  ({r.size:,} bytes)" for r in files)
    return (f"To get the data without this download: on a machine with a network, download{listing}\n"
            f"(the labeled set is also linked from {NYUV2_PAGE} ), copy the files into {root} and run "
            f"`python -m course_utils.data download nyuv2 --root {root}` again: it checks them without a network. "
            "Meanwhile the toy set works: `python -m course_utils.data toy nyuv2` (or ensure_toy_nyuv2()).")


def _check_nyuv2(root: Path) -> None:
    """The end state NYUv2Dataset reads: the labeled file opens, the splits and mappings fit it."""
    from .nyuv2 import NYUv2Dataset

    try:
        sizes = {split: len(NYUv2Dataset(root, split)) for split in ("train", "test")}
    except (OSError, ValueError) as err:
        raise DownloadError(f"The download finished but NYUv2Dataset cannot read it: {err}") from None
    print(f"NYUv2 is ready in {root}: {sizes['train']} train and {sizes['test']} test frames.", flush=True)
