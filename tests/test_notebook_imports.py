"""Notebooks import course_utils in one style, and only its public names.

In a notebook's code cells every import of the package is `from course_utils import ...` (names in
course_utils.__all__) or `from course_utils.checks import ...` (the exercise checks); a cell that
needs the module itself may `import course_utils`. No submodule paths (course_utils.train, .data.cache,
...), no aliases, no star, no `_private` names. That every name in __all__ resolves is
test_environment.py's test_every_public_name_resolves.
"""
import ast
import json
from pathlib import Path

import pytest

import course_utils

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
PACKAGE = "course_utils"
CHECKS = "course_utils.checks"


def _code(source: str) -> str:
    """The cell's Python: IPython lines (`%magic`, `!shell`) blanked, so line numbers stay the cell's."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def _is_package(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def import_problems(source: str) -> list[tuple[int, str]]:
    """(line, what is wrong) for each import of course_utils in one cell's source that breaks the rule."""
    try:
        tree = ast.parse(_code(source))
    except SyntaxError as err:
        return [(err.lineno or 0, f"does not parse: {err.msg}")]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_package(alias.name) and (alias.name != PACKAGE or alias.asname):
                    written = alias.name + (f" as {alias.asname}" if alias.asname else "")
                    problems.append((node.lineno, f"`import {written}`: write `from course_utils import <name>` "
                                                  "(or a plain `import course_utils`)"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_package(node.module or ""):
            if node.module not in (PACKAGE, CHECKS):
                problems.append((node.lineno, f"`from {node.module} import ...`: import from course_utils "
                                              "(or course_utils.checks for the exercise checks)"))
                continue
            for alias in node.names:
                if alias.name == "*":
                    problems.append((node.lineno, f"`from {node.module} import *`: name what the lesson uses"))
                elif alias.name.startswith("_"):
                    problems.append((node.lineno, f"`{alias.name}` from {node.module} is private"))
                elif node.module == PACKAGE and alias.name not in course_utils.__all__:
                    problems.append((node.lineno, f"`{alias.name}` is not in course_utils.__all__: add it to "
                                                  "_EXPORTS in course_utils/__init__.py"))
                elif alias.asname:
                    problems.append((node.lineno, f"`{alias.name} as {alias.asname}`: import names as they are"))
    return sorted(problems)


def notebook_problems(path: Path) -> list[str]:
    """'<notebook>, cell <i>, line <j>: <problem>' for every bad import in a notebook's code cells
    (cell: 0-based index among all the notebook's cells; line: 1-based within the cell)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        out += [f"{path.name}, cell {index}, line {line}: {what}" for line, what in import_problems(source)]
    return out


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 12, f"expected the 12 lessons under notebooks/, found {len(NOTEBOOKS)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_imports_course_utils_in_one_style(path):
    problems = notebook_problems(path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source", [
    "import course_utils\nfrom course_utils import UNet, dice_score\nfrom course_utils.checks import check_double_conv",
    "%matplotlib inline\n!pip list\nfrom course_utils import (CarvanaDataset,\n                          UNet)",
    "import os, sys\nfrom torch import nn\nimport course_utils\n\n_ = course_utils.doctor()",
    "def f():\n    from course_utils import fit\n    return fit",
])
def test_the_rule_accepts_the_one_style(source):
    assert import_problems(source) == []


@pytest.mark.parametrize("source, line, fragment", [
    ("from course_utils.train import fit", 1, "from course_utils.train import"),
    ("import torch\n\nfrom course_utils.data.cache import cache_folder", 3, "from course_utils.data.cache import"),
    ("from course_utils.model import center_crop\nfrom course_utils import UNet", 1, "from course_utils.model"),
    ("import course_utils.train as train", 1, "`import course_utils.train as train`"),
    ("import os, course_utils.viz", 1, "`import course_utils.viz`"),
    ("import course_utils as cu", 1, "`import course_utils as cu`"),
    ("from course_utils import _EXPORTS", 1, "`_EXPORTS` from course_utils is private"),
    ("from course_utils.checks import _common", 1, "private"),
    ("from course_utils import UNet, not_a_public_name", 1, "`not_a_public_name` is not in course_utils.__all__"),
    ("from course_utils import *", 1, "import *"),
    ("from course_utils import UNet as Net", 1, "`UNet as Net`"),
    ("if True:\n    from course_utils.viewer import PredictionViewer", 2, "from course_utils.viewer import"),
    ("%time x = 1\nfrom course_utils.inference import predict_stack", 2, "from course_utils.inference import"),
    ("from course_utils import (UNet\n", 1, "does not parse"),
])
def test_the_rule_catches_doctored_sources(source, line, fragment):
    problems = import_problems(source)
    assert problems, f"no problem found in {source!r}"
    assert problems[0][0] == line and fragment in problems[0][1], problems


def test_a_doctored_notebook_is_named_with_cell_and_line(tmp_path):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# from course_utils.train import fit (prose)"]},
             {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": ["import course_utils\n", "from course_utils.train import TrainConfig, fit\n"]},
             {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": "from course_utils import UNet"}]
    path = tmp_path / "doctored.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    problems = notebook_problems(path)
    assert len(problems) == 1 and problems[0].startswith("doctored.ipynb, cell 1, line 2: "), problems
    with pytest.raises(AssertionError, match="doctored.ipynb, cell 1, line 2"):
        test_notebook_imports_course_utils_in_one_style(path)
