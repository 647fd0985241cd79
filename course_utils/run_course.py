"""Run every lesson in a fresh kernel and report seconds, peak memory, pass/fail and budget.

A report for teachers and maintainers, not a timed test: a notebook over its budget still
passes; only a cell that raises makes it fail (and the exit status 1).

    python -m course_utils.run_course                     # every notebook, quick profile
    python -m course_utils.run_course notebooks/06_training.ipynb --profile full
    python -m course_utils.run_course --markdown times.md  # the table as markdown too
    python -m course_utils.run_course --work-dir DIR       # a read-only data root: write under DIR

Each notebook runs from its own folder in a kernel of this Python (like nbval's
--nbval-current-env) with UNET_COURSE_PROFILE set. Its budget, seconds in the quick
profile, is the notebook metadata ``{"course": {"budget_s": 60}}``. Peak memory is the
kernel process's peak resident set (VmHWM in /proc; sampled with psutil elsewhere).
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from .environment import set_work_root
from .student import default_notebooks_dir

BUDGET_KEY = ("course", "budget_s")  # notebook metadata: {"course": {"budget_s": seconds}}


class _ThisPython(KernelSpecManager):
    """Every kernel name means this interpreter, so the kernel sees the installed course_utils."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name="Python (this environment)", language="python", resource_dir="")


class _Client(NotebookClient):
    def create_kernel_manager(self) -> AsyncKernelManager:
        self.km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython(), config=self.config)
        return self.km


@dataclass
class Execution:
    """What happened when a notebook ran: seconds, kernel peak memory, and the first error if any. See TEACHING.md."""

    seconds: float
    peak_memory_mb: float | None
    cells_run: int
    error_cell: int | None = None  # index in nb.cells of the cell that raised
    error_name: str | None = None  # e.g. "NotImplementedError", "CheckFailed", "Timeout"
    error_message: str = ""
    cell_seconds: dict[int, float] = field(default_factory=dict)  # cell index -> seconds it ran

    def slowest_cell(self) -> tuple[int, float] | None:
        """(index, seconds) of the cell that ran longest, or None if none ran."""
        return max(self.cell_seconds.items(), key=lambda kv: kv[1], default=None)


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class _PeakSampler(threading.Thread):
    """Where /proc is missing (macOS, Windows): the largest RSS psutil sees, every 0.1 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self.process, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except Exception:  # the kernel went away: keep the last peak
                return


def _sampler(pid: int | None) -> _PeakSampler | None:
    if pid is None or Path(f"/proc/{pid}/status").exists():
        return None
    try:
        sampler = _PeakSampler(pid)
    except Exception:  # no psutil (or no such process): memory shows as n/a
        return None
    sampler.start()
    return sampler


def execute(nb: nbformat.NotebookNode, folder: str | Path, profile: str = "quick", timeout: int = 600,
            stop_after: int | None = None) -> Execution:
    """Run `nb`'s code cells in order in a fresh kernel started in `folder`; stop at the first error.

    `stop_after`: index of the last cell to run (None: all). `timeout` is per cell, in seconds.
    The kernel gets this process's environment with UNET_COURSE_PROFILE=`profile`. See TEACHING.md.
    """
    env = {**os.environ, "UNET_COURSE_PROFILE": profile}
    client = _Client(nb, timeout=timeout, resources={"metadata": {"path": str(folder)}}, allow_errors=False,
                     extra_arguments=["--IPKernelApp.log_level=ERROR"])  # not the kernel's TCP warning each time
    last = len(nb.cells) - 1 if stop_after is None else stop_after
    result = Execution(seconds=0.0, peak_memory_mb=None, cells_run=0)
    start = time.perf_counter()
    with client.setup_kernel(env=env):
        pid = getattr(client.km.provisioner, "pid", None)
        sampler = _sampler(pid)
        try:
            _run_cells(client, nb, last, result)
        finally:
            result.peak_memory_mb = _vm_hwm_mb(pid) if pid is not None else None
            if sampler is not None:
                sampler.done.set()
                result.peak_memory_mb = sampler.peak / 2**20 or None
    result.seconds = time.perf_counter() - start
    return result


def _run_cells(client: NotebookClient, nb: nbformat.NotebookNode, last: int, result: Execution) -> None:
    for index, cell in enumerate(nb.cells[: last + 1]):
        if cell.cell_type != "code":
            continue
        start = time.perf_counter()
        try:
            client.execute_cell(cell, index)
        except CellTimeoutError:
            result.error_cell, result.error_name = index, "Timeout"
            result.error_message = f"ran past the {client.timeout} s a cell may take"
            return
        except DeadKernelError as e:
            result.error_cell, result.error_name, result.error_message = index, "DeadKernel", f"kernel died ({e}); out of memory?"
            return
        except CellExecutionError as e:
            result.error_cell, result.error_name, result.error_message = index, e.ename, str(e.evalue)
            return
        finally:
            result.cell_seconds[index] = time.perf_counter() - start
        result.cells_run += 1


def budget_s(nb: nbformat.NotebookNode) -> float | None:
    """The notebook's time budget in seconds (quick profile), from metadata course.budget_s. See TEACHING.md."""
    value = nb.metadata.get(BUDGET_KEY[0], {}).get(BUDGET_KEY[1])
    return float(value) if isinstance(value, (int, float)) else None


