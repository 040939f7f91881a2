"""``llmcourse grade``: verdicts computed in the grader's process, never in the notebook's.

For every notebook the grader

1. reads its source and applies the source rules (``source.py``): an answer that is not the
   learner's own scores 0, and a notebook that tampers with grading scores 0 throughout,
   without running it;
2. picks a seed for this run (``--seed`` to reproduce one) and draws each test's inputs from it,
   so outputs recorded in an earlier run do not match; the inputs go to request files;
3. starts a worker (``execute.py``, in a session of its own) that runs the notebook in a fresh
   kernel and calls the learner's answers on those inputs, one call per test, each with its own
   time limit and memory budget, in a fresh kernel after one that hangs or dies;
4. meanwhile computes the reference outputs on the same inputs in this process;
5. reads back only the outputs (wire data: ``wire.py``) and compares them here (``evaluate.py``).

Whatever the notebook does to its own process (patching the grading code, the package, the
driver) changes at most the outputs it sends, and outputs score only when they match references
it cannot touch, on inputs it could not know in advance. Project data the scores depend on is
kept in ``Case.hidden``, which never leaves this process.

A notebook's lesson comes from its file name (``03_llm_architecture.ipynb``, ``03_alice.ipynb``)
unless ``--lesson`` says otherwise.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmcourse.grading import processes, wire
from llmcourse.grading.evaluate import (
    CRASHED,
    ERROR,
    MISSING,
    NOT_RUN,
    OUT_OF_MEMORY,
    REJECTED,
    TIMED_OUT,
    ExerciseScore,
    Expected,
    Outcome,
    exercise_scores,
    expected_outputs,
    judge,
    outcome_for,
)
from llmcourse.grading.source import SourceReport, check_source
from llmcourse.grading.spec import (
    EXTRA_EXERCISES_ENV,
    GRADING_ENV,
    LESSON_ID,
    Case,
    ExerciseTest,
    exercises_for,
    load_exercise_file,
    seed_of,
    tests_for,
)

LESSON_PREFIX = re.compile(rf"^({LESSON_ID})_")
MARKER_ENV = "LLMCOURSE_GRADING_RUN"  # inherited by everything a graded notebook starts
TEST_GRACE_S = 3.0  # past a test's limit before the worker interrupts the kernel
KERNEL_ALLOWANCE_S = 90.0  # one kernel start and setup, on a loaded machine
WORKER_SLACK_S = 60.0  # beyond every limit the worker enforces
MAX_RESULT_BYTES = 1 << 30  # the worker's result: outputs of at most 64 MiB per test, and JSON


class UsageError(ValueError):
    """The command was asked something it cannot do (exit status 2)."""


@dataclass(frozen=True)
class GradeOptions:
    cell_timeout: float = 120.0  # seconds per cell
    timeout: float = 600.0  # seconds for all of a notebook's cells, re-runs included
    memory_mb: int = 8192  # the kernel's address-space ceiling; 0 for none
    test_reserve_mb: int = 2048  # kept free of the notebook's cells for the tests
    kernel_name: str = "llmcourse"
    exercise_files: tuple[str, ...] = ()  # extra exercise files (spec.load_exercise_file)
    seed: int | None = None  # the inputs' seed; None picks a fresh one per notebook
    max_restarts: int = 4  # fresh kernels after tests that hang or crash theirs

    def __post_init__(self) -> None:
        if self.cell_timeout <= 0 or self.timeout <= 0:
            raise UsageError("--cell-timeout and --timeout must be positive numbers of seconds.")
        if self.memory_mb < 0:
            raise UsageError("--memory-mb must be 0 (no limit) or a positive number of MiB.")
        if self.memory_mb and self.memory_mb <= self.test_reserve_mb:
            raise UsageError(
                f"--memory-mb must exceed the {self.test_reserve_mb} MiB kept for the tests."
            )
        if self.seed is not None and self.seed < 0:
            raise UsageError("--seed must be a non-negative integer.")


@dataclass(frozen=True)
class ExecutionSpec:
    """What the grader asks of one worker (``llmcourse.grading.execute``), passed as JSON."""

    notebook: str
    lesson: str
    result_path: str
    pid_path: str  # the worker appends "pid create_time" for each kernel it starts
    cell_timeout: float
    timeout: float
    memory_bytes: int | None
    notebook_memory_bytes: int | None
    kernel_name: str
    requests: list[dict[str, Any]]  # key, path, nonce, timeout (s), in the order to run them
    test_grace: float
    max_restarts: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ExecutionSpec:
        return cls(**json.loads(text))


@dataclass
class NotebookGrade:
    """One notebook's grade: a row per test of its lesson, and what went wrong while running."""

    path: str
    lesson: str
    outcomes: list[Outcome]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0

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
            "seed": self.seed,
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

    with processes.reaping_orphans(), ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, notebooks))


