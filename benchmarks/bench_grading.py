"""Grading speed: ``llmcourse grade`` against plain nbclient execution of the same notebook.

    .venv/bin/python benchmarks/bench_grading.py

For each solution notebook (the grader's lesson-99 fixture, then every ``solutions/*.ipynb``):

- peer: ``nbclient.NotebookClient(...).execute()`` in this process with the ``llmcourse``
  kernel, the bare cost of running the notebook once (the ``check()`` cells included);
- ours: ``grade_notebook``, which adds reading the source (the ownership rules), a worker
  process, the memory-limit wrapper, the grader's setup cell (imports the lesson's exercises),
  one driver call per test on inputs drawn for this run, the reference outputs computed in the
  grader's own process while the kernel works, and the cleanup.

Each is the median of three runs; the ratio is ours / peer. The grader's overhead per notebook
is ours - peer (mostly importing PyTorch in the kernel, which a lesson notebook pays anyway).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from llmcourse.grading.grade import LESSON_PREFIX, GradeOptions, grade_notebook
from llmcourse.grading.spec import EXTRA_EXERCISES_ENV

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "grading_fixtures"
REPEATS = 3


def peer_seconds(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="llmcourse",
        timeout=600,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def ours_seconds(path: Path, options: GradeOptions) -> tuple[float, str]:
    start = time.perf_counter()
    grade = grade_notebook(path, LESSON_PREFIX.match(path.name).group(1), options)  # 10b too
    return time.perf_counter() - start, f"{grade.score}/{grade.max_score}"


def main() -> None:
    os.environ[EXTRA_EXERCISES_ENV] = str(FIXTURE / "lesson_99.py")  # for the peer's check()
    options = GradeOptions(exercise_files=(str(FIXTURE / "lesson_99.py"),))
    notebooks = [
        FIXTURE / "solutions" / "99_fixture.ipynb",
        *sorted(ROOT.glob("solutions/*.ipynb")),
    ]
    print(f"{'notebook':<32} {'score':>7} {'nbclient s':>10} {'grade s':>8} {'ratio':>6}")
    for path in notebooks:
        peer = statistics.median(peer_seconds(path) for _ in range(REPEATS))
        runs = [ours_seconds(path, options) for _ in range(REPEATS)]
        ours = statistics.median(seconds for seconds, _ in runs)
        score = runs[-1][1]
        print(f"{path.name:<32} {score:>7} {peer:>10.1f} {ours:>8.1f} {ours / peer:>6.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
