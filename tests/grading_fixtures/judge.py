"""The grader's path for one exercise without a kernel: draw, call, send as JSON, judge."""

from __future__ import annotations

import functools
import json

from llmcourse.grading import spec, wire
from llmcourse.grading.calls import TimeLimitExceeded, call_with_alarm, run_cases
from llmcourse.grading.evaluate import TIMED_OUT, Outcome, expected_outputs, judge
from llmcourse.grading.spec import Case


def grade_answer(exercise_id: str, answers: dict, seed: int = 7) -> list[Outcome]:
    """The grader's path without a kernel: draw, call, send as JSON, judge."""
    outcomes = []
    for test in spec.tests_for(exercise_id):
        cases = test.draw_cases(seed)
        copies = [wire.loads(wire.dumps((c.args, c.kwargs)), wire.Builder()) for c in cases]
        copies = [Case(tuple(a), dict(k)) for a, k in copies]
        test_seed = spec.seed_of(seed, test.key)
        implementations = [answers[n] for n in test.answer]
        call = functools.partial(run_cases, test, implementations, copies, test_seed)
        try:
            raw = call_with_alarm(call, test.timeout)
        except TimeLimitExceeded:
            outcomes.append(Outcome(test.exercise_id, test.name, test.points, TIMED_OUT))
            continue
        results = json.loads(json.dumps(raw))
        build = wire.Builder()
        expected = expected_outputs(test, cases, build, test_seed)
        outcomes.append(judge(test, cases, results, expected, build, test_seed))
    return outcomes
