"""download_carvana with the kaggle client faked at its boundary: real zip files, no network;
download_nyuv2 against a real HTTP server on 127.0.0.1 serving the toy NYUv2's files."""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import stat
import subprocess
import sys
import threading
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from course_utils import CarvanaDataset, make_toy_carvana
from course_utils.data import DownloadError, NYUv2Dataset, download_carvana, download_nyuv2, make_toy_nyuv2
from course_utils.data import download
from course_utils.data.__main__ import main as cli
from course_utils.data import unzip
from course_utils.data.download import COMPETITION, NYUV2_FILES, RULES_URL, Remote
from course_utils.data.unzip import check_zip

NAMES = ("train.zip", "train_masks.zip", "train_masks.csv.zip", "metadata.csv.zip")


def zip_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


@pytest.fixture(scope="module")
def kaggle_zips(tmp_path_factory) -> dict[str, bytes]:
    """The four competition zips as Kaggle lays them out (train/..., train_masks/...), from a real toy set."""
    toy = make_toy_carvana(tmp_path_factory.mktemp("src") / "toy", n_cars=2, image_size=(32, 48), seed=1)
    folder = lambda sub: {f"{sub}/{p.name}": p.read_bytes() for p in sorted((toy / sub).iterdir())}  # noqa: E731
    return {"train.zip": zip_bytes(folder("train")), "train_masks.zip": zip_bytes(folder("train_masks")),
            "train_masks.csv.zip": zip_bytes({"train_masks.csv": (toy / "train_masks.csv").read_bytes()}),
            "metadata.csv.zip": zip_bytes({"metadata.csv": (toy / "metadata.csv").read_bytes()})}


class FakeApi:
    """Stands in for kaggle.api: writes the prepared bytes where Kaggle would, or raises like Kaggle does."""

    def __init__(self, files: dict[str, bytes], error: BaseException | None = None) -> None:
        self.files, self.error, self.calls, self.authenticated = dict(files), error, [], False
        self.deliveries: dict[str, list[bytes]] = {}  # name -> bytes for successive calls (then self.files)

    def authenticate(self) -> None:
        self.authenticated = True

    def competition_download_file(self, competition, file_name, path=None, force=False, quiet=False):
        self.calls.append((competition, file_name, force))
        if self.error is not None:
            raise self.error
        queue = self.deliveries.get(file_name)
        data = queue.pop(0) if queue else self.files[file_name]
        Path(path, file_name).write_bytes(data)


@pytest.fixture()
def fake_kaggle(monkeypatch, kaggle_zips):
    """Install a fake `kaggle` package whose `api` is a FakeApi; returns the FakeApi."""
    api = FakeApi(kaggle_zips)
    module = types.ModuleType("kaggle")
    module.api = api
    monkeypatch.setitem(sys.modules, "kaggle", module)
    return api


def corrupt(data: bytes, start: int = 600) -> bytes:
    """Flip 20 bytes inside a member's compressed data: the zip opens, but its CRC check fails
    (or, near the start of a deflate stream, the data cannot even be inflated)."""
    raw = bytearray(data)
    for k in range(start, start + 20):
        raw[k] ^= 0xFF
    return bytes(raw)


# ----------------------------------------------------------------------------- the happy paths
def test_download_unpacks_the_kaggle_layout(fake_kaggle, tmp_path, capsys):
    root = download_carvana(tmp_path / "carvana")
    assert root == tmp_path / "carvana" and fake_kaggle.authenticated
    assert fake_kaggle.calls == [(COMPETITION, name, False) for name in NAMES]
    assert len(list((root / "train").glob("*.jpg"))) == 32 and len(list((root / "train_masks").glob("*.gif"))) == 32
    assert (root / "train_masks.csv").read_text().startswith("img,rle_mask")
    assert (root / "metadata.csv").read_text().startswith("id,year,make")
    assert not list(root.glob("*.zip"))  # unpacked zips are deleted
    ds = CarvanaDataset(root)
    assert len(ds) == 32 and ds[0][0].shape == (3, 32, 48)
    assert "Carvana is ready" in capsys.readouterr().out


