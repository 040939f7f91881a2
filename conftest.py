"""Settings for every pytest run in this repository, the lessons included.

``pytest`` collects ``tests/`` and ``lessons/`` (``testpaths`` in ``pyproject.toml``); with
``--nbval-lax`` (in ``addopts``) nbval runs each lesson in the course's ``llmcourse`` kernel, one
test item per cell, failing on any error. This file lives at the root, not in ``tests/``, so that
``pytest lessons/`` alone gets the same treatment:

- offline Hugging Face, sleeping OpenMP threads and a temporary learner home, set before anything
  imports torch and inherited by every kernel and subprocess;
- only ``lessons/`` notebooks are collected by nbval (solutions are exercised by the grading
  tests; ``tests/grading_fixtures`` holds data), unless a notebook is named on the command line;
- lesson cells carry the ``notebooks`` and ``slow`` markers, so ``-m "not notebooks"`` deselects
  them like any other marked test;
- each lesson's wall time (kernel start, every cell, kernel stop) is printed in a table at the end
  and merged into ``test-artifacts/lesson_times.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

# Nothing may reach a model hub: every asset comes from an installed package or the cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning: with spinning, torch slows 10-20x whenever
# another process (a notebook kernel, a torchrun worker) shares the cores. Read at torch import,
# so it must be set here, before any test module imports torch; child processes inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent
LESSONS = ROOT / "lessons"
TIMES = ROOT / "test-artifacts" / "lesson_times.json"
NOTEBOOK_MARKERS = ("notebooks", "slow")
_lesson_seconds: dict[str, float] = defaultdict(float)
_learner_home: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Learner progress written by tests and lessons (``check()``) goes to a temporary home."""
    global _learner_home
    _learner_home = tempfile.mkdtemp(prefix="llmcourse-home-")
    os.environ["LLMCOURSE_HOME"] = _learner_home


def pytest_unconfigure(config: pytest.Config) -> None:
    if _learner_home:
        shutil.rmtree(_learner_home, ignore_errors=True)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """nbval collects every ``.ipynb`` it meets; of those found by walking folders, keep lessons.

    Paths given on the command line are never passed here, so ``pytest --nbval-lax x.ipynb``
    still runs ``x.ipynb``.
    """
    if collection_path.suffix == ".ipynb" and LESSONS not in collection_path.parents:
        return True
    return None


def _is_notebook_cell(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb"


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection reads the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_notebook_cell(item):
            for name in NOTEBOOK_MARKERS:
                item.add_marker(name)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Sum setup, call and teardown of every cell: the notebook's wall time, kernel included."""
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _lesson_seconds[Path(path).stem] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _lesson_seconds:
        return
    TIMES.parent.mkdir(exist_ok=True)
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    times.update({name: round(seconds, 1) for name, seconds in _lesson_seconds.items()})
    TIMES.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
    terminalreporter.section("lesson wall times")
    for name, seconds in sorted(_lesson_seconds.items()):
        terminalreporter.write_line(f"{name:<40} {seconds:7.1f} s")
    total = sum(_lesson_seconds.values())
    where = TIMES.relative_to(ROOT)
    terminalreporter.write_line(f"{'total':<40} {total:7.1f} s   (also in {where})")
