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


def solution_cells() -> list[dict[str, Any]]:
    """The fixture solution's cells: 0-1 markdown, 2 imports, 4 mean_square, 6 its check,
    8 normalize, 10 its check (markdown in between)."""
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
    """Processes still alive with ``marker`` in their environment (workers, kernels, children)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARK) == marker:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
