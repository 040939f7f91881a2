"""How exercise tests are written: a decorator, a view of the learner's namespace, and asserts.

An exercise test lives in ``llmcourse/grading/exercises/lesson_NN.py`` and compares the
learner's function with the package's own on chosen inputs::

    from llmcourse.grading.api import Namespace, assert_close, exercise_test

    @exercise_test("03.rmsnorm", points=2, hint="Divide by sqrt(mean(x**2) + eps), then scale.")
    def rmsnorm_matches_the_package(ns: Namespace) -> None:
        rmsnorm = ns.function("rmsnorm")
        x = torch.randn(4, 8)
        assert_close(rmsnorm(x, torch.ones(8)), RMSNorm(8)(x), what="rmsnorm(x, weight)")

The test fails by raising (``AssertionError`` with a message that says what was expected and
what came out). ``check()`` in a notebook and ``llmcourse grade`` both run these functions.

Exercises that are not course lessons (the grader's own test fixtures, an instructor's extra
exercises) live in plain Python files named by ``$LLMCOURSE_EXTRA_EXERCISES`` (paths separated by
``os.pathsep``) or loaded with ``load_exercise_file``; they register tests the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A lesson is two digits, optionally followed by one letter for a follow-up lesson ("10b").
LESSON_ID = r"\d\d[a-z]?"
EXERCISE_ID = re.compile(rf"^({LESSON_ID})\.([a-z0-9_]+)$")
EXTRA_EXERCISES_ENV = "LLMCOURSE_EXTRA_EXERCISES"


class MissingAnswer(Exception):
    """The learner has not defined the name an exercise asks for."""


@dataclass(frozen=True)
class ExerciseTest:
    exercise: str  # "03.rmsnorm"
    name: str  # the test function's name, shown in reports
    points: int
    hint: str
    timeout: float  # seconds, per test
    run: Callable[[Namespace], None]

    @property
    def lesson(self) -> str:
        return self.exercise.split(".")[0]


_REGISTRY: dict[str, list[ExerciseTest]] = {}


def exercise_test(
    exercise: str, *, points: int = 1, hint: str, timeout: float = 20.0
) -> Callable[[Callable[[Namespace], None]], Callable[[Namespace], None]]:
    """Register a test of ``exercise`` (``"NN.slug"``) worth ``points``, with a hint."""
    if not EXERCISE_ID.match(exercise):
        raise ValueError(
            f"Exercise ids look like '03.rmsnorm' or '10b.ece' (lesson, dot, slug); got "
            f"{exercise!r}."
        )
    if points <= 0:
        raise ValueError(f"points must be positive, got {points}.")

    def register(func: Callable[[Namespace], None]) -> Callable[[Namespace], None]:
        tests = _REGISTRY.setdefault(exercise, [])
        tests[:] = [
            t for t in tests if t.name != func.__name__
        ]  # re-import replaces, never doubles
        tests.append(ExerciseTest(exercise, func.__name__, points, hint, timeout, func))
        return func

    return register


def tests_for(selector: str) -> list[ExerciseTest]:
    """Tests of one exercise (``"03.rmsnorm"``) or of a whole lesson (``"03"``), in file order."""
    lesson = selector.split(".")[0]
    if not re.fullmatch(LESSON_ID, lesson):
        raise ValueError(
            f"Use an exercise id such as '03.rmsnorm' or a lesson such as '03', not {selector!r}."
        )
    _load_extra_exercises()
    module = f"llmcourse.grading.exercises.lesson_{lesson}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        if not any(key.startswith(lesson + ".") for key in _REGISTRY):
            raise ValueError(f"Lesson {lesson} has no graded exercises.") from None
    if "." in selector:
        if selector not in _REGISTRY:
            known = ", ".join(sorted(k for k in _REGISTRY if k.startswith(lesson + ".")))
            raise ValueError(f"Unknown exercise {selector!r}. Lesson {lesson} has: {known}.")
        return list(_REGISTRY[selector])
    return [t for key in _REGISTRY if key.startswith(lesson + ".") for t in _REGISTRY[key]]


def graded_lessons() -> list[str]:
    """Every lesson with graded exercises (``["03", "06", ...]``): the ``lesson_NN`` modules in
    ``llmcourse.grading.exercises``, plus lessons registered by extra exercise files."""
    from llmcourse.grading import exercises

    found = {
        name.removeprefix("lesson_")
        for _, name, _ in pkgutil.iter_modules(exercises.__path__)
        if re.fullmatch(rf"lesson_{LESSON_ID}", name)
    }
    _load_extra_exercises()
    found.update(key.split(".")[0] for key in _REGISTRY)
    return sorted(found)


_LOADED_FILES: set[Path] = set()


def load_exercise_file(path: str | os.PathLike[str]) -> None:
    """Register the exercise tests defined in a Python file outside the package (once per file)."""
    resolved = Path(path).resolve()
    if resolved in _LOADED_FILES:
        return
    if resolved.suffix != ".py" or not resolved.is_file():
        raise ValueError(f"Exercise tests must be a .py file; {str(path)!r} is not one.")
    spec = importlib.util.spec_from_file_location(
        f"llmcourse_extra_exercises_{len(_LOADED_FILES)}", resolved
    )
    assert spec is not None and spec.loader is not None  # a .py file always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: dataclasses and pickle look it up
    spec.loader.exec_module(module)
    _LOADED_FILES.add(resolved)


def _load_extra_exercises() -> None:
    for entry in os.environ.get(EXTRA_EXERCISES_ENV, "").split(os.pathsep):
        if entry:
            load_exercise_file(entry)


class Namespace:
    """Read-only access to the learner's notebook globals, with errors that say what to define."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def value(self, name: str) -> Any:
        if name not in self._values:
            raise MissingAnswer(f"Define `{name}` in the notebook (run its cell) before checking.")
        return self._values[name]

    def function(self, name: str) -> Callable[..., Any]:
        value = self.value(name)
        if not callable(value):
            raise MissingAnswer(
                f"`{name}` should be a function, but it is a {type(value).__name__}."
            )
        return value


def assert_close(
    actual: Any, expected: Any, *, what: str, atol: float = 1e-5, rtol: float = 1e-4
) -> None:
    """Assert two numbers/arrays/tensors agree; the message names the worst mismatch."""
    import numpy as np
    import torch

    def as_array(x: Any, label: str) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().double().numpy()
        try:
            return np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise AssertionError(
                f"{what}: the {label} value {x!r} is not a number or array."
            ) from None

    a, e = as_array(actual, "returned"), as_array(expected, "expected")
    if a.shape != e.shape:
        raise AssertionError(f"{what}: expected shape {e.shape}, got shape {a.shape}.")
    if not np.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True):
        worst = np.unravel_index(np.argmax(np.abs(a - e)), a.shape) if a.ndim else ()
        at = tuple(int(i) for i in worst)
        raise AssertionError(
            f"{what}: values differ (largest gap {float(np.max(np.abs(a - e))):.3g} at index "
            f"{at}: expected {float(e[worst]):.6g}, got {float(a[worst]):.6g})."
        )
