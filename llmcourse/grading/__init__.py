"""Graded exercises: tests in ``grading.exercises``, ``check()`` in notebooks, the grade CLI."""

from llmcourse.grading.api import Namespace, assert_close, exercise_test, tests_for

__all__ = ["Namespace", "assert_close", "exercise_test", "tests_for"]
