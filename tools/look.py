"""Every lesson as a learner sees it: run it in JupyterLab in headless Chromium, screenshot each output.

    python3 tools/look.py [--out DIR] [--notebooks-dir DIR] [--timeout S] [LESSON ...]

LESSON filters the notebooks (found by globbing NN_*.ipynb in --notebooks-dir, default notebooks/)
by a part of their name: `00 04`, `evaluation`. For each lesson, a copy in a temporary root is
opened in a private JupyterLab (tools/browser.py; the quick profile, UNET_COURSE_PROFILE=quick,
unless set), all its cells run (Run All), and the page is photographed: DIR/NN_name/cell_KKK.png
for every cell's output area (KKK: the cell's number, from 0), and for every PredictionViewer-like
widget (an image with sliders) DIR/NN_name/cell_KKK_keys.png after pressing ArrowRight twice on
its first slider and ArrowLeft five times on its second. DIR/index.html shows them all, lesson by
lesson. Needs no network; the server and its kernels are stopped (by process id) at the end, on
error too, and the temporary root removed. Exit status 1 when a lesson timed out or a cell failed.
"""
from __future__ import annotations

import argparse
import html
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python3 tools/look.py` from anywhere

from tools.browser import jupyterlab, launch_chromium, open_notebook, run_all_cells  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1440, "height": 900}


def lessons(folder: Path, filters: list[str]) -> list[Path]:
    """The lesson notebooks NN_*.ipynb of folder, in order, those whose name holds one of the
    filters (all when none). README.md."""
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in found if not filters or any(f in p.stem for f in filters)]


def link_real_samples(data: Path) -> None:
    """The ISBI 2012 stacks from ../shared/real_samples (or $UNET_COURSE_REAL_SAMPLES) as data/isbi2012,
    as the tests have them: lesson 13 would otherwise download them, and the tool needs no network. README.md."""
    real = Path(os.environ.get("UNET_COURSE_REAL_SAMPLES") or REPO.parent / "shared" / "real_samples") / "isbi2012"
    if (real / "train-labels.tif").is_file() and not (data / "isbi2012").exists():
        data.mkdir(parents=True, exist_ok=True)
        (data / "isbi2012").symlink_to(real, target_is_directory=True)


def look_at(page, url: str, name: str, out: Path, timeout_s: float) -> dict:
    """Open and run one notebook; write its outputs' screenshots to out/. Returns what happened:
    images (file names, in order), finished (ran to the end in time), errors (cells that failed). README.md."""
    out.mkdir(parents=True, exist_ok=True)
    open_notebook(page, url, name)
    finished = run_all_cells(page, timeout_s)
    time.sleep(1.0)  # the last widgets and figures draw
    cells = page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell")  # this notebook's, in order
    images, errors = [], []
    for k in range(cells.count()):
        cell = cells.nth(k)
        area = cell.locator(".jp-OutputArea")
        if area.count() == 0 or area.first.locator(".jp-OutputArea-child").count() == 0:
            continue
        area = area.first
        if "Traceback (most recent call last)" in (area.inner_text() or ""):  # JupyterLab shows errors as stderr
            errors.append(k)
        images.append(_shoot(area, out / f"cell_{k:03d}.png"))
        if area.locator("img.widget-image").count() and area.locator(".widget-slider").count():
            _press_keys(page, area)
            images.append(_shoot(area, out / f"cell_{k:03d}_keys.png"))
    return {"images": images, "finished": finished, "errors": errors}


def _shoot(element, path: Path) -> str:
    """Screenshot one output area whole: a figure taller than the window gets a taller window for
    the picture (JupyterLab scrolls inside its own panel, so the page cannot scroll to show it)."""
    element.scroll_into_view_if_needed(timeout=10_000)
    box = element.bounding_box()
    tall = box is not None and box["height"] > VIEWPORT["height"] - 150
    if tall:
        element.page.set_viewport_size({"width": VIEWPORT["width"], "height": int(box["height"]) + 300})
        time.sleep(0.5)  # JupyterLab lays the panel out again
        element.scroll_into_view_if_needed(timeout=10_000)
    try:
        element.screenshot(path=str(path), timeout=30_000)
    finally:
        if tall:
            element.page.set_viewport_size(VIEWPORT)
    return path.name


def _press_keys(page, area) -> None:
    """Two steps right on the first slider, five left on the second; wait for the picture to settle."""
    image = area.locator("img.widget-image").first
    before = image.get_attribute("src")
    handles = area.locator(".widget-slider .noUi-handle")
    for k, (key, times) in enumerate([("ArrowRight", 2), ("ArrowLeft", 5)][:handles.count()]):
        handle = handles.nth(k)
        if not handle.is_visible():
            continue
        handle.focus()
        for _ in range(times):
            page.keyboard.press(key)
    try:
        page.wait_for_function("([img, src]) => img.src !== src && img.complete", arg=[image.element_handle(), before],
                               timeout=30_000)
        _wait_quiet(page)
    except Exception:  # a viewer with one image (or a slow model) keeps its picture: photograph it as it is
        pass


def _wait_quiet(page, seconds: float = 1.5, timeout: float = 60) -> None:
    """Until the kernel has been idle for `seconds` (the widget's observers have run)."""
    start, idle_since = time.monotonic(), None
    while time.monotonic() - start < timeout:
        idle = "| Idle" in (page.locator("#jp-main-statusbar").inner_text() or "")
        idle_since = (idle_since or time.monotonic()) if idle else None
        if idle_since and time.monotonic() - idle_since > seconds:
            return
        time.sleep(0.3)


def write_index(out: Path, results: dict[str, dict]) -> Path:
    """out/index.html: a contents list, then every lesson's screenshots in order, each under its name. README.md."""
    parts = ["<!doctype html><meta charset='utf-8'><title>The lessons as a learner sees them</title>",
             "<style>body{font-family:sans-serif;margin:24px;max-width:1500px}img{max-width:100%;"
             "border:1px solid #ccc;display:block;margin:4px 0 18px}h2{border-top:2px solid #888;padding-top:8px}"
             ".bad{color:#b00}</style><h1>The lessons as a learner sees them</h1><ul>"]
    for name, r in results.items():
        note = "" if r["finished"] and not r["errors"] else " <span class='bad'>(" + ", ".join(
            (["did not finish"] if not r["finished"] else []) + [f"error in cell {k}" for k in r["errors"]]) + ")</span>"
        parts.append(f"<li><a href='#{html.escape(name)}'>{html.escape(name)}</a>: {len(r['images'])} pictures{note}</li>")
    parts.append("</ul>")
    for name, r in results.items():
        parts.append(f"<h2 id='{html.escape(name)}'>{html.escape(name)}</h2>")
        for image in r["images"]:
            src = html.escape(f"{name}/{image}")
            parts.append(f"<div>{html.escape(image)}</div><a href='{src}'><img src='{src}' loading='lazy'></a>")
    path = out / "index.html"
    path.write_text("\n".join(parts))
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the lessons asked for in JupyterLab, write their screenshots and index.html. README.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="parts of notebook names to keep (default: all lessons)")
    parser.add_argument("--out", type=Path, default=Path("look"), help="folder for the screenshots (default ./look)")
    parser.add_argument("--notebooks-dir", type=Path, default=REPO / "notebooks", help="where the NN_*.ipynb are")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one lesson may run (default 1800)")
    args = parser.parse_args(argv)
    notebooks = lessons(args.notebooks_dir, args.lessons)
    if not notebooks:
        parser.error(f"no lesson NN_*.ipynb in {args.notebooks_dir} matches {args.lessons}")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    root = Path(tempfile.mkdtemp(prefix="unet-course-look-"))
    link_real_samples(root / "data")
    env = {"UNET_COURSE_PROFILE": os.environ.get("UNET_COURSE_PROFILE", "quick"),
           "UNET_COURSE_DATA": os.environ.get("UNET_COURSE_DATA", str(root / "data")),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        with jupyterlab(root, root / "jupyterlab.log", extra_env=env) as url, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                for notebook in notebooks:
                    shutil.copy(notebook, root / notebook.name)
                    page = browser.new_page(viewport=VIEWPORT)
                    started = time.monotonic()
                    try:
                        results[notebook.stem] = look_at(page, url, notebook.name, args.out / notebook.stem,
                                                         args.timeout)
                    finally:
                        page.evaluate("window.jupyterapp.commands.execute('kernelmenu:shutdown')")
                        page.close()
                    r = results[notebook.stem]
                    print(f"{notebook.stem}: {len(r['images'])} pictures in {time.monotonic() - started:.0f} s"
                          + ("" if r["finished"] else ", did NOT finish in time")
                          + (f", errors in cells {r['errors']}" if r["errors"] else ""), flush=True)
                    write_index(args.out, results)
            finally:
                browser.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"open {write_index(args.out, results).resolve()}")
    return 0 if all(r["finished"] and not r["errors"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
