"""Submissions that misbehave: each still gets a score with a clear reason, in bounded time,
and leaves no kernel or child process behind.

Every case is the lesson-99 fixture solution with one thing broken. A marker in the
environment (inherited by the worker, its kernel and anything the notebook starts) finds
leftover processes afterwards. The cases that break one answer (it hangs in Python or in C,
catches every exception, allocates gigabytes, kills its kernel) prove per-test isolation: the
other answers keep their points, graded in a fresh kernel that re-ran the notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from grading_fixtures.notebooks import (
    CLIP,
    IMPORTS,
    LESSON_99,
    MAX_SCORE,
    MEAN_SQUARE,
    NORMALIZE,
    code_cell,
    leftovers,
    mark_processes,
    solution_cells,
    write_notebook,
)

from llmcourse.grading.grade import GradeOptions, NotebookGrade, grade_notebooks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
MEMORY_MB = 4096  # the notebook's cells may use 2048 MiB of it, each test 2048 MiB more


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


def clip_that(body: str) -> Callable[[list[dict]], list[dict]]:
    """The fixture with ``clip`` (1 point) replaced: every other answer is right."""
    return replace(CLIP, "def clip(values, low, high):\n" + body)


CASES = {
    "infinite_loop": Case(
        insert_after_mean_square("while True:\n    pass"),
        MAX_SCORE,
        "stopped after 3 s, the time limit per cell",
    ),
    "hang_in_a_definition_cell": Case(
        replace(MEAN_SQUARE, solution_cells()[MEAN_SQUARE]["source"] + "\n\nwhile True:\n    pass"),
        MAX_SCORE,  # what the cell defined before it hung still counts
        "stopped after 3 s, the time limit per cell",
    ),
    "loop_that_ignores_interrupts": Case(
        insert_after_mean_square(
            "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
            "    except KeyboardInterrupt:\n        pass"
        ),
        MAX_SCORE,
        "it ignored the interrupt, so it was skipped",
    ),
    "memory_bomb_in_a_global_cell": Case(
        insert_after_mean_square(
            "def bomb():\n    chunks = []\n    while True:\n        chunks.append(bytearray(2**26))"
            "\n\nbomb()"
        ),
        MAX_SCORE,
        "raised MemoryError (the notebook's cells may use 2048 MiB)",
        cell_timeout=60.0,
    ),
    "many_gigabytes_kept_in_a_global_cell": Case(
        insert_after_mean_square("import numpy\nhog = numpy.ones(10 * 2**30 // 8)"),
        MAX_SCORE,
        "(the notebook's cells may use 2048 MiB)",
        cell_timeout=60.0,
    ),
    "exception_at_import": Case(
        replace(IMPORTS, "import not_a_module_anywhere\nimport numpy as np"),
        4,  # clip, word_count and RunningMean need no NumPy
        "NameError: name 'np' is not defined (in `mean_square`",
    ),
    "syntax_error": Case(
        replace(MEAN_SQUARE, "def mean_square(values)\n    return values"),
        MAX_SCORE - 3,
        "raised SyntaxError",
    ),
    "deleted_cell": Case(
        lambda cells: cells[:MEAN_SQUARE] + cells[MEAN_SQUARE + 1 :],
        MAX_SCORE - 3,
        "Define `mean_square` in the notebook",
    ),
    "duplicated_cells": Case(lambda cells: cells + cells[IMPORTS:], MAX_SCORE, ""),
    "renamed_function": Case(
        replace(MEAN_SQUARE, "def mean_sq(values):\n    return sum(v * v for v in values)"),
        MAX_SCORE - 3,
        "Define `mean_square` in the notebook",
    ),
    "os_exit_with_a_child_process": Case(
        insert_after_mean_square(
            "import os, subprocess\nchild = subprocess.Popen(['sleep', '600'])\nos._exit(0)"
        ),
        MAX_SCORE,
        "the kernel died here (it exited with status 0",
    ),
    "segfault": Case(
        insert_after_mean_square("import ctypes\nctypes.string_at(0)"),
        MAX_SCORE,
        "the kernel died here (killed by SIGSEGV",
    ),
    "heavy_stderr": Case(
        insert_after_mean_square(
            "import os, sys\nfor _ in range(100_000):\n    sys.stderr.write('x' * 100 + '\\n')"
            "\nos.write(2, b'y' * 10_000_000)"
        ),
        MAX_SCORE,
        "",
    ),
    "function_that_never_returns": Case(
        replace(NORMALIZE, "def normalize(vector):\n    while True:\n        pass"),
        MAX_SCORE - 3,
        "did not finish within 3 s",
    ),
    # One answer hangs or crashes its kernel; the five others keep their points.
    "answer_catching_every_exception_in_a_python_loop": Case(
        clip_that(
            "    while True:\n        try:\n            sum(range(1000))\n"
            "        except BaseException:\n            pass"
        ),
        MAX_SCORE - 1,
        "did not finish within 3 s",  # the repeated alarm lands outside the try, or the kill
    ),
    "answer_sleeping_in_c_and_catching_everything": Case(
        clip_that(
            "    import time\n    while True:\n        try:\n            time.sleep(100)\n"
            "        except BaseException:\n            pass"
        ),
        MAX_SCORE - 1,
        # Usually "... its kernel was replaced"; on a loaded machine the alarm can land between
        # two sleeps and end the call cleanly. Either way the answer loses its point in 3 s.
        "did not finish within 3 s",
    ),
    "answer_stuck_in_c_holding_the_gil": Case(
        clip_that("    return sum(range(10**15))  # a C loop that never checks for signals"),
        MAX_SCORE - 1,
        "did not stop when interrupted (a loop in C code",
    ),
    "answer_allocating_many_gigabytes": Case(
        clip_that("    return bytearray(64 * 2**30)"),
        MAX_SCORE - 1,
        "MemoryError",
    ),
    "answer_that_kills_its_kernel": Case(
        clip_that("    import os\n    os._exit(3)"),
        MAX_SCORE - 1,
        "the kernel died (it exited with status 3",
    ),
}


def grade(path: Path, cell_timeout: float) -> NotebookGrade:
    options = GradeOptions(
        cell_timeout=cell_timeout,
        timeout=120,
        memory_mb=MEMORY_MB,
        exercise_files=(str(LESSON_99),),
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
    assert (result.score, result.max_score) == (case.score, MAX_SCORE), reasons
    assert case.says in "\n".join(reasons), reasons
    if not case.says:
        assert result.problems == []
    assert leftovers(marker) == []


def test_a_file_that_is_not_json(tmp_path, marker):
    notebook = tmp_path / "99_broken.ipynb"
    notebook.write_text("this is not json {")
    result = grade(notebook, 3.0)
    assert (result.score, result.max_score) == (0, MAX_SCORE)
    assert result.problems == [
        "not a readable notebook: JSONDecodeError: Expecting value: line 1 column 1 (char 0)"
    ]
    assert {o.message for o in result.outcomes} == {f"not run: {result.problems[0]}"}
    assert leftovers(marker) == []
