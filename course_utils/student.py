"""Student copies of the lessons: every exercise's solution replaced by a stub to fill in.

The committed notebooks hold the solutions between nbgrader's markers, so they run top to
bottom under nbval. A student copy swaps each region for the stub nbgrader itself writes::

    def receptive_field(n_convs):          def receptive_field(n_convs):
        ### BEGIN SOLUTION           ->        # YOUR CODE HERE
        return 1 + 2 * n_convs                 raise NotImplementedError()
        ### END SOLUTION

(indented like the markers; a region in a markdown cell becomes ``YOUR ANSWER HERE``), keeps
every other line and cell as it is, and clears outputs. Like nbgrader, any line containing
``BEGIN SOLUTION`` or ``END SOLUTION`` is a marker, so both tools make the same copy.

    python -m course_utils.student --out student/          # every notebook in notebooks/
    python -m course_utils.student --out student/ --notebooks path/to/notebooks
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]  # nbgrader's default for Python
TEXT_STUB = ["YOUR ANSWER HERE"]  # nbgrader's default for markdown answers


class SolutionMarkerError(ValueError):
    """A notebook's solution markers do not pair up; the message names the notebook and cell. See TEACHING.md."""


def replace_solutions(source: str, where: str = "this cell", markdown: bool = False) -> tuple[str, int]:
    """`source` with each marked solution region replaced by the stub; (new source, regions). See TEACHING.md."""
    stub = TEXT_STUB if markdown else CODE_STUB
    out: list[str] = []
    begun_at = None  # line number of the open BEGIN marker
    regions = 0
    for number, line in enumerate(source.split("\n"), start=1):
        if BEGIN in line and END in line:
            raise SolutionMarkerError(f"{where}, line {number}: one line holds both {BEGIN} and {END}. "
                                      f"Put each marker on a line of its own (nbgrader reads any line "
                                      f"containing them as a marker, so prose must not quote them).")
        if BEGIN in line:
            if begun_at is not None:
                raise SolutionMarkerError(f"{where}, line {number}: {BEGIN} again before the {END} of the "
                                          f"region opened on line {begun_at}; regions cannot nest.")
            begun_at, regions = number, regions + 1
            indent = re.match(r"\s*", line).group(0)
            out.extend(indent + s for s in stub)
        elif END in line:
            if begun_at is None:
                raise SolutionMarkerError(f"{where}, line {number}: {END} without a {BEGIN} above it.")
            begun_at = None
        elif begun_at is None:
            out.append(line)
    if begun_at is not None:
        raise SolutionMarkerError(f"{where}, line {begun_at}: {BEGIN} has no {END} below it; add "
                                  f"'### {END}' after the last line of the solution.")
    return "\n".join(out), regions


def exercise_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the cells holding a solution region: one exercise each (a cell may hold several regions).
    See TEACHING.md."""
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type in ("code", "markdown") and BEGIN in cell.source]


def make_student_copy(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of `nb` with solutions replaced by stubs and code outputs cleared; `nb` is untouched.

    Raises SolutionMarkerError naming `name` and the cell when the markers do not pair up. See TEACHING.md.
    """
    student = copy.deepcopy(nb)
    for index, cell in enumerate(student.cells):
        if cell.cell_type in ("code", "markdown") and (BEGIN in cell.source or END in cell.source):
            where = f"{name}, cell {index} ({cell.cell_type})"
            cell.source, _ = replace_solutions(cell.source, where, markdown=cell.cell_type == "markdown")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return student


def default_notebooks_dir() -> Path:
    """The repo's notebooks/ next to this package, else ./notebooks. See TEACHING.md."""
    beside_package = Path(__file__).resolve().parent.parent / "notebooks"
    return beside_package if beside_package.is_dir() else Path.cwd() / "notebooks"


def write_student_copies(src_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write a student copy of every notebook in `src_dir` into `out_dir`; the paths written.

    Every notebook is checked before any is written, and `out_dir` may not be `src_dir`
    (that would overwrite the solutions). See TEACHING.md.
    """
    src, out = Path(src_dir), Path(out_dir)
    paths = sorted(src.glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {src}; pass the lessons' folder with --notebooks DIR.")
    if out.resolve() == src.resolve():
        raise ValueError(f"--out {out} is the folder of the lessons themselves: writing there would "
                         f"overwrite the solutions. Choose another folder, e.g. --out student/.")
    copies = {p.name: make_student_copy(nbformat.read(p, as_version=4), p.name) for p in paths}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, nb in copies.items():
        nbformat.write(nb, out / name)
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI: write student copies and say how many exercises each has. See TEACHING.md."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.student", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the student copies (made if missing)")
    parser.add_argument("--notebooks", type=Path, default=None,
                        help=f"folder of the lessons with solutions (default: {default_notebooks_dir()})")
    args = parser.parse_args(argv)
    src = args.notebooks or default_notebooks_dir()
    try:
        written = write_student_copies(src, args.out)
    except (SolutionMarkerError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = 0
    for path in written:
        n = len(exercise_cells(nbformat.read(src / path.name, as_version=4)))
        total += n
        print(f"{path}: {n} exercise{'s' * (n != 1)}")
    print(f"{len(written)} student copies, {total} exercises, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
