"""Graded exercises: tests in ``grading.exercises``, ``check()`` in notebooks, the grade CLI.

How to write a solution notebook and its tests: ``llmcourse/grading/README.md``.
"""

from llmcourse.grading.api import Namespace, assert_close, exercise_test, tests_for
from llmcourse.grading.feedback import CheckResult, check

__all__ = ["CheckResult", "Namespace", "assert_close", "check", "exercise_test", "tests_for"]
