"""Student copies: solutions replaced by nbgrader's stub, everything else kept, and each copy
stops at its first exercise with NotImplementedError; every check explains a wrong answer."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import course_utils.checks
from course_utils.run_course import execute
from course_utils.student import SolutionMarkerError, exercise_cells, make_student_copy, write_student_copies

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LESSONS = [p for p in NOTEBOOKS if exercise_cells(nbformat.read(p, as_version=4))]
REGION = re.compile(r"^([ \t]*)#+ BEGIN SOLUTION[ \t]*\n.*?^[ \t]*#+ END SOLUTION[ \t]*$", re.M | re.S)
STUBS = {"code": "# YOUR CODE HERE\nraise NotImplementedError()", "markdown": "YOUR ANSWER HERE"}
CALLS_A_CHECK = re.compile(r"\bcheck_\w+\(")


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def code_exercises(nb: nbformat.NotebookNode) -> list[int]:
    """Exercise cells that are code (a markdown region is a written answer, with no check to run)."""
    return [i for i in exercise_cells(nb) if nb.cells[i].cell_type == "code"]


def solution_lines(source: str) -> list[str]:
    """The stripped lines strictly inside the solution regions of one cell."""
    return [line.strip() for m in REGION.finditer(source) for line in m.group(0).split("\n")[1:-1]]


def test_the_course_has_at_least_12_exercises():
    counts = {p.name: len(exercise_cells(read(p))) for p in NOTEBOOKS}
    assert sum(counts.values()) >= 12, f"exercises per notebook: {counts}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_student_copy_replaces_every_solution_and_keeps_the_rest(path):
    nb = read(path)
    student = make_student_copy(nb, path.name)
    assert len(student.cells) == len(nb.cells)
    for index, (cell, copy) in enumerate(zip(nb.cells, student.cells)):
        where = f"{path.name} cell {index}"
        if "SOLUTION" not in cell.source:
            assert copy == nb.cells[index], f"{where} has no exercise and must be kept as it is"
            continue
        # an independent oracle: each region, markers included, becomes the stub at its indentation
        stub = STUBS[cell.cell_type].split("\n")
        expected = REGION.sub(lambda m: "\n".join(m.group(1) + s for s in stub), cell.source)
        assert "SOLUTION" not in expected, f"{where}: markers this test cannot pair: {cell.source!r}"
        assert copy.source == expected, where
        assert copy.source.count(stub[-1]) == len(REGION.findall(cell.source)), where
        assert copy.metadata == cell.metadata and copy.get("outputs") == [] and copy.get("execution_count") is None
    assert student.metadata == nb.metadata


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_no_solution_line_survives_in_the_student_copy(path):
    nb = read(path)
    outside = {line.strip() for cell in nb.cells for line in REGION.sub("", cell.source).split("\n")}
    # lines also written outside any region ("return out", ")") may rightly stay; every other must go
    secret = {line for cell in nb.cells for line in solution_lines(cell.source)} - outside - {""}
    assert secret, f"{path.name}: found no solution lines to look for"
    student = make_student_copy(nb, path.name)
    student_lines = {line.strip() for cell in student.cells for line in cell.source.split("\n")}
    assert not secret & student_lines, f"{path.name}: solution lines left: {sorted(secret & student_lines)}"
    text = json.dumps(student)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_exercise_is_followed_by_a_check_before_the_next_exercise(path):
    nb = read(path)
    exercises = code_exercises(nb)
    for here, after in zip(exercises, exercises[1:] + [len(nb.cells)]):
        checks = [i for i in range(here, after) if nb.cells[i].cell_type == "code" and CALLS_A_CHECK.search(nb.cells[i].source)]
        assert checks, f"{path.name}: the exercise in cell {here} has no cell calling a course_utils.checks check after it"


def first_check_after(nb: nbformat.NotebookNode, exercise: int) -> int:
    return next(i for i in range(exercise, len(nb.cells))
                if nb.cells[i].cell_type == "code" and CALLS_A_CHECK.search(nb.cells[i].source))


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_student_copy_runs_until_its_first_exercise_and_stops_there(path):
    """Run All on a student copy: every cell before the first exercise runs; the exercise (or its
    check, for a function that is only called there) stops with NotImplementedError."""
    nb = read(path)
    if not code_exercises(nb):
        pytest.skip("only written (markdown) exercises: nothing raises")
    exercise = code_exercises(nb)[0]
    check = first_check_after(nb, exercise)
    run = execute(make_student_copy(nb, path.name), path.parent, profile="quick", timeout=300, stop_after=check)
    assert run.error_cell is not None, f"{path.name}: the student copy ran through its first check (cell {check}) without an error"
    said = f"{path.name}: cell {run.error_cell} raised {run.error_name}: {run.error_message[:300]}"
    assert exercise <= run.error_cell <= check, f"{said}; expected it to stop between cells {exercise} and {check}"
    unanswered = run.error_name == "NotImplementedError" or (
        run.error_name == "CheckFailed" and "still raises NotImplementedError" in run.error_message)
    assert unanswered, f"{said}; expected NotImplementedError from the unanswered exercise"


# ---- every check explains a wrong answer ---------------------------------------------------

def wrong_answer_tested_checks(tree: ast.Module, shared: frozenset[str] = frozenset()) -> set[str]:
    """Names of check_* functions a test module calls expecting CheckFailed: inside
    `with pytest.raises(CheckFailed|AssertionError)`, or passed to a helper that does so (one of
    the module's own, or one of `shared`, the helpers conftest.py defines)."""
    def expects_failure(node: ast.AST) -> bool:
        return isinstance(node, ast.With) and any(
            "raises" in ast.unparse(item.context_expr) and re.search(r"CheckFailed|AssertionError", ast.unparse(item.context_expr))
            for item in node.items)

    def names_in(node: ast.AST) -> set[str]:
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id.startswith("check_")}

    helpers = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and any(expects_failure(n) for n in ast.walk(f))}
    helpers |= shared
    found = set()
    for node in ast.walk(tree):
        if expects_failure(node):
            found |= names_in(node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in helpers:
            found |= set().union(*(names_in(a) for a in node.args)) if node.args else set()
    return found


def wrong_answer_helpers(tree: ast.Module) -> set[str]:
    """Functions of a module that call what they are given expecting CheckFailed."""
    return {f.name for f in tree.body if isinstance(f, ast.FunctionDef)
            and any(isinstance(n, ast.With) and "raises(CheckFailed" in ast.unparse(n) for n in ast.walk(f))}


def test_every_check_is_tested_with_a_wrong_answer():
    checks = {name for name in dir(course_utils.checks) if name.startswith("check_") and callable(getattr(course_utils.checks, name))}
    assert len(checks) >= 12
    shared = frozenset(wrong_answer_helpers(ast.parse((ROOT / "conftest.py").read_text())))
    assert "fails_with" in shared
    tested = set()
    for test_file in sorted((ROOT / "tests").glob("test_checks_*.py")):
        tested |= wrong_answer_tested_checks(ast.parse(test_file.read_text()), shared)
    missing = sorted(checks - tested)
    assert not missing, (f"checks with no test that feeds them a wrong answer (expecting CheckFailed) in "
                         f"tests/test_checks_*.py: {missing}")


def test_the_wrong_answer_finder_is_not_fooled():
    tree = ast.parse(
        "def fails_with(check, *a):\n    with pytest.raises(CheckFailed):\n        check(*a)\n"
        "def test_a():\n    fails_with(check_a, 1)\n"
        "def test_b():\n    check_b(right)\n"
        "def test_c():\n    with pytest.raises(CheckFailed, match='x'):\n        check_c(wrong)\n")
    assert wrong_answer_tested_checks(tree) == {"check_a", "check_c"}
    shared_only = ast.parse("from conftest import fails_with\ndef test_d():\n    fails_with(check_d, 1)\n")
    assert wrong_answer_tested_checks(shared_only) == set()
    assert wrong_answer_tested_checks(shared_only, frozenset({"fails_with"})) == {"check_d"}


# ---- the copy itself, on small notebooks ----------------------------------------------------

def notebook(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s[3:]) if s.startswith("md:") else nbformat.v4.new_code_cell(s) for s in cells]
    return nb


