#!/usr/bin/env python3
"""Generate ``exercises/`` from ``solutions/``: every answer becomes a stub to fill in.

    python tools/make_exercises.py           # (re)write exercises/NN_*.ipynb
    python tools/make_exercises.py --check   # exit 1 when exercises/ is stale (the tests run this)

``solutions/NN_<stem>.ipynb`` is the single source. In its code cells, each answer sits between
two marker lines, right under the signature and the docstring::

    def rmsnorm(x, weight, eps=1e-6):
        \"\"\"x scaled by the reciprocal root mean square of its last dimension, times weight.\"\"\"
        ### BEGIN SOLUTION
        rms = (x * x).mean(-1, keepdim=True).add(eps).sqrt()
        return x / rms * weight
        ### END SOLUTION

In ``exercises/NN_<stem>.ipynb`` the markers and everything between them become one statement
at the indentation of ``### BEGIN SOLUTION`` (wrapped as ``ruff format`` would when too long)::

        raise NotImplementedError("Replace this with your code for rmsnorm().")

A stub gives nothing away: it is the signature, the docstring (what the function returns, not
how) and that ``raise``. So a comment right above ``### BEGIN SOLUTION`` is an error (it would
stay in the exercise, and such comments end up spelling the answer); hints live in the
exercise's grader (``hint=`` in ``llmcourse/grading/exercises/lesson_NN.py``), which shows them
only after a failed attempt. And no solution line of ``LEAK_CHARS`` characters or more
(whitespace collapsed) may appear anywhere in the generated notebook, in code or in prose.

Generated notebooks are cleaned like ``tools/strip_notebooks.py`` does (no outputs, kernelspec
``llmcourse``); ``exercises/`` is never edited by hand, and files there without a solution are
removed. An exercise notebook is linted like any other, except that imports used only by
answers and names only answers define are allowed (``per-file-ignores`` in ``pyproject.toml``).
Exit status: 0 fine, 1 stale (``--check``), 2 a malformed or leaking solution.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from strip_notebooks import strip

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)")
LINE_LENGTH = 100  # ruff's line-length in pyproject.toml: generated notebooks pass the linter
LEAK_CHARS = 24  # a solution line this long that shows in the exercise gives the answer away


class SolutionFormatError(ValueError):
    """A solution notebook breaks the marker convention; the message says where and how."""


def stub_source(source: str, where: str) -> str:
    """One code cell's source with each marked answer replaced by a ``NotImplementedError``."""
    lines = source.split("\n")
    out: list[str] = []
    begin: int | None = None
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker not in (BEGIN, END) and ("BEGIN SOLUTION" in line or "END SOLUTION" in line):
            raise SolutionFormatError(f"{where}, line {number}: write the marker as {marker!r}.")
        if marker == BEGIN:
            if begin is not None:
                raise SolutionFormatError(f"{where}, line {number}: {BEGIN} inside another one.")
            begin = number
            _refuse_comment_above(out, f"{where}, line {number}")
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(_stub_lines(_stub_message(out, indent), indent))
        elif marker == END:
            if begin is None:
                raise SolutionFormatError(f"{where}, line {number}: {END} without {BEGIN}.")
            begin = None
        elif begin is None:
            out.append(line)
    if begin is not None:
        raise SolutionFormatError(f"{where}, line {begin}: {BEGIN} has no {END}.")
    return "\n".join(out)


def _refuse_comment_above(above: list[str], where: str) -> None:
    last = next((line.strip() for line in reversed(above) if line.strip()), "")
    if last.startswith("#"):
        raise SolutionFormatError(
            f"{where}: a comment right above {BEGIN} stays in the exercise and gives the answer "
            f"away ({last!r}); put hints in the grader's hint=..., not in the stub."
        )


def normalized(line: str) -> str:
    """A line with its whitespace collapsed: how solution lines are compared with the exercise."""
    return " ".join(line.split())


