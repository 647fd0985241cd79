"""run_course runs each notebook in a fresh kernel and reports seconds, peak memory, budget and
pass/fail; a failing notebook makes the exit status 1, a slow one does not."""
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from course_utils.run_course import main


def write(path, *sources, budget=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A tiny lesson")] + [nbformat.v4.new_code_cell(s) for s in sources]
    if budget is not None:
        nb.metadata["course"] = {"budget_s": budget}
    nbformat.write(nb, path)
    return path


def row(table: str, name: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(name))
    return re.split(r"\s{2,}", line.strip())


def test_table_lists_each_notebook_and_a_failure_sets_the_exit_status(tmp_path):
    # the good one runs in its own folder and holds 150 MB for a moment: the report must show the peak
    good = write(tmp_path / "01_good.ipynb", f"import os\nassert os.path.samefile(os.getcwd(), {str(tmp_path)!r})",
                 "big = bytearray(150 * 2**20)\ndel big\nassert os.environ['UNET_COURSE_PROFILE'] == 'quick'",
                 budget=60)
    bad = write(tmp_path / "02_bad.ipynb", "x = 1", "raise ValueError('the mask has values 0 and 255')", "never = 1")
    md = tmp_path / "times.md"
    proc = subprocess.run([sys.executable, "-m", "course_utils.run_course", str(good), str(bad), "--markdown", str(md)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "UNET_COURSE_PROFILE": "full"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    name, seconds, peak, budget, slowest, status = row(proc.stdout, "01_good.ipynb")
    assert 0 < float(seconds) < 60 and 150 < float(peak) < 2000 and budget == "60" and status == "pass"
    name, seconds, peak, budget, slowest, status = row(proc.stdout, "02_bad.ipynb")
    assert float(seconds) > 0 and budget == "-" and status == "fail"
    assert row(proc.stdout, "total")[-1] == "1/2 passed"
    assert "02_bad.ipynb failed at cell 2: ValueError: the mask has values 0 and 255" in proc.stdout
    assert "no budget in metadata course.budget_s: 02_bad.ipynb" in proc.stdout
    assert "| 01_good.ipynb |" in md.read_text() and "| 02_bad.ipynb |" in md.read_text()


def test_over_budget_is_reported_not_failed(tmp_path, capsys):
    slow = write(tmp_path / "03_slow.ipynb", "import time\ntime.sleep(0.2)", budget=0.1)
    assert main([str(slow), "--profile", "quick"]) == 0
    *_, slowest, status = row(capsys.readouterr().out, "03_slow.ipynb")
    assert status == "pass (over budget)"
    assert re.fullmatch(r"1 \(0\.[2-9] s\)", slowest), slowest  # cell 1 (after the markdown) slept 0.2 s


def test_every_lesson_states_its_quick_profile_budget():
    """run_course prints each lesson's budget next to its measured time; TEACHING.md quotes both."""
    from course_utils.run_course import budget_s

    lessons = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
    assert len(lessons) == 15
    budgets = {p.name: budget_s(nbformat.read(p, as_version=4)) for p in lessons}
    assert all(isinstance(b, (int, float)) and 0 < b <= 300 for b in budgets.values()), budgets
