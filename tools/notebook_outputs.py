"""What no lesson should show a learner: a leaked object repr, or one report printed twice.

A cell whose last line is a plotting call shows what the call returned, e.g.
`(Text(0.5, 1.0, 'x'), <matplotlib.image.AxesImage at 0x7f...>)` under the figure; a set-up
cell that prints a report a later section prints again shows it twice. `leaked_reprs` finds the
first, `repeated_reports` the second. conftest.py runs both on every cell nbval executes, so
`pytest` fails on them without running a notebook twice; tests/test_notebook_outputs.py tests them.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

# reprs that say nothing to a learner: matplotlib artists and the default <module.Class at 0x...> form
LEAKED = re.compile(
    r"<matplotlib\.[\w.]+ (?:at|object at) 0x[0-9a-f]+>"  # <matplotlib.lines.Line2D at 0x7f...>
    r"|<Figure size \d+x\d+ with \d+ Axes>"  # a figure returned, not shown
    r"|<\w+ object of \d+ artists>"  # <BarContainer object of 3 artists>
    r"|(?<![\w.])(?:Text|Line2D|Annotation|Legend|AxesImage)\([^()\n]*(?:\([^()\n]*\)[^()\n]*)*\)"  # Text(0.5, 1.0, 'x')
    r"|<[A-Za-z_][\w.]* (?:at|object at) 0x[0-9a-f]+>"  # any other default object repr
)
MIN_REPORT_LINES = 3  # a repeated block of this many non-blank lines is a report printed twice


def _field(output: Any, key: str, default: Any = None) -> Any:
    """One field of an output, whether nbformat gives it as a dict or as an object."""
    return output.get(key, default) if hasattr(output, "get") else getattr(output, key, default)


def output_text(output: Any) -> str:
    """The text a learner reads in one output: a stream's text, or a result's text/plain. README.md."""
    if _field(output, "output_type") == "stream":
        text = _field(output, "text", "")
    else:
        text = (_field(output, "data") or {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else str(text)


def leaked_reprs(outputs: Iterable[Any]) -> list[str]:
    """Each leaked repr found in these outputs of one cell (stream text and text/plain results; a
    result with an image or HTML beside its text/plain is a figure or widget, and its text is not
    shown). Empty when the cell is clean. README.md."""
    found = []
    for output in outputs:
        data = _field(output, "data") or {}
        if set(data) - {"text/plain"}:
            continue  # the browser shows the image or HTML, not this text
        found += [m.group(0) for m in LEAKED.finditer(output_text(output))]
    return found


def repeated_reports(cells: Iterable[tuple[int, Iterable[Any]]], size: int = MIN_REPORT_LINES) -> list[str]:
    """Reports printed twice in one notebook: 'cell A and cell B both print:' and the repeated lines,
    for every two outputs (of two cells, or of one cell) that share a run of `size` or more identical
    non-blank lines. Only printed text counts (stream outputs): a value a cell shows again on purpose,
    such as a tensor computed two ways, is not a report. cells: (cell number, its outputs) in
    notebook order. README.md."""
    seen: dict[str, int] = {}  # a run of `size` stripped lines -> the first cell that printed it
    found: dict[tuple[int, int], list[str]] = {}
    for number, outputs in cells:
        for output in outputs:
            if _field(output, "output_type") != "stream":
                continue  # a cell's value (e.g. a tensor shown again to show two ways agree) is no report
            lines = [line.strip() for line in output_text(output).splitlines() if line.strip()]
            repeated: dict[int, set[int]] = {}  # earlier cell -> the line numbers it printed already
            blocks = ["\n".join(lines[k:k + size]) for k in range(len(lines) - size + 1)]
            for k, block in enumerate(blocks):
                if k >= size:  # a block that ended above this one counts as printed (one output repeating)
                    seen.setdefault(blocks[k - size], number)
                if block in seen:
                    repeated.setdefault(seen[block], set()).update(range(k, k + size))
            for earlier, rows in repeated.items():
                found.setdefault((earlier, number), []).extend(lines[r] for r in sorted(rows))
            for block in blocks:
                seen.setdefault(block, number)
    return [f"cell {a} and cell {b} both print:\n" + "\n".join(rows) for (a, b), rows in found.items()]
