"""Run exercise tests against a learner's namespace: one outcome per test, never an exception.

Both ``check()`` (in the learner's kernel) and ``llmcourse grade`` (in a fresh kernel, through
``grade_in_kernel``) call ``run_test``. Each test

- runs with Python's, NumPy's and PyTorch's global generators seeded from the test's name, so a
  grade never changes between two runs, and the learner's own generator state is restored after;
- is stopped after its ``timeout``: in the main thread by ``SIGALRM`` (an exception raised inside
  a pure-Python infinite loop); where there is no ``SIGALRM`` (Windows) or off the main thread,
  the test runs in a helper thread that is abandoned when it overruns (Python cannot kill a
  thread, so that loop keeps a core busy until the kernel restarts);
- ends in one status: passed, failed (an ``AssertionError`` from the test), not attempted (the
  stub's ``NotImplementedError``), missing (the name is not defined), error (any other exception,
  summarised as type, message and where in the learner's code) or timed out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import random
import signal
import sys
import sysconfig
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcourse.grading.api import ExerciseTest, MissingAnswer, Namespace, tests_for

# Set in the kernel that ``llmcourse grade`` starts: ``check()`` calls in a submission do nothing.
GRADING_ENV = "LLMCOURSE_GRADING"
# The mimetype ``grade_in_kernel`` publishes each outcome under; the grader reads only this.
OUTCOME_MIMETYPE = "application/vnd.llmcourse.outcome+json"

PASSED, FAILED, NOT_ATTEMPTED, MISSING, ERROR, TIMED_OUT, NOT_RUN = (
    "passed",
    "failed",
    "not attempted",
    "missing",
    "error",
    "timed out",
    "not run",
)
_MESSAGE_LIMIT = 400  # characters: enough for "expected X, got Y", never a wall of text


@dataclass(frozen=True)
class Outcome:
    """What happened when one exercise test ran; all-or-nothing points."""

    exercise: str
    test: str
    max_points: int
    status: str
    message: str = ""
    hint: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def points(self) -> int:
        return self.max_points if self.passed else 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(**{field.name: data[field.name] for field in dataclasses.fields(cls)})


@dataclass(frozen=True)
class ExerciseScore:
    """One exercise's points and, for each failed test, why points were lost."""

    exercise: str
    score: int
    max_score: int
    lost: list[Outcome]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "max_score": self.max_score,
            "lost": [
                {"test": o.test, "points": o.max_points, "reason": o.message, "hint": o.hint}
                for o in self.lost
            ],
        }


def exercise_scores(outcomes: list[Outcome]) -> dict[str, ExerciseScore]:
    """Outcomes grouped by exercise, in the order the tests ran."""
    grouped: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome.exercise, []).append(outcome)
    return {
        exercise: ExerciseScore(
            exercise,
            sum(o.points for o in rows),
            sum(o.max_points for o in rows),
            [o for o in rows if not o.passed],
        )
        for exercise, rows in grouped.items()
    }


class TimeLimitExceeded(BaseException):
    """Raised into an overrunning test; a BaseException so ``except Exception`` cannot catch it."""


def run_tests(tests: list[ExerciseTest], namespace: Mapping[str, Any]) -> list[Outcome]:
    return [run_test(test, namespace) for test in tests]


def run_test(test: ExerciseTest, namespace: Mapping[str, Any]) -> Outcome:
    """Run one test against the learner's globals; the outcome says what happened."""
    _import_what_tests_use()
    start = time.perf_counter()
    try:
        with _seeded(zlib.crc32(f"{test.exercise}:{test.name}".encode())):
            _call_with_timeout(lambda: test.run(Namespace(namespace)), test.timeout)
        status, message = PASSED, ""
    except AssertionError as error:
        status, message = FAILED, _shorten(str(error)) or "an assertion failed" + _where(error)
    except MissingAnswer as error:
        status, message = MISSING, str(error)
    except NotImplementedError:
        status = NOT_ATTEMPTED
        message = "not attempted yet: replace `raise NotImplementedError(...)` with your code"
    except TimeLimitExceeded:
        status = TIMED_OUT
        message = f"did not finish within {test.timeout:g} s (an infinite loop, or far too slow?)"
    except (Exception, SystemExit) as error:  # the learner's code may raise anything at all
        status, message = ERROR, describe_exception(error)
    seconds = time.perf_counter() - start
    return Outcome(test.exercise, test.name, test.points, status, message, test.hint, seconds)


