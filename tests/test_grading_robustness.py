"""Submissions that misbehave: each still gets a score with a clear reason, in bounded time,
and leaves no kernel or child process behind.

Every case is the lesson-99 fixture solution with one thing broken. A marker in the
environment (inherited by the worker, its kernel and anything the notebook starts) finds
leftover processes afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from grading_fixtures.notebooks import (
    LESSON_99,
    code_cell,
    leftovers,
    mark_processes,
    solution_cells,
    write_notebook,
)

from llmcourse.grading.grade import GradeOptions, NotebookGrade, grade_notebooks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

IMPORTS, MEAN_SQUARE, NORMALIZE = 2, 4, 8  # cell indices in the fixture solution


@dataclass(frozen=True)
class Case:
    build: Callable[[list[dict]], list[dict]]
    score: int
    says: str  # a phrase in the problems or in the reasons for lost points
    cell_timeout: float = 3.0


def insert_after_mean_square(source: str) -> Callable[[list[dict]], list[dict]]:
    return lambda cells: [*cells[: MEAN_SQUARE + 1], code_cell(source), *cells[MEAN_SQUARE + 1 :]]


def replace(index: int, source: str) -> Callable[[list[dict]], list[dict]]:
    def build(cells: list[dict]) -> list[dict]:
        cells[index] = code_cell(source)
        return cells

    return build


CASES = {
    "infinite_loop": Case(
        insert_after_mean_square("while True:\n    pass"),
        6,
        "stopped after 3 s, the time limit per cell",
    ),
    "loop_that_ignores_interrupts": Case(
        insert_after_mean_square(
            "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
            "    except KeyboardInterrupt:\n        pass"
        ),
        6,
        "it ignored the interrupt, so it was skipped",
    ),
    "memory_bomb": Case(
        insert_after_mean_square(
            "def bomb():\n    chunks = []\n    while True:\n        chunks.append(bytearray(2**26))"
            "\n\nbomb()"
        ),
        6,
        "raised MemoryError (the memory limit is 2560 MiB)",
        cell_timeout=60.0,
    ),
    "exception_at_import": Case(
        replace(IMPORTS, "import not_a_module_anywhere\nimport numpy as np"),
        0,
        "NameError: name 'np' is not defined (in `mean_square`",
    ),
    "syntax_error": Case(
        replace(MEAN_SQUARE, "def mean_square(values)\n    return values"),
        3,
        "raised SyntaxError",
    ),
    "deleted_cell": Case(
        lambda cells: cells[:MEAN_SQUARE] + cells[MEAN_SQUARE + 1 :],
        3,
        "Define `mean_square` in the notebook",
    ),
    "duplicated_cells": Case(lambda cells: cells + cells[IMPORTS:], 6, ""),
    "renamed_function": Case(
        replace(MEAN_SQUARE, "def mean_sq(values):\n    return sum(v * v for v in values)"),
        3,
        "Define `mean_square` in the notebook",
    ),
    "os_exit_with_a_child_process": Case(
        insert_after_mean_square(
            "import os, subprocess\nchild = subprocess.Popen(['sleep', '600'])\nos._exit(0)"
        ),
        6,
        "the kernel died here (it exited with status 0",
    ),
    "segfault": Case(
        insert_after_mean_square("import ctypes\nctypes.string_at(0)"),
        6,
        "the kernel died here (killed by SIGSEGV",
    ),
    "heavy_stderr": Case(
        insert_after_mean_square(
            "import os, sys\nfor _ in range(100_000):\n    sys.stderr.write('x' * 100 + '\\n')"
            "\nos.write(2, b'y' * 10_000_000)"
        ),
        6,
        "",
    ),
    "function_that_never_returns": Case(
        replace(NORMALIZE, "def normalize(vector):\n    while True:\n        pass"),
        3,
        "did not finish within 3 s",
    ),
}


def grade(path: Path, cell_timeout: float) -> NotebookGrade:
    options = GradeOptions(
        cell_timeout=cell_timeout, timeout=120, memory_mb=2560, exercise_files=(str(LESSON_99),)
    )
    (result,) = grade_notebooks([(path, "99")], options)
    return result


@pytest.fixture
def marker(monkeypatch) -> str:
    return mark_processes(monkeypatch)


@pytest.mark.parametrize("name", CASES)
def test_a_broken_submission_still_gets_a_score(tmp_path, marker, name):
    case = CASES[name]
    notebook = write_notebook(tmp_path / f"99_{name}.ipynb", case.build(solution_cells()))
    result = grade(notebook, case.cell_timeout)
    reasons = result.problems + [o.message for o in result.outcomes if not o.passed]
    assert (result.score, result.max_score) == (case.score, 6), reasons
    assert case.says in "\n".join(reasons), reasons
    if not case.says:
        assert result.problems == []
    assert leftovers(marker) == []


def test_a_file_that_is_not_json(tmp_path, marker):
    notebook = tmp_path / "99_broken.ipynb"
    notebook.write_text("this is not json {")
    result = grade(notebook, 3.0)
    assert (result.score, result.max_score) == (0, 6)
    assert result.problems == [
        "not a readable notebook: NotJSONError: Notebook does not appear to be JSON: "
        "'this is not json {'"
    ]
    assert {o.message for o in result.outcomes} == {f"not run: {result.problems[0]}"}
    assert leftovers(marker) == []
