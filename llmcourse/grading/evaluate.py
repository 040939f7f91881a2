"""Verdicts: the learner's outputs against the reference's, on the grader's side.

``llmcourse grade`` calls :func:`judge` in its own process with the outputs the kernel sent
back; ``check()`` calls it in the learner's kernel. Either way the reference runs here, on the
inputs this side drew (never inputs read back from the kernel), and one :class:`Outcome` per
test comes out. For a failed case the wrong variants of the exercise run on the same inputs:
when the learner's output matches one, the message names that mistake; otherwise it says where
the outputs first differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmcourse.grading import wire
from llmcourse.grading.calls import describe_exception, invoke, seeded, shorten
from llmcourse.grading.compare import describe
from llmcourse.grading.spec import Case, ExerciseTest, Measurement, Variant

PASSED, FAILED, NOT_ATTEMPTED, MISSING, ERROR, TIMED_OUT, OUT_OF_MEMORY, CRASHED, NOT_RUN = (
    "passed",
    "failed",
    "not attempted",
    "missing",
    "error",
    "timed out",
    "out of memory",
    "crashed",
    "not run",
)
REJECTED = "not your own"  # the source rules: an answer that is the package's, or aliases it
ATTEMPTED = (FAILED, ERROR, TIMED_OUT, OUT_OF_MEMORY, CRASHED)  # a hint helps these
NOT_ATTEMPTED_MESSAGE = "not attempted yet: replace `raise NotImplementedError(...)` with your code"


@dataclass(frozen=True)
class Outcome:
    """What happened in one test; all-or-nothing points."""

    exercise: str
    test: str
    max_points: int
    status: str
    message: str = ""
    hint: str = ""
    seconds: float = 0.0
    mistake: str = ""  # the wrong variant the output matched, if any
    measured: dict[str, Any] | None = None  # a project's measurement
    section: str = ""

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
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def outcome_for(test: ExerciseTest, status: str, message: str, **extra: Any) -> Outcome:
    return Outcome(
        test.exercise_id,
        test.name,
        test.points,
        status,
        message,
        test.hint,
        section=test.exercise.section,
        **extra,
    )


@dataclass(frozen=True)
class Expected:
    """The reference's result on one case: a value, or the exception it raised."""

    value: Any = None
    raised: tuple[str, ...] = ()  # the exception's class and base-class names
    message: str = ""


def reference_implementations(test: ExerciseTest, variant: Variant | None = None) -> list[Any]:
    references = dict(test.exercise.references)
    if variant is not None:
        references[variant.answer] = variant.implementation
    return [references[name] for name in test.answer]


def expected_outputs(
    test: ExerciseTest, cases: Sequence[Case], build: wire.Builder, seed: int = 0
) -> list[Expected]:
    """The reference's result on every case (``measure`` tests have none)."""
    if test.measure is not None:
        return [Expected() for _ in cases]
    return [_expected(test, case, build, seed + i) for i, case in enumerate(cases)]


def _expected(
    test: ExerciseTest, case: Case, build: wire.Builder, seed: int, variant: Variant | None = None
) -> Expected:
    # The reference gets the inputs as the kernel does: through the wire, as fresh copies, so an
    # answer and a reference see equal objects and neither sees the other's mutations.
    inputs = _through_the_wire(case, build)
    with seeded(seed):
        try:
            if test.expect is not None and variant is None:
                value = test.expect(inputs)
            else:
                value = invoke(test, reference_implementations(test, variant), inputs)
            # Outputs are compared as the kernel's come back: after a round trip.
            return Expected(value=wire.loads(wire.dumps(value)))
        except Exception as error:
            return Expected(
                raised=tuple(cls.__name__ for cls in type(error).__mro__),
                message=describe_exception(error),
            )


def _through_the_wire(case: Case, build: wire.Builder) -> Case:
    args, kwargs = wire.loads(wire.dumps((case.args, case.kwargs)), build)
    return Case(tuple(args), dict(kwargs), case.label, case.hidden)


