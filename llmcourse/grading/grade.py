"""``llmcourse grade``: score notebooks, each in a worker process with a fresh kernel.

For every notebook the grader starts ``llmcourse.grading.execute`` in a new session (its own
process group), waits at most a hard wall-clock limit, then makes sure the worker, its kernels
and their children are gone, whatever happened. The lesson's tests are loaded here too, so a
submission whose kernel never ran them still gets a row per test: zero points with the reason.

A notebook's lesson comes from its file name (``03_llm_architecture.ipynb``, ``03_alice.ipynb``)
unless ``--lesson`` says otherwise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmcourse.grading.api import EXTRA_EXERCISES_ENV, LESSON_ID, load_exercise_file, tests_for
from llmcourse.grading.processes import kill_tree
from llmcourse.grading.runner import (
    GRADING_ENV,
    NOT_RUN,
    ExerciseScore,
    Outcome,
    exercise_scores,
)

LESSON_PREFIX = re.compile(rf"^({LESSON_ID})_")
GRADER_STARTUP_S = 30.0  # on top of the tests' own limits: importing torch and the references
WORKER_SLACK_S = 120.0  # kernel starts and shutdowns, beyond every limit the worker enforces


class UsageError(ValueError):
    """The command was asked something it cannot do (exit status 2)."""


@dataclass(frozen=True)
class GradeOptions:
    cell_timeout: float = 120.0  # seconds per cell
    timeout: float = 600.0  # seconds for all of a notebook's cells
    memory_mb: int = 8192  # the kernel's address-space ceiling; 0 for none
    kernel_name: str = "llmcourse"
    exercise_files: tuple[str, ...] = ()  # extra exercise-test files (api.load_exercise_file)

    def __post_init__(self) -> None:
        if self.cell_timeout <= 0 or self.timeout <= 0:
            raise UsageError("--cell-timeout and --timeout must be positive numbers of seconds.")
        if self.memory_mb < 0:
            raise UsageError("--memory-mb must be 0 (no limit) or a positive number of MiB.")


@dataclass(frozen=True)
class ExecutionSpec:
    """What the grader asks of one worker (``llmcourse.grading.execute``), passed as JSON."""

    notebook: str
    lesson: str
    result_path: str
    pid_path: str  # the worker appends "pid create_time" for each kernel it starts
    cell_timeout: float
    timeout: float
    grader_timeout: float
    memory_bytes: int | None
    kernel_name: str


@dataclass
class NotebookGrade:
    """One notebook's grade: a row per test of its lesson, and what went wrong while running."""

    path: str
    lesson: str
    outcomes: list[Outcome]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def max_score(self) -> int:
        return sum(o.max_points for o in self.outcomes)

    @property
    def exercises(self) -> dict[str, ExerciseScore]:
        return exercise_scores(self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "lesson": self.lesson,
            "score": self.score,
            "max_score": self.max_score,
            "seconds": round(self.seconds, 2),
            "problems": self.problems,
            "exercises": {ex: score.to_dict() for ex, score in self.exercises.items()},
        }


def find_notebooks(
    paths: Iterable[str], lesson: str | None = None, warn: Callable[[str], None] = print
) -> list[tuple[Path, str]]:
    """``(notebook, lesson)`` pairs to grade; folders are searched recursively.

    A notebook named on the command line must be gradable (else ``UsageError``); one found in a
    folder without a lesson prefix, or of a lesson without exercises, is skipped with a warning.
    """
    if lesson is not None and not re.fullmatch(LESSON_ID, lesson):
        raise UsageError(
            f"--lesson takes two digits such as 03 (and a letter, as in 10b), not {lesson!r}."
        )
    found: list[tuple[Path, str]] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for notebook in sorted(path.rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in notebook.parts:
                    try:
                        found.append((notebook, _lesson_of(notebook, lesson)))
                    except UsageError as skipped:
                        warn(f"skipping {notebook}: {skipped}")
        elif path.is_file():
            if path.suffix != ".ipynb":
                raise UsageError(f"{path} is not a notebook (.ipynb) or a folder of them.")
            found.append((path, _lesson_of(path, lesson)))
        else:
            raise UsageError(f"{path} does not exist.")
    if not found:
        raise UsageError("No gradable notebooks (NN_*.ipynb) found in " + ", ".join(paths) + ".")
    return found


def _lesson_of(path: Path, override: str | None) -> str:
    match = LESSON_PREFIX.match(path.name)
    lesson = override or (match.group(1) if match else None)
    if lesson is None:
        raise UsageError(
            f"cannot tell the lesson of {path.name}: name it NN_*.ipynb or pass --lesson NN"
        )
    try:
        tests_for(lesson)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except Exception as error:  # a broken test module is the course's fault, not the notebook's
        raise UsageError(f"could not load lesson {lesson}'s tests: {error!r}") from error
    return lesson


def grade_notebooks(
    notebooks: list[tuple[Path, str]],
    options: GradeOptions,
    *,
    jobs: int = 1,
    on_graded: Callable[[NotebookGrade], None] | None = None,
) -> list[NotebookGrade]:
    """Grade each notebook (``jobs`` at a time), in the order given."""
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}.")
    for path in options.exercise_files:
        load_exercise_file(path)

    def one(item: tuple[Path, str]) -> NotebookGrade:
        grade = grade_notebook(item[0], item[1], options)
        if on_graded is not None:
            on_graded(grade)
        return grade

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, notebooks))