def describe_exception(error: BaseException) -> str:
    """``"TypeError: message (in `rmsnorm`, line 4)"``: type, short message, the learner's line."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if isinstance(error, MemoryError):
        text += " (out of memory)"
    return _shorten(text) + _where(error)


def prepare_kernel(lesson: str) -> None:
    """Import a lesson's tests and what they use (the grader's first cell, before the notebook)."""
    tests_for(lesson)
    _import_what_tests_use()


def _import_what_tests_use() -> None:
    # assert_close imports these lazily. Imported inside a timed test, seconds of import would
    # count against the learner, and a timeout mid-import leaves a half-initialised module.
    import numpy  # noqa: F401
    import torch  # noqa: F401


def grade_in_kernel(lesson: str, namespace: Mapping[str, Any]) -> None:
    """Run a lesson's tests and publish each outcome as it finishes (the grader's last cell).

    Publishing one display message per test means the tests that finished still count when a
    later one hangs the kernel past the grader's time limit.
    """
    from IPython import get_ipython
    from IPython.display import display

    # The last exception keeps its frames alive (and with them, say, a memory bomb's list):
    # Python keeps it in sys.last_*, IPython's traceback formatter in its ``tb``.
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        sys.__dict__.pop(name, None)
    formatter = getattr(get_ipython(), "InteractiveTB", None)
    if formatter is not None and hasattr(formatter, "tb"):
        formatter.tb = None
    gc.collect()
    for test in tests_for(lesson):
        display({OUTCOME_MIMETYPE: run_test(test, namespace).to_dict()}, raw=True)


def _shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


_NOT_LEARNER_CODE = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {
        Path(__file__).resolve().parents[1],  # the llmcourse package (tests and references)
        *(sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib")),
    }
)


def _where(error: BaseException) -> str:
    """Where the learner's code raised: the innermost frame outside the package and libraries."""
    frame = None
    traceback = error.__traceback__
    while traceback is not None:
        filename = str(Path(traceback.tb_frame.f_code.co_filename).resolve())
        if not filename.startswith(_NOT_LEARNER_CODE):
            frame = traceback
        traceback = traceback.tb_next
    if frame is None:
        return ""
    return f" (in `{frame.tb_frame.f_code.co_name}`, line {frame.tb_lineno})"


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed the global generators that are already imported; restore them afterwards."""
    numpy = sys.modules.get("numpy")
    torch = sys.modules.get("torch")
    saved_python = random.getstate()
    saved_numpy = numpy.random.get_state() if numpy else None
    saved_torch = torch.random.get_rng_state() if torch else None
    random.seed(seed)
    if numpy:
        numpy.random.seed(seed)
    if torch:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved_python)
        if numpy:
            numpy.random.set_state(saved_numpy)
        if torch:
            torch.random.set_rng_state(saved_torch)


def _call_with_timeout(function: Callable[[], None], seconds: float) -> None:
    if hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread():
        _call_with_alarm(function, seconds)
    else:
        _call_in_thread(function, seconds)


def _call_with_alarm(function: Callable[[], None], seconds: float) -> None:
    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeLimitExceeded

    previous = signal.signal(signal.SIGALRM, on_alarm)
    # The 0.5 s repeat re-raises into code that caught the first one with a bare ``except:``.
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
    start = time.monotonic()
    try:
        function()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:  # someone else's alarm (pytest-timeout, the notebook's own) goes on
            remaining = max(outer_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, outer_interval)


def _call_in_thread(function: Callable[[], None], seconds: float) -> None:
    failure: list[BaseException] = []

    def target() -> None:
        try:
            function()
        except BaseException as error:  # handed to the calling thread, which classifies it
            failure.append(error)

    worker = threading.Thread(target=target, name="llmcourse-exercise-test", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeLimitExceeded
    if failure:
        raise failure[0]
