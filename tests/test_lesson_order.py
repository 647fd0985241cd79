"""No lesson may use a course_utils name before the lesson that teaches it.

Each public name's docstring ends with the lessons that teach it ("Lesson 06.", tested in
test_package_layout.py); the first lesson named there is where the idea is introduced. A notebook
that imports a name whose first lesson comes later uses an idea before it is taught. (Lesson 00
shows the whole network and counts it, so `UNet` and `count_parameters` name lesson 00 first, and
the lessons that build it say so.)
"""
from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import course_utils

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
FIRST_LESSON = re.compile(r"Lessons? (\d\d)")


def first_lesson(name: str) -> int | None:
    """The first lesson the last line of the name's docstring cites, or None."""
    doc = (inspect.getdoc(getattr(course_utils, name)) or "").strip()
    match = FIRST_LESSON.search(doc.splitlines()[-1]) if doc else None
    return int(match.group(1)) if match else None


def names_used(path: Path) -> set[str]:
    """course_utils names a notebook imports (`from course_utils import ...`) or reads (`course_utils.x`)."""
    names = set()
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        tree = ast.parse("\n".join(line for line in lines if not line.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "course_utils":
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "course_utils":
                names.add(node.attr)
    return {n for n in names if n in course_utils.__all__}


def used_early(path: Path) -> set[str]:
    lesson = int(path.name[:2])
    return {n for n in names_used(path) if (first_lesson(n) or 0) > lesson}


def test_no_lesson_uses_a_name_a_later_lesson_teaches():
    found = {path.name[:2]: used_early(path) for path in NOTEBOOKS}
    assert len(found) >= 13 and not {k: v for k, v in found.items() if v}


def test_the_order_check_sees_a_forward_use(tmp_path):
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": ["%matplotlib inline\n", "from course_utils import UNet, fit\n", "course_utils.evaluate\n",
                       "course_utils.car_photo\n"]}
    path = tmp_path / "03_probe.ipynb"
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert names_used(path) == {"UNet", "fit", "evaluate", "car_photo"}
    assert used_early(path) == {"fit", "evaluate"}  # lessons 06 and 07; UNet and car_photo: lesson 00
