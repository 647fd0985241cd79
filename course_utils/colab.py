"""The "Open in Colab" badge and the set-up cell that every notebook opens with (lesson 00).

The repository's address is set in one place, `[project.urls] Repository` in pyproject.toml.
`python -m course_utils.colab` stamps the badge and the set-up cell into every notebook, and
the lesson badges of README.md, from it (run it after changing the address, or after adding a
lesson); `--check` only reports
notebooks that differ, and a test runs that check, so no notebook drifts.

The set-up cell does two things. Only on Colab: clone the course and install it (each Colab
notebook runs on a fresh machine), and, if the learner sets USE_DRIVE = True, keep the data
on Google Drive so it survives the session. On every machine: print `doctor()`, which names
the device and GPU (a T4 has no bf16, so mixed precision means fp16 there), RAM, versions,
which data sets are present and how to get the others.
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import nbformat

from .environment import REPO_ROOT

BADGE_TAG = "colab-badge"
SETUP_TAG = "course-setup"
# The set-up cell shows as its one title line: a form in Colab, a collapsed cell in JupyterLab.
SETUP_METADATA = {"tags": [SETUP_TAG], "cellView": "form", "jupyter": {"source_hidden": True}}
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def repository_url(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The course's repository, from pyproject.toml's [project.urls] Repository. See README.md."""
    try:
        url = tomllib.loads(pyproject.read_text())["project"]["urls"]["Repository"]
    except (OSError, KeyError) as e:
        raise ValueError(f"{pyproject} has no [project.urls] Repository entry ({e}); add the course's "
                         f"GitHub address there, e.g. Repository = \"https://github.com/OWNER/unet-course\".") from e
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"Repository = {url!r}: Colab opens notebooks from GitHub, so give "
                         f"https://github.com/OWNER/NAME (no trailing slash or .git).")
    return url


def colab_url(repo_url: str, notebook: str, branch: str = "main") -> str:
    """The address that opens notebooks/<notebook> of the repository in Colab. Lesson 00."""
    return f"https://colab.research.google.com/github/{repo_url.removeprefix('https://github.com/')}" \
           f"/blob/{branch}/notebooks/{notebook}"


KAGGLE_BADGE = "https://kaggle.com/static/images/open-in-kaggle.svg"


def kaggle_url(repo_url: str, notebook: str, branch: str = "main") -> str:
    """The address that opens notebooks/<notebook> of the (public) repository in a new Kaggle Notebook.
    README.md."""
    return f"https://kaggle.com/kernels/welcome?src={repo_url}/blob/{branch}/notebooks/{notebook}"


def kaggle_badge_source(repo_url: str, notebook: str) -> str:
    """An "Open in Kaggle" badge for `notebook`, to sit beside the Colab one. README.md."""
    return f"[![Open In Kaggle]({KAGGLE_BADGE})]({kaggle_url(repo_url, notebook)})"


def badge_source(repo_url: str, notebook: str) -> str:
    """The "Open in Colab" badge, the first cell of every lesson, opening `notebook`. Lesson 00."""
    return f"[![Open In Colab]({COLAB_BADGE})]({colab_url(repo_url, notebook)})"


def setup_source(repo_url: str) -> str:
    """The set-up cell, the first code cell of every lesson. Lesson 00."""
    return f'''\
#@title Set-up: installs the course on Colab, then checks this machine (lesson 00 explains)
# On Colab: install the course from its repository; with
# USE_DRIVE = True the data sets live on your Google Drive and survive the session.
# On every machine: doctor() reports the device, GPU, RAM, versions and the data sets.
import os, subprocess, sys

REPO_URL = "{repo_url}"  # set in pyproject.toml, stamped by python -m course_utils.colab
USE_DRIVE = False  #@param {{type:"boolean"}}
if "google.colab" in sys.modules:
    if not os.path.isdir("/content/unet-course"):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/unet-course"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/unet-course"], check=True)
    sys.path.insert(0, "/content/unet-course")  # importable without restarting the runtime
    if USE_DRIVE:
        from google.colab import drive

        drive.mount("/content/drive")
        os.environ["UNET_COURSE_DATA"] = "/content/drive/MyDrive/unet-course-data"

import course_utils

_ = course_utils.doctor()'''


