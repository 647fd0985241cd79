"""download_isbi2012 against a real HTTP server on 127.0.0.1 serving the real ISBI 2012 stacks
(from ../shared/real_samples), never the internet: a fresh download, a resume, a wrong file,
no network, the environment variable, ensure_isbi2012 and the command line."""
from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import _real_samples

from course_utils.data import DownloadError, check_isbi2012, download_isbi2012, ensure_isbi2012, write_stack
from course_utils.data import isbi2012_download as download
from course_utils.data.__main__ import main as cli
from course_utils.data.isbi2012 import read_stack

NAMES = ("train-volume.tif", "train-labels.tif", "test-volume.tif")


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files, honouring Range like raw.githubusercontent.com; server.cut drops a
    connection after that many bytes, once."""

    def do_GET(self):  # noqa: N802 (the http.server API)
        srv, name = self.server, self.path.rsplit("/", 1)[-1]
        srv.requests.append((name, self.headers.get("Range")))
        data = srv.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start, ask = 0, self.headers.get("Range")
        end = len(data) - 1
        if ask:
            first, _, last = ask.split("=")[1].partition("-")
            start, end = int(first), int(last) if last else end
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:end + 1]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.cut.pop(name, None) if ask != "bytes=0-0" else None
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = cut is not None

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def real_bytes() -> dict[str, bytes]:
    root = _real_samples("isbi2012", "test-volume.tif")
    return {name: (root / name).read_bytes() for name in NAMES}


@pytest.fixture()
def server(real_bytes):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.cut = dict(real_bytes), [], {}
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/isbi/data/"
    thread = threading.Thread(target=srv.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/data/"  # nothing listens there once closed


def stack_bytes(pages: np.ndarray, folder) -> bytes:
    """The bytes of pages written as a multi-page TIFF (through a file in folder)."""
    return write_stack(folder / "made.tif", pages).read_bytes()


def fetched(srv) -> list[str]:
    """The files the server sent bodies of (not the one-byte size queries)."""
    return [name for name, ask in srv.requests if ask != "bytes=0-0"]


# ----------------------------------------------------------------------------- downloads that work
def test_a_fresh_download_fetches_checks_and_skips_next_time(server, real_bytes, tmp_path, capsys):
    root = download_isbi2012(tmp_path / "isbi2012", base_url=server.url)
    assert root == tmp_path / "isbi2012" and all((root / n).read_bytes() == d for n, d in real_bytes.items())
    assert fetched(server) == list(NAMES) and not list(root.glob("*.part"))
    assert "ISBI 2012 is ready" in capsys.readouterr().out
    check_isbi2012(root)
    server.requests.clear()
    download_isbi2012(root, base_url=closed_port_url())  # no network needed the second time
    assert server.requests == [] and capsys.readouterr().out.count("checked, skipping") == 3


def test_an_interrupted_download_resumes_where_it_stopped(server, real_bytes, tmp_path):
    root, half = tmp_path / "isbi2012", len(real_bytes[NAMES[1]]) // 2
    server.cut[NAMES[1]] = half
    with pytest.raises(DownloadError) as err:
        download_isbi2012(root, base_url=server.url)
    assert "resumes" in str(err.value) and (root / f"{NAMES[1]}.part").stat().st_size == half
    download_isbi2012(root, base_url=server.url)
    assert (NAMES[1], f"bytes={half}-") in server.requests  # only the missing half was asked for
    assert (root / NAMES[1]).read_bytes() == real_bytes[NAMES[1]] and not list(root.glob("*.part"))


def test_a_part_file_left_by_hand_is_resumed(server, real_bytes, tmp_path):
    root = tmp_path / "isbi2012"
    root.mkdir()
    data = real_bytes[NAMES[0]]
    (root / f"{NAMES[0]}.part").write_bytes(data[:len(data) // 3])
    download_isbi2012(root, base_url=server.url)
    assert (NAMES[0], f"bytes={len(data) // 3}-") in server.requests and (root / NAMES[0]).read_bytes() == data


def test_hand_copied_files_need_no_network_and_a_wrong_one_is_replaced(server, real_bytes, tmp_path, capsys):
    root = tmp_path / "isbi2012"
    root.mkdir()
    for name, data in real_bytes.items():
        (root / name).write_bytes(data)
    download_isbi2012(root, base_url=closed_port_url())
    (root / NAMES[2]).write_bytes(stack_bytes(read_stack(root / NAMES[2])[:29], tmp_path))  # someone's 29-page copy
    download_isbi2012(root, base_url=server.url)
    assert fetched(server) == [NAMES[2]] and (root / NAMES[2]).read_bytes() == real_bytes[NAMES[2]]
    assert "is not the challenge's test-volume.tif (29 pages of 512 x 512" in capsys.readouterr().out


def test_the_environment_variable_sets_the_address_and_the_argument_wins(server, tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_COURSE_ISBI2012_URL", server.url.rstrip("/"))  # a missing slash is fine
    monkeypatch.setenv("UNET_COURSE_DATA", str(tmp_path / "data"))
    root = download_isbi2012()
    assert root == tmp_path / "data" / "isbi2012" and fetched(server) == list(NAMES)
    with pytest.raises(DownloadError, match="Could not download"):
        download_isbi2012(tmp_path / "other", base_url=closed_port_url())


def test_ensure_checks_what_is_there_and_downloads_what_is_not(server, real_bytes, tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_COURSE_ISBI2012_URL", server.url)
    root = ensure_isbi2012(tmp_path / "isbi2012")
    assert fetched(server) == list(NAMES)
    server.requests.clear()
    assert ensure_isbi2012(root) == root and server.requests == []
    assert download.ISBI2012_URL.startswith("https://") and download.ISBI2012_URL.endswith("/data/")


# ----------------------------------------------------------------------------- when it cannot work
@pytest.mark.parametrize("what,says", [("pages", "29 pages of 512 x 512"), ("labels", "holds the values [128]"),
                                       ("html", "not a readable TIFF stack")])
def test_a_file_that_is_not_the_challenges_is_deleted_with_a_message(server, real_bytes, tmp_path, what, says):
    real = _real_samples("isbi2012", "test-volume.tif")
    if what == "pages":
        name = NAMES[0]
        server.files[name] = stack_bytes(read_stack(real / name)[:29], tmp_path)
    elif what == "labels":
        name, pages = NAMES[1], read_stack(real / NAMES[1])
        pages[3, 100, 100] = 128
        server.files[name] = stack_bytes(pages, tmp_path)
    else:
        name = NAMES[2]
        server.files[name] = b"<html><body>Please sign in</body></html>"
    root = tmp_path / "isbi2012"
    with pytest.raises(DownloadError) as err:
        download_isbi2012(root, base_url=server.url)
    message = str(err.value)
    assert says in message and "not the ISBI 2012 challenge's" in message and "deleted" in message
    assert not list(root.glob(f"{name}*")) and not list(root.glob(f".{name}*"))


def test_no_network_says_where_to_put_hand_copied_files(tmp_path):
    root = tmp_path / "isbi2012"
    with pytest.raises(DownloadError) as err:
        download_isbi2012(root, base_url=closed_port_url())
    message = str(err.value)
    assert "Could not download train-volume.tif" in message and "Connection refused" in message
    assert all(str(root / name) in message for name in NAMES)
    assert "register" in message and download.ISBI2012_SITE in message
    assert f"download isbi2012 --root {root}" in message


def test_a_missing_file_on_the_server_is_an_http_error(server, tmp_path):
    server.files.pop(NAMES[2])
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_isbi2012(tmp_path / "isbi2012", base_url=server.url)


# ----------------------------------------------------------------------------- the command line
def test_the_command_line_downloads_from_the_address_in_the_environment(server, real_bytes, tmp_path):
    env = dict(os.environ, UNET_COURSE_ISBI2012_URL=server.url)
    root = tmp_path / "isbi2012"
    out = subprocess.run([sys.executable, "-m", "course_utils.data", "download", "isbi2012", "--root", str(root)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ISBI 2012 is ready" in out.stdout and all((root / n).read_bytes() == d for n, d in real_bytes.items())


def test_the_command_line_offline_prints_one_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNET_COURSE_ISBI2012_URL", closed_port_url())
    assert cli(["download", "isbi2012", "--root", str(tmp_path / "isbi2012")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Could not download") and "Traceback" not in err and "register" in err