def test_stubs_keep_indentation_markdown_answers_and_clear_outputs():
    nb = notebook("class A:\n    def f(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n\n    x = 2",
                  "md:Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION\n", "print(1)")
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[2].execution_count = 3
    before = json.dumps(nb)
    student = make_student_copy(nb, "t.ipynb")
    assert student.cells[0].source == "class A:\n    def f(self):\n        # YOUR CODE HERE\n        raise NotImplementedError()\n\n    x = 2"
    assert student.cells[1].source == "Why?\n\nYOUR ANSWER HERE\n"
    assert student.cells[2].outputs == [] and student.cells[2].execution_count is None
    assert json.dumps(nb) == before, "the solution notebook itself must not change"


@pytest.mark.parametrize("source, says", [
    ("### BEGIN SOLUTION\nx = 1", "line 1: BEGIN SOLUTION has no END SOLUTION"),
    ("x = 1\n### END SOLUTION", "line 2: END SOLUTION without a BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "line 2: BEGIN SOLUTION again"),
    ("x = 1  # BEGIN SOLUTION ... END SOLUTION", "one line holds both"),
])
def test_unpaired_markers_name_the_notebook_cell_and_line(source, says):
    with pytest.raises(SolutionMarkerError) as info:
        make_student_copy(notebook("x = 0", source), "09_extra.ipynb")
    assert "09_extra.ipynb, cell 1 (code)" in str(info.value) and says in str(info.value)


def test_cli_writes_a_copy_of_every_notebook(tmp_path):
    out = tmp_path / "student"
    proc = subprocess.run([sys.executable, "-m", "course_utils.student", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    for path in LESSONS:
        n = len(exercise_cells(read(path)))
        assert f"{path.name}: {n} exercise" in proc.stdout
        assert read(out / path.name) == make_student_copy(read(path), path.name)


def test_cli_refuses_to_overwrite_the_solutions(tmp_path):
    src = tmp_path / "lessons"
    src.mkdir()
    nbformat.write(notebook("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), src / "01_a.ipynb")
    before = (src / "01_a.ipynb").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "course_utils.student", "--out", str(src) + "/", "--notebooks", str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "overwrite the solutions" in proc.stderr
    assert (src / "01_a.ipynb").read_bytes() == before


def test_cli_reports_unpaired_markers_and_writes_nothing(tmp_path):
    src, out = tmp_path / "lessons", tmp_path / "student"
    src.mkdir()
    nbformat.write(notebook("x = 1"), src / "01_a.ipynb")
    nbformat.write(notebook("md:intro", "def f():\n    ### BEGIN SOLUTION\n    return 1\n"), src / "02_b.ipynb")
    proc = subprocess.run([sys.executable, "-m", "course_utils.student", "--out", str(out), "--notebooks", str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "02_b.ipynb, cell 1 (code), line 2: BEGIN SOLUTION has no END SOLUTION" in proc.stderr
    assert not out.exists()


def test_write_student_copies_refuses_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        write_student_copies(tmp_path, tmp_path / "out")
