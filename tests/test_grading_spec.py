"""Declaring exercises and judging outputs: every outcome a learner's code can produce, time
limits, fresh inputs per run, wrong variants, hidden data, and the registry."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time

import numpy as np
import pytest
from grading_fixtures.judge import grade_answer
from grading_fixtures.notebooks import LESSON_99

from llmcourse.grading import spec, wire
from llmcourse.grading.calls import (
    TimeLimitExceeded,
    call_in_thread,
    call_with_alarm,
    describe_exception,
)
from llmcourse.grading.compare import Mismatch, close, exact
from llmcourse.grading.evaluate import (
    ERROR,
    FAILED,
    NOT_ATTEMPTED,
    OUT_OF_MEMORY,
    PASSED,
    TIMED_OUT,
    Outcome,
    exercise_scores,
    expected_outputs,
    judge,
    variant_outputs,
)
from llmcourse.grading.spec import Exercise, graded_lessons, load_exercise_file


@pytest.fixture(autouse=True)
def fixture_lesson():
    load_exercise_file(LESSON_99)


def normalize(vector):
    vector = np.asarray(vector, dtype=float)
    length = np.linalg.norm(vector)
    return vector if length == 0 else vector / length


def test_outcomes_cover_what_a_learner_can_do():
    def stub(vector):
        raise NotImplementedError("write me")

    def crashes(vector):
        return vector + "text"

    def exits(vector):
        raise SystemExit(3)

    def allocates(vector):
        raise MemoryError

    cases = {
        PASSED: normalize,
        FAILED: lambda v: np.asarray(v) * 2,
        NOT_ATTEMPTED: stub,
        ERROR: crashes,
        OUT_OF_MEMORY: allocates,
    }
    for status, answer in cases.items():
        first = grade_answer("99.normalize", {"normalize": answer})[0]
        assert first.status == status, (status, first)
        assert first.points == (2 if status == PASSED else 0)
        assert first.hint == "Divide the vector by its Euclidean length." and first.max_points == 2
    failed = grade_answer("99.normalize", {"normalize": lambda v: np.asarray(v) * 2})[0]
    assert failed.message.startswith("a random 5-d vector: values differ at index (0,)")
    assert "expected" in failed.message and "shape (5,)" in failed.message
    error = grade_answer("99.normalize", {"normalize": crashes})[0].message
    assert error.startswith("a random 5-d vector: UFuncTypeError") or "TypeError" in error
    assert "(in `crashes`, line" in error  # points at the learner's function, not the grader
    assert grade_answer("99.normalize", {"normalize": exits})[0].status == ERROR
    assert "not attempted yet" in grade_answer("99.normalize", {"normalize": stub})[0].message


def test_an_answer_that_raises_what_the_reference_raises_passes():
    def strict(tokenizer, text):
        if not text.split():
            raise ValueError("no words")
        return len(tokenizer.encode(text)) / len(text.split())

    assert grade_answer("06.fertility", {"fertility": strict})[1].status == PASSED
    lenient = grade_answer("06.fertility", {"fertility": lambda t, text: 0.0})[1]
    assert lenient.status == FAILED and "expected ValueError, but it returned" in lenient.message


def test_stateful_answers_are_driven_by_a_probe():
    class RunningMean:
        def __init__(self):
            self.values = []

        def add(self, value):
            self.values.append(value)

        @property
        def value(self):
            return sum(self.values) / len(self.values) if self.values else 0.0

    class ForgetsTheFirst(RunningMean):
        @property
        def value(self):
            return sum(self.values[1:]) / len(self.values) if self.values else 0.0

    assert grade_answer("99.running_mean", {"RunningMean": RunningMean})[0].passed
    wrong = grade_answer("99.running_mean", {"RunningMean": ForgetsTheFirst})[0]
    assert wrong.status == FAILED and "['after_each']" in wrong.message


def test_a_project_is_scored_on_hidden_data_that_never_crosses():
    test = spec.tests_for("99.threshold")[0]
    (case,) = test.draw_cases(3)
    sent = wire.dumps((case.args, case.kwargs))
    assert json.dumps(case.hidden[0][0]) not in sent  # held-out points stay in the grader

    def midpoint(xs, ys):
        xs, ys = np.asarray(xs), np.asarray(ys)
        return float((xs[ys == 0].mean() + xs[ys == 1].mean()) / 2)

    good = grade_answer("99.threshold", {"fit_threshold": midpoint})[0]
    assert good.passed and good.measured["name"] == "accuracy on held-out points"
    assert good.measured["value"] >= 0.9
    bad = grade_answer("99.threshold", {"fit_threshold": lambda xs, ys: 50.0})[0]
    assert bad.status == FAILED and "accuracy on held-out points: 0." in bad.message
    assert "(needs ≥ 0.9)" in bad.message and bad.measured["value"] < 0.9


def test_wrong_variants_are_named_and_the_inputs_tell_them_apart():
    import math

    import torch

    from llmcourse.grading.exercises import lesson_03

    def unscaled(q, k, v, mask=None):
        return lesson_03._unscaled(q, k, v, mask)

    (outcome, *_) = grade_answer("03.attention", {"attention": unscaled})
    assert outcome.mistake == "the scores are not divided by sqrt(d_k)"
    assert (
        outcome.message
        == "no mask: your output matches a common mistake: the scores are not divided by sqrt(d_k)."
    )
    for test in spec.tests_for("03.attention"):
        case = test.draw_cases(11)[0]
        outputs = variant_outputs(test, case, wire.Builder())
        reference = expected_outputs(test, [case], wire.Builder())[0].value
        for mistake, output in outputs.items():
            if test.name == "attention_without_mask" and "mask" in mistake:
                continue  # without a mask, masking mistakes change nothing
            with pytest.raises(Mismatch):
                test.compare(output.value, reference, case)
    assert math and torch  # imported for the variants above


def test_every_test_draws_fresh_inputs_from_the_runs_seed():
    """Replaying outputs recorded in one run cannot pass the next: every test of every lesson
    draws different inputs for another seed (its fixed edge cases sit beside random ones)."""
    for lesson in graded_lessons():
        for test in spec.tests_for(lesson):
            first = [wire.dumps((c.args, c.kwargs)) for c in test.draw_cases(1)]
            again = [wire.dumps((c.args, c.kwargs)) for c in test.draw_cases(1)]
            other = [wire.dumps((c.args, c.kwargs)) for c in test.draw_cases(2)]
            assert first == again, test.key  # one seed, one set of inputs
            assert first != other, f"{test.key} draws the same inputs for every seed"


def test_the_alarm_stops_a_python_loop_and_restores_an_outer_alarm():
    def outer_alarm(signum, frame):
        raise AssertionError("the outer alarm must not fire during this call")

    previous = signal.signal(signal.SIGALRM, outer_alarm)
    signal.setitimer(signal.ITIMER_REAL, 60)  # an alarm someone else set (e.g. pytest-timeout)
    try:
        start = time.perf_counter()
        with pytest.raises(TimeLimitExceeded):
            call_with_alarm(lambda: [None for _ in iter(int, 1)], 0.5)
        assert time.perf_counter() - start < 5
        assert signal.getsignal(signal.SIGALRM) is outer_alarm  # their handler is back
        delay, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 50 < delay < 60  # and their alarm still counts down
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_the_alarm_repeats_for_code_that_swallows_it_once():
    def catches_once():
        with contextlib.suppress(BaseException):  # swallows the first timeout...
            time.sleep(10)
        while True:  # ...and then loops where nothing catches
            pass

    with pytest.raises(TimeLimitExceeded):
        call_with_alarm(catches_once, 0.3)


def test_a_helper_thread_returns_at_the_limit_whatever_the_call_does():
    stop = threading.Event()

    def sleeps_in_c():
        while not stop.is_set():
            with contextlib.suppress(BaseException):
                time.sleep(0.2)

    start = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        call_in_thread(sleeps_in_c, 0.3)
    assert time.monotonic() - start < 2
    stop.set()
    assert call_in_thread(lambda: 42, 1) == 42
    with pytest.raises(ZeroDivisionError):
        call_in_thread(lambda: 1 / 0, 1)


def test_comparators_say_where_outputs_differ():
    import torch

    with pytest.raises(Mismatch, match=r"expected shape \(2, 3\), got shape \(3, 2\)"):
        close()(torch.zeros(3, 2), torch.zeros(2, 3), None)
    with pytest.raises(
        Mismatch, match=r"weights: values differ at index \(1,\): expected 1, got 5"
    ):
        close(names=("output", "weights"))(
            (torch.zeros(2), torch.tensor([1.0, 5.0])), (torch.zeros(2), torch.ones(2)), None
        )
    with pytest.raises(Mismatch, match=r"expected a tuple \(output, weights\), got a tensor"):
        close(names=("output", "weights"))(torch.zeros(2), (torch.zeros(2), torch.ones(2)), None)
    with pytest.raises(Mismatch, match="first difference at position 2: expected 9, got 5"):
        exact()([1, 2, 5], [1, 2, 9], None)
    with pytest.raises(Mismatch, match=r"missing keys \[\(1, 2\)\]"):
        exact()({}, {(1, 2): 3}, None)
    close()([1.0, 2.0], (1.0, 2.0 + 1e-7), None)  # lists and tuples alike, within tolerance
    exact()(np.array([1, 2]), np.array([1, 2], dtype=np.uint64), None)


def test_a_forged_or_truncated_reply_never_passes():
    test = spec.tests_for("99.normalize")[0]
    cases = test.draw_cases(5)
    build = wire.Builder()
    expected = expected_outputs(test, cases, build)
    for results in ([], [{"status": "passed"}], [{"returned": {"$pickle": "x"}}], [{}]):
        assert not judge(test, cases, results, expected, build).passed


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
        Outcome("03.a", "t2", 1, FAILED, "expected 1, got 2", "hint", mistake="m"),
        Outcome("03.b", "t3", 4, TIMED_OUT, "did not finish", "hint"),
    ]
    scores = exercise_scores(rows)
    assert (scores["03.a"].score, scores["03.a"].max_score) == (2, 3)
    assert scores["03.a"].to_dict()["lost"] == [
        {
            "test": "t2",
            "points": 1,
            "status": FAILED,
            "reason": "expected 1, got 2",
            "hint": "hint",
            "mistake": "m",
        }
    ]
    assert (scores["03.b"].score, scores["03.b"].max_score) == (0, 4)
    assert Outcome.from_dict(rows[1].to_dict()) == rows[1]


def test_extra_exercise_files_register_a_lesson(monkeypatch):
    monkeypatch.setenv(spec.EXTRA_EXERCISES_ENV, str(LESSON_99))
    tests = spec.tests_for("99")
    assert [t.exercise_id for t in tests][:4] == ["99.mean_square"] * 2 + ["99.normalize"] * 2
    assert [t.name for t in spec.tests_for("99.normalize")] == [
        "normalize_gives_unit_length",
        "normalize_leaves_the_zero_vector_alone",
    ]
    assert "99" in graded_lessons()
    load_exercise_file(LESSON_99)  # loading again registers nothing twice
    assert len(spec.tests_for("99")) == 8 and sum(t.points for t in tests) == 12


def test_bad_declarations_and_unknown_lessons_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(spec, "_REGISTRY", dict(spec._REGISTRY))  # what this test declares goes
    with pytest.raises(ValueError, match=r"must be a \.py file"):
        load_exercise_file(tmp_path / "missing.py")
    with pytest.raises(ValueError, match="Lesson 97 has no graded exercises"):
        spec.tests_for("97")
    with pytest.raises(ValueError, match=r"Lesson 99 has: 99\.clip, 99\.mean_square"):
        spec.tests_for("99.typo")
    with pytest.raises(ValueError, match=r"'03.rmsnorm' or '10b.ece'"):
        Exercise("3.bad", answer="x")
    with pytest.raises(ValueError, match="needs a probe"):
        Exercise("98.pair", answer=("a", "b"), reference=(len, len)).test(points=1, hint="")(
            lambda d: []
        )
    with pytest.raises(ValueError, match="no reference"):
        Exercise("98.none", answer="a").test(points=1, hint="")(lambda d: [])
    with pytest.raises(TypeError, match="non-empty list of Case"):
        Exercise("98.empty", answer="a", reference=len).test(points=1, hint="")(lambda d: [])
        spec.tests_for("98.empty")[0].draw_cases(1)


def test_every_exercise_points_to_a_heading_of_its_lesson():
    """Feedback says "see the lesson's section …": that heading must exist (numbering aside)."""
    import re

    from grading_fixtures.notebooks import ROOT

    course = [
        p.stem.removeprefix("lesson_")
        for p in (ROOT / "llmcourse/grading/exercises").glob("lesson_*.py")
    ]
    for lesson in course:
        (path,) = (ROOT / "lessons").glob(f"{lesson}_*.ipynb")
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        headings = {
            re.sub(r"^#+\s+(\d+(\.\d+)*\.?\s+)?", "", line).strip()  # "2. ", "2.3 "
            for cell in cells
            if cell["cell_type"] == "markdown"
            for line in "".join(cell["source"]).splitlines()
            if line.startswith("#")
        }
        for exercise in spec.exercises_for(lesson):
            assert exercise.section in headings, (exercise.id, exercise.section)
