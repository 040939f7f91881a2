"""Running exercise tests: every outcome a learner's code can produce, timeouts, determinism."""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
import time

import numpy as np
import pytest
from grading_fixtures.notebooks import LESSON_99

from llmcourse.grading import api
from llmcourse.grading.api import ExerciseTest, graded_lessons, load_exercise_file
from llmcourse.grading.runner import (
    ERROR,
    FAILED,
    MISSING,
    NOT_ATTEMPTED,
    PASSED,
    TIMED_OUT,
    Outcome,
    describe_exception,
    exercise_scores,
    run_test,
)


def make_test(body, *, timeout: float = 2.0, points: int = 1) -> ExerciseTest:
    return ExerciseTest("98.demo", body.__name__, points, "a hint", timeout, body)


def uses_answer(ns):
    assert ns.function("answer")(2) == 4, "answer(2) should be 4"


def test_outcomes_cover_what_a_learner_can_do():
    def stub(x):
        raise NotImplementedError("write me")

    def wrong(x):
        return x

    def crashes(x):
        return x + "text"

    def exits(x):
        sys.exit(3)

    test = make_test(uses_answer, points=3)
    cases = {
        PASSED: {"answer": lambda x: 2 * x},
        FAILED: {"answer": wrong},
        NOT_ATTEMPTED: {"answer": stub},
        MISSING: {},
        ERROR: {"answer": crashes},
    }
    for status, namespace in cases.items():
        outcome = run_test(test, namespace)
        assert outcome.status == status, (status, outcome)
        assert outcome.points == (3 if status == PASSED else 0)
        assert outcome.hint == "a hint" and outcome.max_points == 3
    # (pytest rewrites asserts in this file and appends its own explanation)
    assert run_test(test, {"answer": wrong}).message.startswith("answer(2) should be 4")
    assert "Define `answer`" in run_test(test, {}).message
    assert "not attempted yet" in run_test(test, {"answer": stub}).message
    error = run_test(test, {"answer": crashes}).message
    assert error.startswith("TypeError: unsupported operand")
    assert "(in `crashes`, line" in error  # points at the learner's function, not the grader
    assert run_test(test, {"answer": exits}).status == ERROR  # sys.exit() must not end grading
    assert "is a int" in run_test(test, {"answer": 5}).message  # not callable


def test_a_pure_python_infinite_loop_is_stopped_by_the_alarm():
    def spins(x):
        while True:
            pass

    def outer_alarm(signum, frame):
        raise AssertionError("the outer alarm must not fire during this test")

    previous = signal.signal(signal.SIGALRM, outer_alarm)
    signal.setitimer(signal.ITIMER_REAL, 60)  # an alarm someone else set (e.g. pytest-timeout)
    try:
        start = time.perf_counter()
        outcome = run_test(make_test(uses_answer, timeout=0.5), {"answer": spins})
        assert outcome.status == TIMED_OUT and "0.5 s" in outcome.message
        assert time.perf_counter() - start < 5
        assert signal.getsignal(signal.SIGALRM) is outer_alarm  # their handler is back
        delay, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 50 < delay < 60  # and their alarm still counts down
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_loop_that_swallows_the_first_timeout_is_stopped_by_the_repeat():
    def catches_once(x):
        with contextlib.suppress(BaseException):  # swallows the first timeout...
            time.sleep(10)
        while True:  # ...and then loops where nothing catches
            pass

    outcome = run_test(make_test(uses_answer, timeout=0.3), {"answer": catches_once})
    assert outcome.status == TIMED_OUT


def test_off_the_main_thread_a_helper_thread_enforces_the_timeout():
    """The fallback where SIGALRM cannot be used (Windows, or not the main thread)."""

    def slow(x):
        time.sleep(3)
        return 2 * x

    outcomes = []
    worker = threading.Thread(
        target=lambda: outcomes.append(
            (
                run_test(make_test(uses_answer, timeout=0.3), {"answer": slow}),
                run_test(make_test(uses_answer), {"answer": lambda x: 2 * x}),
                run_test(make_test(uses_answer), {"answer": lambda x: x}),
            )
        )
    )
    worker.start()
    worker.join(10)
    timed_out, passed, failed = outcomes[0]
    assert (timed_out.status, passed.status, failed.status) == (TIMED_OUT, PASSED, FAILED)


def test_random_inputs_are_the_same_every_run_and_the_learners_rng_is_untouched():
    draws = []

    def records(ns):
        draws.append((random.random(), float(np.random.rand())))

    random.seed(1)
    np.random.seed(1)
    before = (random.random(), float(np.random.rand()))
    random.seed(1)
    np.random.seed(1)
    run_test(make_test(records), {})
    run_test(make_test(records), {})
    after = (random.random(), float(np.random.rand()))
    assert draws[0] == draws[1]  # a grade never changes between two runs
    assert before == after  # and the learner's own sequence continues as if nothing happened


def test_describe_exception_is_short():
    try:
        raise ValueError("x" * 5000)
    except ValueError as error:
        text = describe_exception(error)
    assert len(text) < 600 and text.startswith("ValueError: xxx")
    assert describe_exception(MemoryError()) == "MemoryError (out of memory)"


def test_exercise_scores_group_points_and_reasons():
    rows = [
        Outcome("03.a", "t1", 2, PASSED),
        Outcome("03.a", "t2", 1, FAILED, "expected 1, got 2", "hint"),
        Outcome("03.b", "t3", 4, TIMED_OUT, "did not finish", "hint"),
    ]
    scores = exercise_scores(rows)
    assert (scores["03.a"].score, scores["03.a"].max_score) == (2, 3)
    assert scores["03.a"].to_dict()["lost"] == [
        {"test": "t2", "points": 1, "reason": "expected 1, got 2", "hint": "hint"}
    ]
    assert (scores["03.b"].score, scores["03.b"].max_score) == (0, 4)
    assert Outcome.from_dict(rows[1].to_dict()) == rows[1]


def test_extra_exercise_files_register_a_lesson(monkeypatch):
    monkeypatch.setenv(api.EXTRA_EXERCISES_ENV, str(LESSON_99))
    tests = api.tests_for("99")
    assert [t.exercise for t in tests] == ["99.mean_square"] * 2 + ["99.normalize"] * 2
    assert [t.name for t in api.tests_for("99.normalize")] == [
        "normalize_gives_unit_length",
        "normalize_leaves_the_zero_vector_alone",
    ]
    assert "99" in graded_lessons()
    load_exercise_file(LESSON_99)  # loading again registers nothing twice
    assert len(api.tests_for("99")) == 4


def test_bad_extra_files_and_unknown_lessons_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must be a \.py file"):
        load_exercise_file(tmp_path / "missing.py")
    with pytest.raises(ValueError, match="Lesson 97 has no graded exercises"):
        api.tests_for("97")
    load_exercise_file(LESSON_99)
    with pytest.raises(ValueError, match=r"Lesson 99 has: 99\.mean_square, 99\.normalize"):
        api.tests_for("99.typo")
