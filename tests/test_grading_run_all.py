""" "Run All" on a blank exercise notebook runs to its last cell (issue 17 item 4).

Every use of an unfinished answer sits in ``with try_it():``, every ``check()`` reports "not
attempted" instead of raising, and the last cell, ``check("NN", globals())``, ends with the
lesson's points per exercise and the next step. Executed as Jupyter does, with no
``allow_errors``: the first cell that raises fails the test.
"""

from __future__ import annotations

import nbformat
import pytest
from grading_fixtures.notebooks import ROOT
from nbclient import NotebookClient

# The lessons whose exercise notebooks have been made to run to the end (issue 17).
LESSONS = ("01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "10b", "11")


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("lesson", LESSONS)
def test_a_blank_exercise_notebook_runs_to_its_last_cell(lesson, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_HOME", str(tmp_path))  # the checks' progress rows go here
    (path,) = (ROOT / "exercises").glob(f"{lesson}_*.ipynb")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, kernel_name="llmcourse", timeout=300, resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    last = notebook.cells[-1]
    assert last.source == f'check("{lesson}", globals())'
    text = "".join(
        output.get("data", {}).get("text/plain", "") + output.get("text", "")
        for output in last.outputs
    )
    assert f"Lesson {lesson}, per exercise:" in text and "not attempted" in text
    assert "Next: start " in text
    shown = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "Not attempted yet:" in shown or lesson in ("07", "10")  # 07, 10: no demo cells