def grade_notebook(path: Path, lesson: str, options: GradeOptions) -> NotebookGrade:
    """Run one notebook in a worker and a fresh kernel; never raises for anything it contains."""
    start = time.monotonic()
    tests = tests_for(lesson)
    grader_timeout = sum(test.timeout for test in tests) + GRADER_STARTUP_S
    with tempfile.TemporaryDirectory(prefix="llmcourse-grade-") as scratch:
        spec = ExecutionSpec(
            notebook=str(path.resolve()),
            lesson=lesson,
            result_path=str(Path(scratch, "result.json")),
            pid_path=str(Path(scratch, "kernels.pid")),
            cell_timeout=options.cell_timeout,
            timeout=options.timeout,
            grader_timeout=grader_timeout,
            memory_bytes=options.memory_mb * 2**20 or None,
            kernel_name=options.kernel_name,
        )
        hard_limit = options.timeout + grader_timeout + WORKER_SLACK_S
        result = _run_worker(spec, Path(scratch), options, hard_limit)
    reason = result["grader_problem"] or "the grader's tests did not report a result"
    reported = {(o["exercise"], o["test"]): Outcome.from_dict(o) for o in result["outcomes"]}
    outcomes = [
        reported.get((t.exercise, t.name))
        or Outcome(t.exercise, t.name, t.points, NOT_RUN, f"not run: {reason}", t.hint)
        for t in tests
    ]
    problems = result["problems"] + ([result["grader_problem"]] if result["grader_problem"] else [])
    return NotebookGrade(str(path), lesson, outcomes, problems, time.monotonic() - start)


def _run_worker(
    spec: ExecutionSpec, scratch: Path, options: GradeOptions, hard_limit: float
) -> dict[str, Any]:
    spec_path = scratch / "spec.json"
    spec_path.write_text(json.dumps(asdict(spec)), encoding="utf-8")
    extra = [str(Path(f).resolve()) for f in options.exercise_files]
    inherited = os.environ.get(EXTRA_EXERCISES_ENV, "")
    env = {
        **os.environ,
        GRADING_ENV: "1",  # check() calls in the submission do nothing
        EXTRA_EXERCISES_ENV: os.pathsep.join(filter(None, [inherited, *extra])),
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),  # connection files go with the scratch
        "MPLBACKEND": "agg",  # figures are never looked at: skip rendering them
    }
    log_path = scratch / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "llmcourse.grading.execute", str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        timed_out = False
        try:
            worker.wait(timeout=hard_limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if worker.returncode is None:  # over time, or Ctrl-C: not reaped, the pid is ours
                kill_tree(worker.pid)
                worker.wait()
            _kill_recorded_kernels(Path(spec.pid_path))
    result_path = Path(spec.result_path)
    if result_path.exists():
        return json.loads(result_path.read_text(encoding="utf-8"))
    if timed_out:
        why = f"grading was stopped at the hard limit of {hard_limit:g} s"
    else:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip()[-500:]
        why = f"the grader's worker failed (exit status {worker.returncode}): {tail}"
    return {"outcomes": [], "problems": [], "grader_problem": why}


def _kill_recorded_kernels(pid_path: Path) -> None:
    """Kill kernels the worker started, if they outlived it (a worker killed at the limit)."""
    if pid_path.exists():
        for line in pid_path.read_text(encoding="utf-8").splitlines():
            pid, created = line.split()
            kill_tree(int(pid), float(created))
