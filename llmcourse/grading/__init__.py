"""Graded exercises: ``check()`` in notebooks, ``llmcourse grade`` for verdicts, the spec API.

How to write a solution notebook and its exercises: ``llmcourse/grading/README.md``.
"""

from llmcourse.grading.compare import close, exact
from llmcourse.grading.feedback import CheckResult, check, try_it
from llmcourse.grading.spec import Case, Draw, Exercise, Measurement, tests_for
from llmcourse.grading.wire import Make

__all__ = [
    "Case",
    "CheckResult",
    "Draw",
    "Exercise",
    "Make",
    "Measurement",
    "check",
    "close",
    "exact",
    "tests_for",
    "try_it",
]