def test_a_second_run_skips_what_is_complete(fake_kaggle, tmp_path, capsys):
    root = download_carvana(tmp_path / "carvana", keep_zips=True)
    assert sorted(p.name for p in root.glob("*.zip")) == sorted(NAMES)
    fake_kaggle.calls.clear()
    capsys.readouterr()
    download_carvana(root)
    assert fake_kaggle.calls == []
    assert capsys.readouterr().out.count("skipping") == 4
    for p in (root / "train_masks").iterdir():  # unpacked files gone: that archive is unpacked again
        p.unlink()
    (root / "train_masks.zip").unlink()
    download_carvana(root)
    assert [c[1] for c in fake_kaggle.calls] == ["train_masks.zip"]
    assert len(list((root / "train_masks").iterdir())) == 32


def test_zips_copied_by_hand_need_neither_kaggle_nor_a_network(kaggle_zips, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaggle", None)  # the package is not even installed
    root = tmp_path / "carvana"
    root.mkdir()
    for name, data in kaggle_zips.items():
        (root / name).write_bytes(data)
    download_carvana(root)
    assert len(CarvanaDataset(root)) == 32


def test_a_folder_unzipped_by_hand_is_left_alone(kaggle_zips, tmp_path, monkeypatch):
    root = tmp_path / "carvana"
    root.mkdir()
    for data in kaggle_zips.values():
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(root)
    monkeypatch.setattr(unzip, "KAGGLE_IMAGES", 32)  # what "all of them" is for this small set
    monkeypatch.setitem(sys.modules, "kaggle", None)  # so nothing can be downloaded
    download_carvana(root)
    assert len(CarvanaDataset(root)) == 32
    (root / "train_masks" / sorted(os.listdir(root / "train_masks"))[0]).unlink()  # one mask short: not complete
    with pytest.raises(DownloadError, match="pip install kaggle"):
        download_carvana(root)


def test_flat_zips_without_the_top_folder_work_too(fake_kaggle, kaggle_zips, tmp_path):
    with zipfile.ZipFile(io.BytesIO(kaggle_zips["train.zip"])) as zf:
        flat = {Path(n).name: zf.read(n) for n in zf.namelist()}
    fake_kaggle.files["train.zip"] = zip_bytes(flat)
    root = download_carvana(tmp_path / "carvana")
    assert len(list((root / "train").glob("*.jpg"))) == 32


def test_a_partial_zip_is_completed_by_kaggle(fake_kaggle, kaggle_zips, tmp_path):
    root = tmp_path / "carvana"
    root.mkdir()
    (root / "train.zip").write_bytes(kaggle_zips["train.zip"][: len(kaggle_zips["train.zip"]) // 2])
    download_carvana(root)
    assert ("carvana-image-masking-challenge", "train.zip", False) in fake_kaggle.calls
    assert len(CarvanaDataset(root)) == 32


# ----------------------------------------------------------------------------- damaged and malicious zips
def test_a_corrupt_download_is_fetched_again_then_refused(fake_kaggle, kaggle_zips, tmp_path):
    fake_kaggle.deliveries["train_masks.zip"] = [corrupt(kaggle_zips["train_masks.zip"])]
    root = download_carvana(tmp_path / "ok")  # corrupt once: deleted, fetched again with force
    assert [c for c in fake_kaggle.calls if c[1] == "train_masks.zip"] == [
        (COMPETITION, "train_masks.zip", False), (COMPETITION, "train_masks.zip", True)]
    assert len(CarvanaDataset(root)) == 32

    fake_kaggle.files["train_masks.zip"] = corrupt(kaggle_zips["train_masks.zip"])  # corrupt every time
    with pytest.raises(DownloadError) as err:
        download_carvana(tmp_path / "bad")
    message = str(err.value)
    assert "train_masks.zip" in message and "damaged" in message and "CRC" in message
    assert not (tmp_path / "bad" / "train_masks.zip").exists() and not (tmp_path / "bad" / "train_masks").exists()


def test_zip_check_names_each_kind_of_damage(tmp_path):
    noise = bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8))
    good = zip_bytes({"a.bin": noise + b"carvana " * 600, "b.txt": b"masks " * 2000})
    cases = {"good": (good, None), "crc": (corrupt(good, 1000), "a.bin fails its CRC check"),
             "inflate": (corrupt(good, 40), "damaged compressed data"),
             "truncated": (good[: len(good) // 2], "not a readable zip file"),
             "html": (b"<html>Please sign in</html>", "not a readable zip file")}
    for name, (data, words) in cases.items():
        (tmp_path / f"{name}.zip").write_bytes(data)
        problem = check_zip(tmp_path / f"{name}.zip")
        assert problem is None if words is None else words in problem, (name, problem)


@pytest.mark.parametrize("member,link", [
    ("train/../../escaped.txt", None),
    ("/tmp/unet-course-escaped.txt", None),
    ("train/innocent.jpg", "../../escaped.txt"),  # a symbolic link pointing out
])
def test_a_member_that_would_escape_the_folder_is_refused(fake_kaggle, kaggle_zips, tmp_path, member, link):
    with zipfile.ZipFile(io.BytesIO(kaggle_zips["train.zip"])) as zf:
        members = {n: zf.read(n) for n in zf.namelist()[:3]}
    if link is None:
        members[member] = b"gotcha"
        fake_kaggle.files["train.zip"] = zip_bytes(members)
    else:
        fake_kaggle.files["train.zip"] = zip_bytes(members, links={member: link})
    root = tmp_path / "deep" / "carvana"
    with pytest.raises(DownloadError) as err:
        download_carvana(root)
    assert "Refusing to unpack" in str(err.value) and repr(member) in str(err.value)
    assert not (root / "train").exists()  # nothing at all was unpacked from it
    assert not list(tmp_path.rglob("escaped.txt")) and not Path("/tmp/unet-course-escaped.txt").exists()


# ----------------------------------------------------------------------------- when it cannot work
def test_missing_kaggle_package_gives_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "kaggle", None)
    with pytest.raises(DownloadError) as err:
        download_carvana(tmp_path / "carvana")
    assert "pip install kaggle" in str(err.value) and "toy" in str(err.value)


def _credential_advice(message: str) -> None:
    for words in ("~/.kaggle/kaggle.json", "chmod 600", "KAGGLE_USERNAME", "KAGGLE_KEY", "Colab",
                  "https://www.kaggle.com/settings"):
        assert words in message, words


@pytest.mark.parametrize("error", [OSError("Could not find kaggle.json. Make sure it's located in /root/.kaggle."),
                                   SystemExit(1)])  # old kaggle versions raise; new ones print and exit(1)
def test_missing_credentials_say_where_kaggle_json_goes(fake_kaggle, tmp_path, error):
    def refuse():
        raise error

    fake_kaggle.authenticate = refuse
    with pytest.raises(DownloadError) as err:
        download_carvana(tmp_path / "carvana")
    _credential_advice(str(err.value))
    assert fake_kaggle.calls == []


def test_kaggle_that_fails_while_importing_is_explained(monkeypatch, tmp_path):
    """The real package authenticates in its __init__: an import that raises means no credentials."""
    package = tmp_path / "site" / "kaggle"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise OSError('Could not find kaggle.json. Make sure it is in ~/.kaggle')\n")
    monkeypatch.delitem(sys.modules, "kaggle", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(DownloadError) as err:
        download_carvana(tmp_path / "carvana")
    _credential_advice(str(err.value))
    assert "kaggle said: Could not find kaggle.json" in str(err.value)


class HTTPError(Exception):
    """Like requests.HTTPError: the status sits on .response.status_code."""

    def __init__(self, status: int) -> None:
        super().__init__(f"{status} Client Error for url: https://www.kaggle.com/api/v1/competitions/data/download")
        self.response = types.SimpleNamespace(status_code=status)


class ApiException(Exception):
    """Like kaggle.rest.ApiException (kaggle < 1.7): the status sits on .status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"({status}) Reason: Forbidden")
        self.status = status


@pytest.mark.parametrize("error", [HTTPError(403), ApiException(403)])
def test_forbidden_means_accept_the_rules(fake_kaggle, tmp_path, error):
    fake_kaggle.error = error
    with pytest.raises(DownloadError) as err:
        download_carvana(tmp_path / "carvana")
    assert RULES_URL in str(err.value) and "403" in str(err.value) and "accept" in str(err.value).lower()


def test_unauthorized_means_a_new_token(fake_kaggle, tmp_path):
    fake_kaggle.error = HTTPError(401)
    with pytest.raises(DownloadError, match="Create New Token"):
        download_carvana(tmp_path / "carvana")


class NewConnectionError(OSError):
    """Named like urllib3's: what requests wraps when DNS or the connection fails."""


class MaxRetryError(Exception):
    pass


def _wrapped_network_error() -> Exception:
    try:
        try:
            raise NewConnectionError("Failed to establish a new connection: [Errno -3] Temporary failure")
        except NewConnectionError as inner:
            raise MaxRetryError("Max retries exceeded with url: /api/v1/competitions") from inner
    except MaxRetryError as outer:
        return outer


@pytest.mark.parametrize("error", [ConnectionError("Network is unreachable"), _wrapped_network_error()])
def test_no_network_says_how_to_copy_the_files_by_hand(fake_kaggle, tmp_path, error):
    fake_kaggle.error = error
    root = tmp_path / "carvana"
    with pytest.raises(DownloadError) as err:
        download_carvana(root)
    message = str(err.value)
    assert "Could not reach kaggle.com" in message and str(root) in message
    assert all(name in message for name in NAMES) and "toy set works" in message and RULES_URL in message


# ----------------------------------------------------------------------------- the command line
def test_cli_prints_the_message_without_a_traceback(tmp_path):
    site = tmp_path / "site" / "kaggle"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(
        "class _Forbidden(Exception):\n"
        "    status = 403\n"
        "class _Api:\n"
        "    def authenticate(self): pass\n"
        "    def competition_download_file(self, *args, **kwargs): raise _Forbidden('(403) Forbidden')\n"
        "api = _Api()\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "course_utils.data", "download", "carvana", "--root",
                          str(tmp_path / "carvana")], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1
    assert RULES_URL in out.stderr and "Traceback" not in out.stderr + out.stdout


def test_cli_makes_the_toy_set_and_explains_itself(tmp_path, capsys):
    assert cli(["toy", "carvana", "--root", str(tmp_path / "toy"), "--cars", "1", "--size", "32", "48"]) == 0
    assert len(list((tmp_path / "toy" / "train").iterdir())) == 16 and "Toy Carvana ready" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        cli(["download", "--help"])
    assert done.value.code == 0 and "train_masks.csv.zip" in capsys.readouterr().out
    assert cli(["cache", "carvana", "--root", str(tmp_path / "nowhere"), "--size", "32", "48"]) == 1
    assert "No Carvana data set" in capsys.readouterr().err


# ============================================================================= NYU Depth V2 over HTTP
# A real HTTP server on 127.0.0.1 serves the toy set's four files (the real formats), honouring
# Range requests like NYU's server and GitHub's do; it can drop a connection half-way, ignore
# Range, or send other bytes than expected.
NYU_NAMES = ("nyu_depth_v2_labeled.mat", "splits.mat", "classMapping40.mat", "class13Mapping.mat")


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server API)
        srv, name = self.server, self.path.lstrip("/")
        srv.requests.append((name, self.headers.get("Range")))
        data = srv.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start, ask = 0, self.headers.get("Range")
        if ask and srv.honour_range:
            start = int(ask.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.cut.pop(name, None)  # drop the connection after this many bytes, once
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = cut is not None

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def nyu_bytes(tmp_path_factory) -> dict[str, bytes]:
    toy = make_toy_nyuv2(tmp_path_factory.mktemp("nyu") / "toy", n_images=4, seed=2, image_size=(32, 48))
    return {name: (toy / name).read_bytes() for name in NYU_NAMES}


@pytest.fixture()
def server(nyu_bytes):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    srv.files, srv.requests, srv.cut, srv.honour_range = dict(nyu_bytes), [], {}, True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    thread = threading.Thread(target=srv.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def remotes(base: str, files: dict[str, bytes]) -> tuple[Remote, ...]:
    return tuple(Remote(n, base + n, len(d), hashlib.sha256(d).hexdigest()) for n, d in files.items())


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"  # nothing listens there once closed


def test_nyuv2_download_fetches_checks_and_skips_next_time(server, nyu_bytes, tmp_path, capsys):
    files = remotes(server.url, nyu_bytes)
    root = download_nyuv2(tmp_path / "nyuv2", files=files)
    assert all((root / n).read_bytes() == d for n, d in nyu_bytes.items()) and not list(root.glob("*.part"))
    assert [r[0] for r in server.requests] == list(NYU_NAMES) and all(r[1] is None for r in server.requests)
    assert "NYUv2 is ready" in capsys.readouterr().out and len(NYUv2Dataset(root, "test")) >= 1
    server.requests.clear()
    download_nyuv2(root, files=files)
    assert server.requests == [] and capsys.readouterr().out.count("skipping") == 4


def test_nyuv2_download_resumes_after_a_dropped_connection(server, nyu_bytes, tmp_path):
    files, root = remotes(server.url, nyu_bytes), tmp_path / "nyuv2"
    half = len(nyu_bytes[NYU_NAMES[0]]) // 2
    server.cut[NYU_NAMES[0]] = half
    with pytest.raises(DownloadError) as err:
        download_nyuv2(root, files=files)
    assert "resumes" in str(err.value) and (root / f"{NYU_NAMES[0]}.part").stat().st_size == half
    download_nyuv2(root, files=files)
    assert (NYU_NAMES[0], f"bytes={half}-") in server.requests  # only the missing half was asked for
    assert (root / NYU_NAMES[0]).read_bytes() == nyu_bytes[NYU_NAMES[0]] and not list(root.glob("*.part"))


def test_nyuv2_download_starts_over_when_the_server_ignores_range(server, nyu_bytes, tmp_path):
    server.honour_range = False
    root = tmp_path / "nyuv2"
    root.mkdir()
    data = nyu_bytes[NYU_NAMES[0]]
    (root / f"{NYU_NAMES[0]}.part").write_bytes(data[:1000])
    download_nyuv2(root, files=remotes(server.url, nyu_bytes))
    assert (NYU_NAMES[0], "bytes=1000-") in server.requests and (root / NYU_NAMES[0]).read_bytes() == data


def test_nyuv2_hand_copied_files_need_no_network(nyu_bytes, tmp_path):
    root = tmp_path / "nyuv2"
    root.mkdir()
    for name, data in nyu_bytes.items():
        (root / name).write_bytes(data)
    download_nyuv2(root, files=remotes(closed_port_url(), nyu_bytes))
    assert len(NYUv2Dataset(root, "train")) >= 1


def test_nyuv2_a_short_hand_copy_is_resumed_a_damaged_one_replaced(server, nyu_bytes, tmp_path):
    root = tmp_path / "nyuv2"
    root.mkdir()
    data = nyu_bytes[NYU_NAMES[0]]
    (root / NYU_NAMES[0]).write_bytes(data[:3000])  # a copy that stopped early
    damaged = bytearray(nyu_bytes["splits.mat"])
    damaged[-5] ^= 0xFF
    (root / "splits.mat").write_bytes(bytes(damaged))  # right size, wrong bytes
    download_nyuv2(root, files=remotes(server.url, nyu_bytes))
    assert (NYU_NAMES[0], "bytes=3000-") in server.requests and ("splits.mat", None) in server.requests
    assert all((root / n).read_bytes() == d for n, d in nyu_bytes.items())


def test_nyuv2_wrong_size_or_hash_is_refused_and_deleted(server, nyu_bytes, tmp_path):
    files = list(remotes(server.url, nyu_bytes))
    files[1] = Remote("splits.mat", files[1].url, files[1].size - 10, files[1].sha256)  # the server sends more
    with pytest.raises(DownloadError, match="not the expected file") as err:
        download_nyuv2(tmp_path / "a", files=tuple(files))
    assert "deleted" in str(err.value) and not list((tmp_path / "a").glob("splits.mat*"))
    files[1] = Remote("splits.mat", files[1].url, len(nyu_bytes["splits.mat"]), "0" * 64)
    with pytest.raises(DownloadError, match="SHA-256"):
        download_nyuv2(tmp_path / "b", files=tuple(files))
    assert not list((tmp_path / "b").glob("splits.mat*"))


def test_nyuv2_http_errors_and_no_network_say_what_to_do(server, nyu_bytes, tmp_path):
    server.files.pop("class13Mapping.mat")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_nyuv2(tmp_path / "a", files=remotes(server.url, nyu_bytes))
    root = tmp_path / "b"
    with pytest.raises(DownloadError) as err:
        download_nyuv2(root, files=remotes(closed_port_url(), nyu_bytes))
    message = str(err.value)
    assert "Could not download" in message and str(root) in message and "toy nyuv2" in message
    assert all(name in message for name in NYU_NAMES)


def test_nyuv2_cli_offline_prints_one_message(nyu_bytes, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "NYUV2_FILES", remotes(closed_port_url(), nyu_bytes))
    assert cli(["download", "nyuv2", "--root", str(tmp_path / "nyuv2")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Could not download") and "Traceback" not in err


def test_nyuv2_files_are_the_published_ones(real_nyuv2_meta):
    """Sizes and hashes of the metadata files match the real copies; the big file's size is its known one."""
    assert [r.name for r in NYUV2_FILES] == list(NYU_NAMES)
    assert NYUV2_FILES[0].size == 2972037809 and all(r.url.startswith("https://") for r in NYUV2_FILES)
    meta = real_nyuv2_meta
    for r in NYUV2_FILES[1:]:
        data = (meta / r.name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (r.size, r.sha256), r.name