def run_notebook(path: str | Path, timeout: int = 600, profile: str = "quick") -> dict:
    """Run one notebook top to bottom in a fresh kernel; a row of the report.

    Returns dict(notebook, seconds, peak_memory_mb, status "pass"|"fail", error, budget_s,
    slowest_cell (index, seconds)). See TEACHING.md.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    run = execute(nb, path.parent.resolve(), profile=profile, timeout=timeout)
    error = "" if run.error_cell is None else f"cell {run.error_cell}: {run.error_name}: {run.error_message}"
    return dict(notebook=path.name, seconds=run.seconds, peak_memory_mb=run.peak_memory_mb,
                status="pass" if run.error_cell is None else "fail", error=error, budget_s=budget_s(nb),
                slowest_cell=run.slowest_cell())


def _cells(row: dict) -> list[str]:
    over = row["budget_s"] is not None and row["seconds"] > row["budget_s"]
    slowest = row.get("slowest_cell")
    return [row["notebook"], f"{row['seconds']:.1f}",
            "n/a" if row["peak_memory_mb"] is None else f"{row['peak_memory_mb']:.0f}",
            "-" if row["budget_s"] is None else f"{row['budget_s']:g}",
            "-" if not slowest else f"{slowest[0]} ({slowest[1]:.1f} s)",
            row["status"] + (" (over budget)" if over else "")]


HEADER = ["notebook", "seconds", "peak MB", "budget s", "slowest cell", "status"]


def _total(rows: list[dict]) -> list[str]:
    peaks = [r["peak_memory_mb"] for r in rows if r["peak_memory_mb"] is not None]
    budgets = [r["budget_s"] for r in rows if r["budget_s"] is not None]
    passed = sum(r["status"] == "pass" for r in rows)
    return ["total", f"{sum(r['seconds'] for r in rows):.1f}", f"{max(peaks):.0f}" if peaks else "n/a",
            f"{sum(budgets):g}" if budgets else "-", "", f"{passed}/{len(rows)} passed"]


def format_table(rows: list[dict]) -> str:
    """The report as aligned text: one line per notebook, then the total (peak MB: the largest). See TEACHING.md."""
    table = [HEADER] + [_cells(r) for r in rows] + [_total(rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) if i in (0, 5) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
             for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, lines[1])
    return "\n".join(lines)


def format_markdown(rows: list[dict], profile: str = "quick") -> str:
    """The report as a markdown table, the form of the timings in TEACHING.md."""
    body = [_cells(r) for r in rows] + [[f"**{c}**" if c else "" for c in _total(rows)]]
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---:|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(c) + " |" for c in body]
    return f"Profile: {profile}.\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI: run the notebooks, print the table; exit status 1 if any notebook failed. See TEACHING.md."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.run_course", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help=f"notebooks to run (default: every *.ipynb in {default_notebooks_dir()})")
    parser.add_argument("--profile", choices=["quick", "full"], default="quick", help="UNET_COURSE_PROFILE for the kernels")
    parser.add_argument("--timeout", type=int, default=600, help="seconds any one cell may run (default 600)")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    parser.add_argument("--work-dir", type=Path, help="the kernels' work root ($UNET_COURSE_WORK): where the lessons "
                        "write caches, runs and generated data when the data root is read-only")
    args = parser.parse_args(argv)
    if args.work_dir is not None:
        try:
            set_work_root(args.work_dir)  # the kernels inherit this process's environment
        except PermissionError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    paths = args.notebooks or sorted(default_notebooks_dir().glob("*.ipynb"))
    if not paths:
        print(f"error: no notebooks found in {default_notebooks_dir()}; name them on the command line.", file=sys.stderr)
        return 2
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    rows = []
    for path in paths:
        print(f"running {path} ({args.profile} profile) ...", flush=True)
        rows.append(run_notebook(path, timeout=args.timeout, profile=args.profile))
    print("\n" + format_table(rows))
    for row in rows:
        if row["error"]:
            print(f"{row['notebook']} failed at {row['error']}")
    unbudgeted = [r["notebook"] for r in rows if r["budget_s"] is None]
    if unbudgeted:
        print(f"no budget in metadata {'.'.join(BUDGET_KEY)}: {', '.join(unbudgeted)}")
    if args.markdown:
        args.markdown.write_text(format_markdown(rows, args.profile))
        print(f"wrote {args.markdown}")
    return 1 if any(r["status"] == "fail" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
