"""Every notebook opens with the Colab badge and the standard set-up cell, stamped from the one
repository address in pyproject.toml (python -m course_utils.colab)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils.colab import (BADGE_TAG, SETUP_TAG, colab_url, problems, readme_with_badges, repository_url,
                                setup_source, stamp)

REPO = Path(__file__).resolve().parents[1]


def test_committed_notebooks_open_with_the_badge_and_set_up_cell():
    url = repository_url()
    assert problems(REPO / "notebooks", url) == []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert f"/blob/main/notebooks/{path.name}" in nb.cells[0].source
        assert nb.cells[1].cell_type == "markdown" and nb.cells[1].source.startswith("# Lesson")
        assert sum("google.colab" in c.source for c in nb.cells if c.cell_type == "code") == 1


def test_stamping_replaces_the_old_cell_and_is_idempotent(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Lesson 99: Test"),
        nbformat.v4.new_code_cell('REPO_URL = "old"\nif "google.colab" in sys.modules:\n    pass'),
        nbformat.v4.new_code_cell("x = 1"),
    ])
    url = "https://github.com/someone/unet-course"
    once = stamp(nb, "99_test.ipynb", url)
    assert [c.metadata.get("tags", [None])[0] for c in once.cells[:3]] == [BADGE_TAG, None, SETUP_TAG]
    assert [c.source for c in once.cells[3:]] == ["x = 1"] and "old" not in str(once)
    assert "colab.research.google.com/github/someone/unet-course/blob/main/notebooks/99_test.ipynb" in once.cells[0].source
    ids = [c.id for c in once.cells]
    twice = stamp(once, "99_test.ipynb", url)
    assert [c.source for c in twice.cells] == [c.source for c in once.cells]
    assert [c.id for c in twice.cells] == ids  # a restamp keeps the cells' ids
    nbformat.write(twice, tmp_path / "99_test.ipynb")
    assert problems(tmp_path, url) == []
    assert len(problems(tmp_path, "https://github.com/other/unet-course")) == 2


def test_the_set_up_cell_shows_as_one_title_line_with_a_drive_checkbox(tmp_path):
    url = "https://github.com/someone/unet-course"
    nb = stamp(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Lesson 99")]), "99_test.ipynb", url)
    setup = nb.cells[2]
    assert setup.source.splitlines()[0].startswith("#@title Set-up")  # the one line Colab's form shows
    assert setup.metadata["cellView"] == "form" and setup.metadata["jupyter"]["source_hidden"] is True
    assert 'USE_DRIVE = False  #@param {type:"boolean"}' in setup.source
    del setup.metadata["jupyter"]  # unfolded in JupyterLab: the check names it
    nbformat.write(nb, tmp_path / "99_test.ipynb")
    assert problems(tmp_path, url) == ["99_test.ipynb: the set-up cell is not shown folded to its title "
                                       "(cellView form, source_hidden)"]


def test_set_up_cell_runs_off_colab_and_prints_the_doctor():
    proc = subprocess.run([sys.executable, "-c", setup_source("https://github.com/someone/unet-course")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "device:" in proc.stdout and "profile:" in proc.stdout and "[Colab]" not in proc.stdout


def test_repository_address_must_be_a_github_project(tmp_path):
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project]\nname = "x"\n[project.urls]\nRepository = "https://gitlab.com/a/b.git"\n')
    with pytest.raises(ValueError, match="https://github.com/OWNER/NAME"):
        repository_url(bad)
    bad.write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match="Repository"):
        repository_url(bad)


def test_readme_lesson_badges_point_at_the_same_repository():
    url = repository_url()
    readme = (REPO / "README.md").read_text()
    assert readme_with_badges(readme, url) == readme
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert colab_url(url, path.name) in readme, path.name
    moved = readme_with_badges(readme, "https://github.com/someone/fork")
    lessons = moved.split("## Lessons")[1].split("## Predicting")[0]
    assert "github/someone/fork/blob/main/notebooks/10_nyu_segmentation.ipynb" in lessons and "OWNER" not in lessons
