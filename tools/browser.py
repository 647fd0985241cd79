"""A private JupyterLab on localhost and a headless Chromium to look at it: shared by tools/look.py
and tests/test_browser.py.

Nothing is downloaded: Playwright drives the system Chromium (Debian's `chromium` package, found
on PATH or named by $UNET_COURSE_CHROMIUM) with the flags that keep it off the network. The
server keeps all its state in a folder of its own, runs this interpreter as its 'python3' kernel
(so kernels import this checkout), renders every cell (no windowing, so each output is in the
page) and is stopped, kernels and all, by its process group when the `jupyterlab` block ends.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

CHROMIUM = os.environ.get("UNET_COURSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now. README.md."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_jupyter(folder: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a JupyterLab that keeps all its state in `folder`: a 'python3' kernel that
    runs this very interpreter, no news pop-up, every notebook cell rendered. README.md."""
    spec = folder / "data" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    settings = folder / "settings" / "@jupyterlab"
    for extension, name, values in [("apputils-extension", "notification", {"fetchNews": "false"}),
                                    ("notebook-extension", "tracker", {"windowingMode": "none"})]:
        path = settings / extension / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return dict(os.environ, **(extra_env or {}), JUPYTER_PATH=str(folder / "data"),
                JUPYTER_DATA_DIR=str(folder / "data"), JUPYTER_CONFIG_DIR=str(folder / "config"),
                JUPYTER_RUNTIME_DIR=str(folder / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(folder / "settings"),
                JUPYTERLAB_WORKSPACES_DIR=str(folder / "workspaces"))


@contextmanager
def jupyterlab(root: Path, log: Path, extra_env: dict[str, str] | None = None, timeout: float = 60) -> Iterator[str]:
    """Start JupyterLab serving `root` (no token, 127.0.0.1, its state in root/.jupyter, its output in
    `log`); yield its base URL; stop it and its kernels when the block ends, on error too. README.md."""
    env = private_jupyter(root / ".jupyter", extra_env)
    port = free_port()
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
             "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}", "--LabApp.extension_manager=readonly",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.expose_app_in_browser=True"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server, log, timeout)
        yield url
    finally:
        stop(server)


def wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Return once the server answers /api/status; RuntimeError (with its log) if it exits or stays
    silent for `timeout` s. README.md."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer at {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """Stop the server and its kernels (its own process group), gently first. README.md."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)


def launch_chromium(playwright: Any) -> Any:
    """The system Chromium, headless and off the network, started by a sync Playwright. README.md."""
    if CHROMIUM is None:
        raise RuntimeError("Chromium is not installed: `apt-get install chromium` (Debian) gives /usr/bin/chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def open_notebook(page: Any, url: str, name: str, timeout_ms: int = 60_000) -> None:
    """Open root/name in JupyterLab, alone, and wait until its kernel is connected and idle (a cell run
    before that is silently dropped). README.md."""
    page.goto(f"{url}/lab/tree/{name}?reset", timeout=timeout_ms)  # ?reset: no tabs of an earlier page
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
    page.wait_for_selector("#jp-main-statusbar >> text=/\\| Idle/", timeout=timeout_ms)


def run_all_cells(page: Any, timeout_s: float) -> bool:
    """Run All (JupyterLab's notebook:run-all-cells) and wait until no cell is queued or running and
    the kernel has been idle for 2 s. False when `timeout_s` passed first (the kernel is left busy). README.md."""
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    started = time.monotonic()
    page.wait_for_function("() => document.querySelector('.jp-InputPrompt') === null || "
                           "[...document.querySelectorAll('.jp-InputPrompt')].some(p => /\\[[*\\d]/.test(p.textContent))",
                           timeout=60_000)
    idle_since = None
    while time.monotonic() - started < timeout_s:
        busy = page.evaluate("() => [...document.querySelectorAll('.jp-InputPrompt')].some("
                             "p => p.textContent.includes('[*]')) || "
                             "!/\\| Idle/.test(document.querySelector('#jp-main-statusbar')?.innerText || '')")
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 2:
            return True
        time.sleep(0.5)
    return False