@dataclass
class _Planned:
    test: ExerciseTest
    cases: list[Case]
    seed: int
    nonce: str


def grade_notebook(path: Path, lesson: str, options: GradeOptions) -> NotebookGrade:
    """Grade one notebook; never raises for anything the notebook contains."""
    start = time.monotonic()
    run_seed = options.seed if options.seed is not None else secrets.randbits(62)
    tests = tests_for(lesson)
    outcomes: dict[str, Outcome] = {}
    problems: list[str] = []
    cells, unreadable = _code_cells(path)
    if unreadable:
        problems.append(unreadable)
        for test in tests:
            outcomes[test.key] = outcome_for(test, NOT_RUN, f"not run: {unreadable}")
        return _grade(path, lesson, tests, outcomes, problems, start, run_seed)
    report = check_source(cells, exercises_for(lesson), path.parent)
    problems += [f"grading cannot trust this notebook: {f}" for f in report.notebook]
    planned = []
    for test in tests:
        verdict = _source_verdict(test, report)
        if verdict is not None:
            outcomes[test.key] = verdict
            continue
        seed = seed_of(run_seed, test.key)
        planned.append(_Planned(test, test.draw_cases(run_seed), seed, secrets.token_hex(8)))
    if planned:
        result, expected = _run(path, lesson, planned, options)
        problems += result["problems"]
        if result["grader_problem"]:
            problems.append(result["grader_problem"])
        for item in planned:
            outcomes[item.test.key] = _verdict(item, result, expected[item.test.key])
    return _grade(path, lesson, tests, outcomes, problems, start, run_seed)


def _grade(
    path: Path,
    lesson: str,
    tests: list[ExerciseTest],
    outcomes: dict[str, Outcome],
    problems: list[str],
    start: float,
    seed: int,
) -> NotebookGrade:
    rows = [outcomes[test.key] for test in tests]
    return NotebookGrade(str(path), lesson, rows, problems, time.monotonic() - start, seed)


def _code_cells(path: Path) -> tuple[list[tuple[int, str]], str]:
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cells = notebook["cells"]
        code = []
        for index, cell in enumerate(cells):
            if cell.get("cell_type") == "code":
                source = cell.get("source", "")
                code.append((index, source if isinstance(source, str) else "".join(source)))
        return code, ""
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return [], f"not a readable notebook: {type(error).__name__}: {str(error)[:200]}"


def _source_verdict(test: ExerciseTest, report: SourceReport) -> Outcome | None:
    rejection = report.rejection(test.exercise_id)
    if rejection:
        return outcome_for(test, REJECTED, f"scores 0: {rejection}")
    undefined = [n for n in report.undefined.get(test.exercise_id, []) if n in test.answer]
    if undefined:
        return outcome_for(test, MISSING, f"Define `{undefined[0]}` in the notebook.")
    return None


def _verdict(item: _Planned, result: dict[str, Any], expected: list[Expected]) -> Outcome:
    test = item.test
    call = result["calls"].get(test.key)
    if not isinstance(call, dict):
        why = result["grader_problem"] or "the worker reported nothing for this test"
        return outcome_for(test, NOT_RUN, f"not run: {why}")
    status = call.get("status")
    detail = str(call.get("detail", ""))[:400]
    if status == "returned":
        outputs = call.get("outputs")
        if not isinstance(outputs, list):
            return outcome_for(test, ERROR, "the kernel's reply held no outputs")
        return judge(test, item.cases, outputs, expected, wire.Builder(), item.seed)
    statuses = {
        "missing": MISSING,
        "timed out": TIMED_OUT,
        "out of memory": OUT_OF_MEMORY,
        "crashed": CRASHED,
        "not run": NOT_RUN,
    }
    return outcome_for(test, statuses.get(str(status), ERROR), detail or str(status))


