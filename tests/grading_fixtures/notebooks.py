"""Paths of the grader's fixtures and builders for broken variants of the lesson-99 solution."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

FIXTURES = Path(__file__).resolve().parent
LESSON_99 = FIXTURES / "lesson_99.py"
SOLUTION_99 = FIXTURES / "solutions" / "99_fixture.ipynb"
ROOT = FIXTURES.parent.parent
MARK = "LLMCOURSE_GRADING_TEST_MARK"


# Cell indices of the fixture solution's answers (markdown and check() cells in between).
IMPORTS, MEAN_SQUARE, NORMALIZE, CLIP, WORD_COUNT, RUNNING_MEAN, THRESHOLD = 2, 4, 8, 12, 15, 18, 21
MAX_SCORE = 12  # mean_square 3, normalize 3, clip 1, word_count 1, running_mean 2, threshold 2


def solution_cells() -> list[dict[str, Any]]:
    """The fixture solution's cells (see the indices above)."""
    cells = json.loads(SOLUTION_99.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    return cells


def code_cell(source: str) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": source,
    }


def write_notebook(path: Path, cells: list[dict[str, Any]]) -> Path:
    """A copy of the fixture solution with ``cells`` instead of its own."""
    notebook = json.loads(SOLUTION_99.read_text(encoding="utf-8"))
    notebook["cells"] = copy.deepcopy(cells)
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return path


def mark_processes(monkeypatch: pytest.MonkeyPatch) -> str:
    """Put a unique marker in the environment that every process started from here inherits."""
    marker = uuid.uuid4().hex
    monkeypatch.setenv(MARK, marker)
    return marker


def leftovers(marker: str) -> list[psutil.Process]:
    """Processes still alive with ``marker`` in their environment (workers, kernels, children)
    or on their command line (for processes that cleared their environment)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get(MARK) == marker or marker in " ".join(process.cmdline()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
