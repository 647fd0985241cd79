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
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install jupyterlab)")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")

from tools.browser import CHROMIUM, jupyterlab as running_jupyterlab, launch_chromium, open_notebook  # noqa: E402

CELL = """\
import torch
from course_utils import CarvanaDataset, UNet, ensure_toy_carvana
from course_utils.viewer import PredictionViewer

torch.manual_seed(0)
dataset = CarvanaDataset(ensure_toy_carvana("toy_carvana", n_cars=2, image_size=(64, 96)))
PredictionViewer(UNet(3, 1, base_channels=8, depth=2), dataset, panel_width=192)"""


def _write_notebook(path: Path) -> None:
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "viewer", "metadata": {}, "outputs": [],
                   "source": CELL}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


@pytest.fixture
def jupyterlab(tmp_path_factory):
    """(base URL, root folder) of a JupyterLab started for this test (tools/browser.py); stopped after."""
    root = tmp_path_factory.mktemp("lab")
    try:
        with running_jupyterlab(root, root.parent / f"{root.name}-jupyterlab.log") as url:
            yield url, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: `apt-get install chromium` (Debian) "
                                             "gives /usr/bin/chromium; .ci/run installs it")
def test_viewer_slider_changes_the_picture_in_jupyterlab(jupyterlab, tmp_path):
    url, root = jupyterlab
    _write_notebook(root / "viewer.ipynb")
    screenshot = tmp_path / "viewer.png"
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
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
            _check_the_layout(page, scores)
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
    open_notebook(page, url, "viewer.ipynb")
    page.click(".jp-Notebook .jp-Cell .cm-content")
    page.keyboard.press("Shift+Enter")


def _check_the_layout(page, scores) -> None:
    """Slider tracks wide enough to aim at; a click near the left end of the threshold track moves it
    there; the score lines keep their height whatever they say."""
    tracks = page.locator(".widget-slider .noUi-target")
    widths = [tracks.nth(k).bounding_box()["width"] for k in range(tracks.count())]
    assert len(widths) == 2 and min(widths) >= 280, f"slider tracks {widths} px wide"
    height = scores.bounding_box()["height"]
    box = tracks.nth(1).bounding_box()  # the threshold slider
    page.mouse.click(box["x"] + 0.05 * box["width"], box["y"] + box["height"] / 2)
    page.wait_for_function("el => parseFloat(el.innerText) < 0.15", arg=page.locator(".widget-readout").nth(1)
                           .element_handle(), timeout=30_000)
    page.wait_for_function("el => /threshold 0\\.(0|1)/.test(el.innerText)", arg=scores.element_handle(),
                           timeout=30_000)
    assert scores.bounding_box()["height"] == height
