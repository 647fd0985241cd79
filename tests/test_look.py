"""tools/look.py on a tiny made-up lesson: it runs the notebook in JupyterLab in headless Chromium and
writes a screenshot of each output (and of a widget after key presses) and an index page."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install jupyterlab)")
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")

from tools.browser import CHROMIUM  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CELLS = [
    ("markdown", "# A made-up lesson"),
    ("code", "print('hello, learner')"),
    ("code", "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()"),
    ("code", "x = 1"),  # no output: no picture
    ("code", "import ipywidgets as w\nfrom PIL import Image\nimport io\n"
             "def png(v):\n    b = io.BytesIO(); Image.new('RGB', (60, 30), (v * 20, 90, 160)).save(b, 'PNG')\n"
             "    return b.getvalue()\n"
             "s = w.IntSlider(0, 0, 10); im = w.Image(value=png(0), format='png')\n"
             "s.observe(lambda c: setattr(im, 'value', png(c['new'])), names='value')\nw.VBox([s, im])"),
]


def write_lesson(path: Path) -> None:
    cells = [{"cell_type": kind, "metadata": {}, "source": text, "id": f"c{k}",
              **({"execution_count": None, "outputs": []} if kind == "code" else {})}
             for k, (kind, text) in enumerate(CELLS)]
    path.write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}}))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: `apt-get install chromium` (Debian)")
def test_look_photographs_every_output_and_writes_an_index(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    write_lesson(lessons / "00_made_up.ipynb")
    write_lesson(lessons / "01_left_out.ipynb")
    out = tmp_path / "look"
    run = subprocess.run([sys.executable, str(REPO / "tools" / "look.py"), "--out", str(out), "--notebooks-dir",
                          str(lessons), "--timeout", "120", "00"], capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout + run.stderr
    pictures = sorted(p.name for p in (out / "00_made_up").glob("*.png"))
    assert pictures == ["cell_001.png", "cell_002.png", "cell_004.png", "cell_004_keys.png"], pictures
    assert all((out / "00_made_up" / p).stat().st_size > 500 for p in pictures)
    assert (out / "00_made_up" / "cell_004.png").read_bytes() != (out / "00_made_up" / "cell_004_keys.png").read_bytes()
    index = (out / "index.html").read_text()
    assert all(f"00_made_up/{p}" in index for p in pictures) and "01_left_out" not in index
    assert not (out / "01_left_out").exists()