def _run(
    path: Path, lesson: str, planned: list[_Planned], options: GradeOptions
) -> tuple[dict[str, Any], dict[str, list[Expected]]]:
    """Run the notebook and the calls in a worker; compute the references meanwhile."""
    with tempfile.TemporaryDirectory(prefix="llmcourse-grade-") as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "requests").mkdir()
        requests = []
        for index, item in enumerate(planned):
            request = {
                "nonce": item.nonce,
                "test": item.test.key,
                "seed": item.seed,
                "timeout": item.test.timeout,
                "memory_mb": item.test.memory_mb,
                "cases": [wire.encode((case.args, case.kwargs)) for case in item.cases],
            }
            request_path = scratch / "requests" / f"{index}.json"
            request_path.write_text(json.dumps(request, allow_nan=False), encoding="utf-8")
            requests.append(
                {
                    "key": item.test.key,
                    "path": str(request_path),
                    "nonce": item.nonce,
                    "timeout": item.test.timeout,
                }
            )
        memory = options.memory_mb * 2**20 or None
        spec = ExecutionSpec(
            notebook=str(path.resolve()),
            lesson=lesson,
            result_path=str(scratch / "result.json"),
            pid_path=str(scratch / "kernels.pid"),
            cell_timeout=options.cell_timeout,
            timeout=options.timeout,
            memory_bytes=memory,
            notebook_memory_bytes=memory - options.test_reserve_mb * 2**20 if memory else None,
            kernel_name=options.kernel_name,
            requests=requests,
            test_grace=TEST_GRACE_S,
            max_restarts=options.max_restarts,
        )
        # A safety net only: the worker enforces every limit itself. Each re-run of the notebook
        # after a test replaced the kernel may take up to the notebook's own limit.
        kernels = 3 + options.max_restarts
        hard_limit = (
            options.timeout * (1 + options.max_restarts)
            + sum(item.test.timeout + TEST_GRACE_S + 5 for item in planned)
            + kernels * KERNEL_ALLOWANCE_S
            + WORKER_SLACK_S
        )
        worker, marker = _start_worker(spec, scratch, options)
        try:
            build = wire.Builder()
            expected = {}
            for item in planned:
                try:
                    expected[item.test.key] = expected_outputs(
                        item.test, item.cases, build, item.seed
                    )
                except Exception as error:  # the course's fault: report it, never crash
                    expected[item.test.key] = [
                        Expected(raised=("GraderError",), message=repr(error)) for _ in item.cases
                    ]
            result = _wait_for_worker(worker, spec, scratch, hard_limit)
        finally:
            if worker.returncode is None:
                processes.kill_tree(worker.pid)
                worker.wait()
            _kill_recorded_kernels(Path(spec.pid_path))
            processes.kill_marked(MARKER_ENV, marker)
    return result, expected


def _start_worker(
    spec: ExecutionSpec, scratch: Path, options: GradeOptions
) -> tuple[subprocess.Popen[bytes], str]:
    spec_path = scratch / "spec.json"
    spec_path.write_text(spec.to_json(), encoding="utf-8")
    extra = [str(Path(f).resolve()) for f in options.exercise_files]
    inherited = os.environ.get(EXTRA_EXERCISES_ENV, "")
    marker = uuid.uuid4().hex
    env = {
        **os.environ,
        GRADING_ENV: "1",  # check() calls in the submission do nothing
        MARKER_ENV: marker,
        EXTRA_EXERCISES_ENV: os.pathsep.join(filter(None, [inherited, *extra])),
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),  # connection files go with the scratch
        "IPYTHONDIR": str(scratch / "ipython"),  # no history, no startup files of the user's
        "LLMCOURSE_HOME": str(scratch / "home"),  # a stray check() records nothing that counts
        "MPLBACKEND": "agg",  # figures are never looked at: skip rendering them
    }
    log = open(scratch / "worker.log", "wb")  # noqa: SIM115 (closed by _wait_for_worker)
    worker = subprocess.Popen(
        [sys.executable, "-m", "llmcourse.grading.execute", str(spec_path)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    worker.log = log  # type: ignore[attr-defined]
    return worker, marker


def _wait_for_worker(
    worker: subprocess.Popen[bytes], spec: ExecutionSpec, scratch: Path, hard_limit: float
) -> dict[str, Any]:
    timed_out = False
    try:
        worker.wait(timeout=hard_limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        processes.kill_tree(worker.pid)
        worker.wait()
    finally:
        worker.log.close()  # type: ignore[attr-defined]
    result_path = Path(spec.result_path)
    try:
        if result_path.stat().st_size > MAX_RESULT_BYTES:  # a forged file: do not even read it
            raise ValueError("too large")
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if not isinstance(result, dict):
            raise ValueError("not an object")
        return {
            "calls": result.get("calls") if isinstance(result.get("calls"), dict) else {},
            "problems": [str(p)[:500] for p in result.get("problems", []) if isinstance(p, str)],
            "grader_problem": str(result.get("grader_problem", ""))[:500],
        }
    except (OSError, ValueError):
        pass
    if timed_out:
        why = f"grading was stopped at the hard limit of {hard_limit:g} s"
    else:
        log = (scratch / "worker.log").read_text(encoding="utf-8", errors="replace")
        why = f"the grader's worker failed (exit status {worker.returncode}): {log.strip()[-300:]}"
    return {"calls": {}, "problems": [], "grader_problem": why}


def _kill_recorded_kernels(pid_path: Path) -> None:
    """Kill kernels the worker started, if they outlived it (a worker killed at the limit)."""
    if pid_path.exists():
        for line in pid_path.read_text(encoding="utf-8").splitlines():
            try:
                pid, created = line.split()
                processes.kill_tree(int(pid), float(created))
            except ValueError:
                continue