def judge(
    test: ExerciseTest,
    cases: Sequence[Case],
    results: Sequence[Mapping[str, Any]],
    expected: Sequence[Expected],
    build: wire.Builder,
    seed: int = 0,
) -> Outcome:
    """One test's outcome from the per-case ``results`` the kernel reported (``calls.run_cases``).

    ``results`` must hold one entry per case; anything else (a forged or truncated reply) is a
    failure, never a pass.
    """
    if len(results) != len(cases) or len(expected) != len(cases):
        return outcome_for(test, ERROR, "the kernel's reply did not hold one result per input")
    for result in results:
        if result.get("not_attempted"):
            return outcome_for(test, NOT_ATTEMPTED, NOT_ATTEMPTED_MESSAGE)
    measured: dict[str, Any] | None = None
    for index, (case, result, want) in enumerate(zip(cases, results, expected, strict=True)):
        label = f"{case.label}: " if case.label else ""
        if "raised" in result:
            error = result["raised"] if isinstance(result["raised"], Mapping) else {}
            names = tuple(str(n) for n in error.get("mro", ())) or (str(error.get("type")),)
            if want.raised and want.raised[0] in names:
                continue  # the answer raised what the reference raises (bad input rejected)
            text = _error_text(error)
            status = OUT_OF_MEMORY if error.get("out_of_memory") else ERROR
            if status == OUT_OF_MEMORY:
                text += f" (the test may use {test.memory_mb} MiB more than the notebook holds)"
            return outcome_for(test, status, shorten(label + text))
        if "returned" not in result:
            why = result.get("unsendable") or "no value came back"
            return outcome_for(test, ERROR, shorten(f"{label}the answer's output {why}"))
        try:
            got = wire.decode(result["returned"])
        except (wire.WireError, ValueError, TypeError, KeyError) as error:
            return outcome_for(test, ERROR, shorten(f"{label}unreadable output ({error})"))
        if want.raised:
            return outcome_for(
                test,
                FAILED,
                shorten(f"{label}expected {want.raised[0]}, but it returned {describe(got)}."),
            )
        if test.measure is not None:
            try:
                measurement = test.measure(got, _through_the_wire(case, build))
            except AssertionError as error:
                return outcome_for(test, FAILED, shorten(f"{label}{error}"))
            measured = _measurement_dict(measurement)
            if not measurement.passed:
                return outcome_for(
                    test, FAILED, shorten(label + measurement.describe()), measured=measured
                )
            continue
        try:
            test.compare(got, want.value, case)
        except AssertionError as error:
            mistake = _matching_variant(test, case, got, build, seed + index)
            message = f"{label}{error}" if str(error) else f"{label}the output differs"
            if mistake:
                message = f"{label}your output matches a common mistake: {mistake}."
            return outcome_for(test, FAILED, shorten(message), mistake=mistake)
    return outcome_for(test, PASSED, "", measured=measured)


def _matching_variant(
    test: ExerciseTest, case: Case, got: Any, build: wire.Builder, seed: int
) -> str:
    """The first wrong variant whose output on ``case`` matches the learner's, else ``""``."""
    for variant in test.exercise.variants:
        if variant.answer not in test.answer:
            continue
        wrong = _expected(test, case, build, seed, variant)
        if wrong.raised:
            continue
        try:
            test.compare(got, wrong.value, case)
        except AssertionError:
            continue
        return variant.mistake
    return ""


def _error_text(error: Mapping[str, Any]) -> str:
    kind, message = str(error.get("type", "Error")), str(error.get("message", ""))
    text = f"{kind}: {message}" if message else kind
    return text + str(error.get("where", ""))


def _measurement_dict(measurement: Measurement) -> dict[str, Any]:
    return {
        "name": measurement.name,
        "value": float(measurement.value),
        "threshold": float(measurement.threshold),
        "higher_is_better": measurement.higher_is_better,
    }


def variant_outputs(test: ExerciseTest, case: Case, build: wire.Builder) -> dict[str, Expected]:
    """Every variant's output on ``case`` (for tests proving the inputs tell them apart)."""
    return {
        v.mistake: _expected(test, case, build, 0, v)
        for v in test.exercise.variants
        if v.answer in test.answer
    }


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
                {
                    "test": o.test,
                    "points": o.max_points,
                    "status": o.status,
                    "reason": o.message,
                    "hint": o.hint,
                    **({"mistake": o.mistake} if o.mistake else {}),
                }
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