def solution_lines(source: str) -> list[str]:
    """The normalised lines between the markers of one cell's source."""
    lines, inside = [], False
    for line in source.split("\n"):
        marker = line.strip()
        if marker == BEGIN:
            inside = True
        elif marker == END:
            inside = False
        elif inside and normalized(line):
            lines.append(normalized(line))
    return lines


def leaked_lines(solution: dict, exercise: dict) -> list[str]:
    """Solution lines of ``LEAK_CHARS`` characters or more that the exercise notebook shows."""
    shown = "\n".join(
        normalized(line) for cell in exercise.get("cells", []) for line in _source(cell).split("\n")
    )
    answers = {
        line
        for cell in solution.get("cells", [])
        if cell.get("cell_type") == "code"
        for line in solution_lines(_source(cell))
        if len(line) >= LEAK_CHARS
    }
    return sorted(line for line in answers if line in shown)


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def _stub_message(above: list[str], indent: str) -> str:
    for line in reversed(above):
        match = DEF.match(line)
        if match and len(match.group(1)) < len(indent):
            return f"Replace this with your code for {match.group(2)}()."
    return "Replace this with your answer."


def _stub_lines(message: str, indent: str) -> list[str]:
    """The ``raise`` exactly as ``ruff format`` writes it: one line, or wrapped when too long."""
    quoted = json.dumps(message, ensure_ascii=False)  # double quotes, as the formatter wants
    line = f"{indent}raise NotImplementedError({quoted})"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [f"{indent}raise NotImplementedError(", f"{indent}    {quoted}", f"{indent})"]


def make_exercise(solution: dict, name: str) -> dict:
    """The exercise notebook for one solution notebook (a JSON dict, nbformat 4)."""
    exercise = json.loads(json.dumps(solution))  # a deep copy; the solution stays as it was
    regions = 0
    for index, cell in enumerate(exercise.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        stubbed = stub_source(source, f"{name}, cell {index}")
        regions += source.count(BEGIN)
        cell["source"] = stubbed
    if regions == 0:
        raise SolutionFormatError(f"{name}: no {BEGIN} ... {END} region; nothing to exercise.")
    leaks = leaked_lines(solution, exercise)
    if leaks:
        shown = "; ".join(repr(line) for line in leaks[:3])
        raise SolutionFormatError(
            f"{name}: the exercise would show {len(leaks)} solution line(s) outside the answers "
            f"({shown}); rephrase them where they appear outside {BEGIN} ... {END}."
        )
    return exercise


def generate(solutions: Path, into: Path) -> None:
    """Write one clean exercise notebook per solution notebook into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for path in sorted(solutions.glob("*.ipynb")):
        solution = json.loads(path.read_text(encoding="utf-8"))
        target = into / path.name
        exercise = make_exercise(solution, f"{solutions.name}/{path.name}")
        target.write_text(json.dumps(exercise, indent=1, ensure_ascii=False) + "\n", "utf-8")
        strip(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 when stale")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--exercises", type=Path, default=ROOT / "exercises")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        try:
            generate(args.solutions, fresh)
        except SolutionFormatError as error:
            print(f"make_exercises: {error}", file=sys.stderr)
            return 2
        wanted = {p.name: p.read_bytes() for p in fresh.glob("*.ipynb")}
    existing = (
        {p.name: p for p in args.exercises.glob("*.ipynb")} if args.exercises.is_dir() else {}
    )
    stale = sorted(
        n for n, data in wanted.items() if n not in existing or existing[n].read_bytes() != data
    )
    orphans = sorted(set(existing) - set(wanted))
    if args.check:
        for name in stale:
            print(f"stale: {args.exercises / name} (solution changed)")
        for name in orphans:
            print(f"orphan: {args.exercises / name} (no solution)")
        if stale or orphans:
            print("Run: python tools/make_exercises.py", file=sys.stderr)
            return 1
        return 0
    args.exercises.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.exercises / name).write_bytes(wanted[name])
        print(f"wrote {args.exercises / name}")
    for name in orphans:
        existing[name].unlink()
        print(f"removed {existing[name]} (no solution)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
