"""No lesson should use a course_utils name before the lesson that teaches it.

Each public name's docstring ends with the lesson that teaches it ("Lesson 06.", tested in
test_package_layout.py); a notebook that imports a name whose first lesson comes later uses an
idea before it is taught. The uses below are known and still to be reshaped (issue 13: lesson
04's ablation and lesson 05's training need fit, Dice and the Carvana loader of later lessons;
lessons 00-03 read their photos with lesson 05's dataset). The test fails on any new one, and
on one of these that is gone (then delete it here).
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

KNOWN = {
    "00": {"CarvanaDataset", "UNet", "count_parameters"},
    "01": {"CarvanaDataset", "has_dataset"},
    "02": {"CarvanaDataset", "UNet", "has_dataset", "pick_device"},
    "03": {"CarvanaDataset", "UNet"},
    "04": {"CarvanaDataset", "dice_score", "eval_transform", "fit", "set_threads", "split_cars"},
    "05": {"dice_score", "fit", "pixel_accuracy"},
    "06": {"dice_score"},
}


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


def test_no_lesson_uses_a_name_a_later_lesson_teaches_beyond_the_known_ones():
    found = {path.name[:2]: used_early(path) for path in NOTEBOOKS}
    found = {k: v for k, v in found.items() if v}
    assert found == KNOWN


def test_the_order_check_sees_a_forward_use(tmp_path):
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": ["%matplotlib inline\n", "from course_utils import UNet, fit\n", "course_utils.evaluate\n"]}
    path = tmp_path / "03_probe.ipynb"
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert names_used(path) == {"UNet", "fit", "evaluate"}
    assert used_early(path) == {"UNet", "fit", "evaluate"}  # lessons 04, 06 and 07
