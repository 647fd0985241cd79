"""PredictionViewer in a real browser: JupyterLab on localhost, headless Chromium driven by Playwright.

The test starts its own JupyterLab (no token, a temporary root, this interpreter as the kernel),
opens a notebook that shows the viewer on a small toy Carvana, runs it, moves the index slider
with the keyboard and checks that the picture the page shows changed. It saves a screenshot
under pytest's tmp dir and prints its path. Deselect with `-m "not browser"`. Skips, saying
why, where Chromium (Debian's `chromium` package; `.ci/run` installs it), Playwright or
JupyterLab is missing. Nothing is downloaded: Playwright drives the system Chromium (found on
PATH, or named by $UNET_COURSE_CHROMIUM).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install jupyterlab)")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")

CHROMIUM = os.environ.get("UNET_COURSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CELL = """\
import torch
from course_utils import CarvanaDataset, UNet, ensure_toy_carvana
from course_utils.viewer import PredictionViewer

torch.manual_seed(0)
dataset = CarvanaDataset(ensure_toy_carvana("toy_carvana", n_cars=2, image_size=(64, 96)))
PredictionViewer(UNet(3, 1, base_channels=8, depth=2), dataset, panel_width=192)"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_notebook(path: Path) -> None:
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "viewer", "metadata": {}, "outputs": [],
                   "source": CELL}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


def _private_jupyter(folder: Path) -> dict[str, str]:
    """Environment for a JupyterLab that keeps all its state in `folder`: a 'python3' kernel that
    runs this very interpreter (so the kernel imports this checkout), no news pop-up."""
    spec = folder / "data" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    notification = folder / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))
    return dict(os.environ, JUPYTER_PATH=str(folder / "data"), JUPYTER_DATA_DIR=str(folder / "data"),
                JUPYTER_CONFIG_DIR=str(folder / "config"), JUPYTER_RUNTIME_DIR=str(folder / "runtime"),
                JUPYTERLAB_SETTINGS_DIR=str(folder / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(folder / "workspaces"))


def _wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"JupyterLab did not answer at {url} within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def jupyterlab(tmp_path_factory):
    """(base URL, root folder) of a JupyterLab started for this test; stopped and removed after."""
    root = tmp_path_factory.mktemp("lab")
    env = _private_jupyter(root / ".jupyter")
    port = _free_port()
    log = root.parent / f"{root.name}-jupyterlab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
             "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}", "--LabApp.extension_manager=readonly",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server, log)
        yield url, root
    finally:
        _stop(server)
        shutil.rmtree(root, ignore_errors=True)


def _stop(server: subprocess.Popen) -> None:
    """Stop the server and its kernels (its own process group, started above), gently first."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: `apt-get install chromium` (Debian) "
                                             "gives /usr/bin/chromium; .ci/run installs it")
def test_viewer_slider_changes_the_picture_in_jupyterlab(jupyterlab, tmp_path):
    url, root = jupyterlab
    _write_notebook(root / "viewer.ipynb")
    screenshot = tmp_path / "viewer.png"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            _run_the_notebook(page, url)
            image = page.wait_for_selector("img.widget-image", timeout=90_000)
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image, timeout=10_000)
            scores = page.locator(".widget-html-content").first
            before = image.get_attribute("src")
            assert before.startswith("blob:") and "dataset index 0" in scores.inner_text()

            page.locator(".widget-slider .noUi-handle").first.focus()  # the index slider
            page.keyboard.press("ArrowRight")
            page.wait_for_function("([img, src]) => img.src !== src && img.complete && img.naturalWidth > 0",
                                   arg=[image, before], timeout=30_000)
            page.wait_for_function("el => el.innerText.includes('dataset index 1')",
                                   arg=scores.element_handle(), timeout=30_000)
            assert page.locator(".widget-readout").first.inner_text().strip() == "1"
            assert "Dice" in scores.inner_text()
            page.screenshot(path=str(screenshot))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"the page when the test failed: {tmp_path / 'failure.png'}; "
                  f"JupyterLab's log: {root.parent / (root.name + '-jupyterlab.log')}")
            raise
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot of the viewer in JupyterLab: {screenshot}")


def _run_the_notebook(page, url: str) -> None:
    """Open viewer.ipynb, wait until its kernel is idle, run its one cell with Shift+Enter."""
    page.goto(f"{url}/lab/tree/viewer.ipynb", timeout=60_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60_000)
    # a cell run before the kernel is connected is silently dropped: wait for the status bar's Idle
    page.wait_for_selector("#jp-main-statusbar >> text=/\\| Idle/", timeout=60_000)
    page.click(".jp-Notebook .jp-Cell .cm-content")
    page.keyboard.press("Shift+Enter")