def _tagged(nb: nbformat.NotebookNode, tag: str) -> int | None:
    return next((i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])), None)


def stamp(nb: nbformat.NotebookNode, notebook: str, repo_url: str) -> nbformat.NotebookNode:
    """Put the badge first and the set-up cell right after the title cell (replacing earlier
    ones: tagged cells, or an untagged first code cell that installs the course on Colab). See README.md."""
    ids = {}  # the replaced cells' ids, kept so that a restamp changes only what it must
    for tag in (BADGE_TAG, SETUP_TAG):
        if (i := _tagged(nb, tag)) is not None:
            ids[tag] = nb.cells[i].get("id")
            del nb.cells[i]
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)
    if first_code is not None and "google.colab" in nb.cells[first_code].source:
        del nb.cells[first_code]  # the older, per-notebook Colab cell
    setup = nbformat.v4.new_code_cell(setup_source(repo_url), metadata=SETUP_METADATA)
    badge = nbformat.v4.new_markdown_cell(badge_source(repo_url, notebook), metadata={"tags": [BADGE_TAG]})
    for cell, tag in ((setup, SETUP_TAG), (badge, BADGE_TAG)):
        if ids.get(tag):
            cell.id = ids[tag]
    title = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells[title:title] = [setup]
    nb.cells[0:0] = [badge]
    return nb


def problems(notebooks: Path, repo_url: str) -> list[str]:
    """What differs from a freshly stamped notebook: one line per notebook and problem. See README.md."""
    found = []
    for path in sorted(notebooks.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        badge, setup = _tagged(nb, BADGE_TAG), _tagged(nb, SETUP_TAG)
        if badge != 0 or nb.cells[0].source != badge_source(repo_url, path.name):
            found.append(f"{path.name}: the first cell is not the Colab badge for {colab_url(repo_url, path.name)}")
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        if setup is None or setup != code[0] or nb.cells[setup].source != setup_source(repo_url):
            found.append(f"{path.name}: the first code cell is not the standard set-up cell")
        elif {k: nb.cells[setup].metadata.get(k) for k in SETUP_METADATA} != SETUP_METADATA:
            found.append(f"{path.name}: the set-up cell is not shown folded to its title (cellView form, source_hidden)")
    return found


_README_BADGE = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/notebooks/")
_README_KAGGLE = re.compile(r"https://kaggle\.com/kernels/welcome\?src=https://github\.com/[\w.-]+/[\w.-]+/blob/main/notebooks/")


def readme_with_badges(text: str, repo_url: str) -> str:
    """README.md's text with every lesson badge (Colab and Kaggle) pointing at `repo_url`. See README.md."""
    return _README_KAGGLE.sub(kaggle_url(repo_url, ""), _README_BADGE.sub(colab_url(repo_url, ""), text))


def main(argv: list[str] | None = None) -> int:
    """CLI: stamp the badge and set-up cell into every notebook and README.md's badges, or `--check`
    them. See README.md."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.colab", description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=REPO_ROOT / "notebooks", help="the lessons' folder")
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ (exit 1 if any)")
    args = parser.parse_args(argv)
    try:
        url = repository_url()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.check:
        found = problems(args.notebooks, url)
        readme = args.notebooks.parent / "README.md"
        if readme.is_file() and readme_with_badges(readme.read_text(), url) != readme.read_text():
            found.append(f"README.md: a lesson badge does not point at {url}")
        print("\n".join(found) or f"every notebook opens with the badge and set-up cell for {url}")
        return 1 if found else 0
    for path in sorted(args.notebooks.glob("*.ipynb")):
        nb = stamp(nbformat.read(path, as_version=4), path.name, url)
        nbformat.write(nb, path)
        print(f"stamped {path.name}")
    readme = args.notebooks.parent / "README.md"
    if readme.is_file():
        readme.write_text(readme_with_badges(readme.read_text(), url))
        print("stamped the lesson badges in README.md")
    print("now run nbstripout on the notebooks (cell ids and metadata as committed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
