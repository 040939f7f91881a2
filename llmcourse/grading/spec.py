"""How an exercise is declared: what the learner writes, the package's version, tests, mistakes.

An exercise names what the learner defines in the notebook (``answer``) and the package's own
version of it (``reference``). Each test draws inputs; the learner's code runs on them in the
notebook's kernel, the reference runs on the same inputs in the grader's process, and the two
outputs are compared there::

    from llmcourse.grading.spec import Case, Draw, Exercise, close

    rmsnorm = Exercise(
        "03.rmsnorm",
        answer="rms_norm",
        reference=norms.rms_norm,  # also forbidden: the notebook may not use it
        section="RMSNorm",
    )

    @rmsnorm.variant("the mean is subtracted first (that is LayerNorm)")
    def _layer_norm(x, weight, eps=1e-6): ...

    @rmsnorm.test(points=1, hint="Normalise over the last dimension only.")
    def rmsnorm_matches(draw: Draw) -> list[Case]:
        x = draw.randn(4, 8) * 3 + 1
        return [Case((x, draw.randn(8), 1e-6), label="x of shape (4, 8)")]

- **Inputs** come from ``draw``, seeded from a seed the grader picks per run, so outputs recorded
  in one run are useless in the next; fixed edge cases sit beside random ones in every test.
- **Stateful answers** (a class, an object the answer mutates) are driven by a ``probe``: a
  function ``probe(*answers, *args, **kwargs)`` that builds objects, calls the answer and
  returns what it observed as plain data. It runs in the kernel with the learner's answers and in
  the grader with the references; only its return values are compared.
- **Wrong variants** (:meth:`Exercise.variant`) compute common mistakes on the same inputs; when
  the learner's output matches one, feedback names the mistake.
- **Forbidden names**: the reference and ``forbid`` may not appear anywhere in the notebook's
  source (``permit`` makes exceptions); an answer must be defined in the notebook.
- **Hidden data**: ``Case(hidden=...)`` stays in the grader's process; ``expect`` and
  ``measure`` read it (a project scored on held-out labels the kernel never sees).

``llmcourse/grading/README.md`` walks through writing a lesson's exercises.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A lesson is two digits, optionally followed by one letter for a follow-up lesson ("10b").
LESSON_ID = r"\d\d[a-z]?"
EXERCISE_ID = re.compile(rf"^({LESSON_ID})\.([a-z0-9_]+)$")
EXTRA_EXERCISES_ENV = "LLMCOURSE_EXTRA_EXERCISES"
# Set in the kernels ``llmcourse grade`` starts: ``check()`` calls in a submission do nothing.
GRADING_ENV = "LLMCOURSE_GRADING"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 2048  # address space a test may add on top of what the kernel holds


@dataclass
class Case:
    """One set of inputs: ``answer(*args, **kwargs)``; ``label`` is what feedback calls it.

    ``hidden`` never leaves the grader's process: held-out labels, the data a project is
    scored on. ``expect`` and ``measure`` receive the whole case and may read it.
    """

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    hidden: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.args, tuple):
            raise TypeError(f"Case args must be a tuple, got {type(self.args).__name__}.")


@dataclass(frozen=True)
class Measurement:
    """A project's measured result: passes when ``value`` reaches ``threshold``."""

    name: str
    value: float
    threshold: float
    higher_is_better: bool = True
    detail: str = ""

    @property
    def passed(self) -> bool:
        if self.higher_is_better:
            return self.value >= self.threshold
        return self.value <= self.threshold

    def describe(self) -> str:
        need = "≥" if self.higher_is_better else "≤"
        text = f"{self.name}: {self.value:.4g} (needs {need} {self.threshold:.4g})"
        return f"{text}; {self.detail}" if self.detail else text


class Draw:
    """The random inputs of one test: every generator seeded from the run's seed and the test.

    Use only these generators (never the global ones), so that one seed gives one set of
    inputs, on the grader's side and in ``check()`` alike.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.random = random.Random(seed)
        self._numpy: Any = None
        self._torch: Any = None

    @property
    def numpy(self) -> Any:
        """A ``numpy.random.Generator``."""
        if self._numpy is None:
            import numpy as np

            self._numpy = np.random.default_rng(self.seed)
        return self._numpy

    @property
    def torch(self) -> Any:
        """A ``torch.Generator``."""
        if self._torch is None:
            import torch

            self._torch = torch.Generator().manual_seed(self.seed)
        return self._torch

    def randn(self, *shape: int) -> Any:
        import torch

        return torch.randn(*shape, generator=self.torch)

    def rand(self, *shape: int) -> Any:
        import torch

        return torch.rand(*shape, generator=self.torch)

    def randint(self, low: int, high: int, shape: Sequence[int]) -> Any:
        import torch

        return torch.randint(low, high, tuple(shape), generator=self.torch)

    def integer(self, low: int, high: int) -> int:
        """An int in ``[low, high]`` (both ends included)."""
        return self.random.randint(low, high)

    def uniform(self, low: float, high: float) -> float:
        return self.random.uniform(low, high)

    def choice(self, options: Sequence[Any]) -> Any:
        return self.random.choice(options)

    def sample(self, options: Sequence[Any], k: int) -> list[Any]:
        return self.random.sample(list(options), k)

    def shuffled(self, options: Sequence[Any]) -> list[Any]:
        items = list(options)
        self.random.shuffle(items)
        return items


def seed_of(run_seed: int, key: str) -> int:
    """The seed of one test in one run: a hash of both, so tests draw independently."""
    digest = hashlib.sha256(f"{run_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2  # fits torch's and NumPy's seeds


Comparator = Callable[[Any, Any, Case], None]  # raises AssertionError saying what differs


@dataclass(frozen=True)
class ExerciseTest:
    """One graded test of an exercise: all of ``points`` or none."""

    exercise: Exercise
    name: str
    points: int
    hint: str
    cases: Callable[[Draw], list[Case]]
    answer: tuple[str, ...]  # the names this test calls, in the order a probe receives them
    probe: Callable[..., Any] | None
    expect: Callable[[Case], Any] | None
    compare: Comparator
    measure: Callable[[Any, Case], Measurement] | None
    timeout: float
    memory_mb: int

    @property
    def key(self) -> str:
        return f"{self.exercise.id}/{self.name}"

    @property
    def exercise_id(self) -> str:
        return self.exercise.id

    @property
    def lesson(self) -> str:
        return self.exercise.lesson

    def draw_cases(self, run_seed: int) -> list[Case]:
        cases = self.cases(Draw(seed_of(run_seed, self.key)))
        if not cases or not all(isinstance(c, Case) for c in cases):
            raise TypeError(f"test {self.key} must return a non-empty list of Case objects")
        return cases


@dataclass(frozen=True)
class Variant:
    """A common mistake, computed on the same inputs: ``implementation`` replaces ``answer``'s
    reference (in a probe, or called directly)."""

    mistake: str
    answer: str
    implementation: Callable[..., Any]


class Exercise:
    """One exercise: the names the learner defines, the package's versions, tests, mistakes.

    ``answer``: the name (or names) the learner defines in the notebook, with ``def`` or
    ``class`` (``kind="value"``: any assignment, e.g. a trained tokenizer for a project).
    ``reference``: the package's version of each answer, in the same order. The references and
    ``forbid`` (qualified names such as ``"torch.nn.functional.scaled_dot_product_attention"``
    or whole modules) may not be used anywhere in the notebook, except what ``permit`` lists.
    ``section``: the lesson's heading where the idea is taught (feedback points there).
    """

    def __init__(
        self,
        id: str,
        *,
        answer: str | Sequence[str],
        reference: Callable[..., Any] | Sequence[Callable[..., Any] | None] | None = None,
        forbid: Sequence[str] = (),
        permit: Sequence[str] = (),
        section: str = "",
        kind: str = "function",
        compare: Comparator | None = None,
    ) -> None:
        match = EXERCISE_ID.match(id)
        if not match:
            raise ValueError(
                f"Exercise ids look like '03.rmsnorm' or '10b.ece' (lesson, dot, slug); got {id!r}."
            )
        if kind not in ("function", "class", "value"):
            raise ValueError(f"kind must be 'function', 'class' or 'value', not {kind!r}.")
        self.id = id
        self.lesson = match.group(1)
        self.answers = (answer,) if isinstance(answer, str) else tuple(answer)
        if not self.answers or not all(n.isidentifier() for n in self.answers):
            raise ValueError(f"{id}: answer must name Python identifiers, got {answer!r}.")
        if reference is None or callable(reference):
            references: tuple[Any, ...] = (reference,) * len(self.answers)
            if len(self.answers) > 1 and reference is not None:
                raise ValueError(f"{id}: give one reference per answer {self.answers}.")
        else:
            references = tuple(reference)
        if len(references) != len(self.answers):
            raise ValueError(f"{id}: {len(self.answers)} answers but {len(references)} references.")
        self.references: dict[str, Any] = dict(zip(self.answers, references, strict=True))
        self.forbid = tuple(forbid)
        self.permit = tuple(permit)
        self.section = section
        self.kind = kind
        self.compare = compare
        self.tests: list[ExerciseTest] = []
        self.variants: list[Variant] = []
        _register(self)

    def __repr__(self) -> str:
        return f"<Exercise {self.id}: {len(self.tests)} tests>"

    def test(
        self,
        *,
        points: int,
        hint: str,
        answer: str | Sequence[str] | None = None,
        probe: Callable[..., Any] | None = None,
        expect: Callable[[Case], Any] | None = None,
        compare: Comparator | None = None,
        measure: Callable[[Any, Case], Measurement] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
    ) -> Callable[[Callable[[Draw], list[Case]]], Callable[[Draw], list[Case]]]:
        """Register a test: the decorated function draws its cases from a :class:`Draw`.

        The learner's output is ``probe(*answers, *case.args, **case.kwargs)``, or the answer
        called directly without a probe. The expected output is the same with the references,
        unless ``expect(case)`` computes it. ``compare(got, expected, case)`` raises an
        ``AssertionError`` naming the difference (default: the exercise's comparator, else
        :func:`~llmcourse.grading.compare.close`). A project passes ``measure(got, case)``,
        which returns a :class:`Measurement`, instead of comparing.
        """
        from llmcourse.grading.compare import close

        if points <= 0:
            raise ValueError(f"points must be positive, got {points}.")
        names = (
            self.answers
            if answer is None
            else (answer,)
            if isinstance(answer, str)
            else tuple(answer)
        )
        unknown = [n for n in names if n not in self.answers]
        if unknown:
            raise ValueError(f"{self.id}: {unknown} are not answers of this exercise.")
        if len(names) > 1 and probe is None:
            raise ValueError(f"{self.id}: a test of several answers {names} needs a probe.")
        if expect is None and measure is None:
            missing = [n for n in names if self.references[n] is None]
            if missing:
                raise ValueError(
                    f"{self.id}: no reference for {missing}; pass expect= or measure=."
                )

        def register(cases: Callable[[Draw], list[Case]]) -> Callable[[Draw], list[Case]]:
            test = ExerciseTest(
                exercise=self,
                name=cases.__name__,
                points=points,
                hint=hint,
                cases=cases,
                answer=names,
                probe=probe,
                expect=expect,
                compare=compare or self.compare or close(),
                measure=measure,
                timeout=float(timeout),
                memory_mb=int(memory_mb),
            )
            self.tests[:] = [t for t in self.tests if t.name != test.name]  # re-import replaces
            self.tests.append(test)
            return cases

        return register

    def variant(
        self, mistake: str, *, answer: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a wrong implementation of ``answer`` that makes ``mistake``."""
        name = answer or self.answers[0]
        if name not in self.answers:
            raise ValueError(f"{self.id}: {name!r} is not an answer of this exercise.")

        def register(implementation: Callable[..., Any]) -> Callable[..., Any]:
            self.variants[:] = [v for v in self.variants if v.mistake != mistake]
            self.variants.append(Variant(mistake, name, implementation))
            return implementation

        return register

    @property
    def max_points(self) -> int:
        return sum(test.points for test in self.tests)


# ---- the registry -------------------------------------------------------------------------------

_REGISTRY: dict[str, Exercise] = {}


def _register(exercise: Exercise) -> None:
    _REGISTRY[exercise.id] = exercise  # a re-import replaces the exercise, never doubles it


def exercises_for(lesson: str) -> list[Exercise]:
    """A lesson's exercises, in the order their module declares them."""
    _load_lesson(lesson)
    return [ex for ex in _REGISTRY.values() if ex.lesson == lesson]


def exercise(exercise_id: str) -> Exercise:
    """One exercise by id (``"03.attention"``)."""
    lesson = exercise_id.split(".")[0]
    _load_lesson(lesson)
    if exercise_id not in _REGISTRY:
        known = ", ".join(sorted(k for k in _REGISTRY if k.startswith(lesson + ".")))
        raise ValueError(f"Unknown exercise {exercise_id!r}. Lesson {lesson} has: {known}.")
    return _REGISTRY[exercise_id]


def tests_for(selector: str) -> list[ExerciseTest]:
    """Tests of one exercise (``"03.rmsnorm"``) or of a whole lesson (``"03"``), in file order."""
    if "." in selector:
        return list(exercise(selector).tests)
    return [test for ex in exercises_for(selector) for test in ex.tests]


def find_test(key: str) -> ExerciseTest:
    """A test by its key, ``"03.attention/attention_without_mask"``."""
    exercise_id, _, name = key.partition("/")
    for test in exercise(exercise_id).tests:
        if test.name == name:
            return test
    raise ValueError(f"Unknown test {key!r}.")


def _load_lesson(lesson: str) -> None:
    if not re.fullmatch(LESSON_ID, lesson):
        raise ValueError(
            f"Use an exercise id such as '03.rmsnorm' or a lesson such as '03', not {lesson!r}."
        )
    _load_extra_exercises()
    module = f"llmcourse.grading.exercises.lesson_{lesson}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        if not any(ex.lesson == lesson for ex in _REGISTRY.values()):
            raise ValueError(f"Lesson {lesson} has no graded exercises.") from None


def graded_lessons() -> list[str]:
    """Every lesson with graded exercises (``["01", "02", ...]``): the ``lesson_NN`` modules in
    ``llmcourse.grading.exercises``, plus lessons registered by extra exercise files."""
    from llmcourse.grading import exercises

    found = {
        name.removeprefix("lesson_")
        for _, name, _ in pkgutil.iter_modules(exercises.__path__)
        if re.fullmatch(rf"lesson_{LESSON_ID}", name)
    }
    _load_extra_exercises()
    found.update(ex.lesson for ex in _REGISTRY.values())
    return sorted(found)


_LOADED_FILES: dict[Path, str] = {}


def load_exercise_file(path: str | os.PathLike[str]) -> None:
    """Register the exercises defined in a Python file outside the package (once per file)."""
    resolved = Path(path).resolve()
    if resolved in _LOADED_FILES:
        return
    if resolved.suffix != ".py" or not resolved.is_file():
        raise ValueError(f"Exercise tests must be a .py file; {str(path)!r} is not one.")
    name = f"llmcourse_extra_exercises_{len(_LOADED_FILES)}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    assert spec is not None and spec.loader is not None  # a .py file always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: dataclasses look it up
    spec.loader.exec_module(module)
    _LOADED_FILES[resolved] = name


def _load_extra_exercises() -> None:
    for entry in os.environ.get(EXTRA_EXERCISES_ENV, "").split(os.pathsep):
        if entry:
            load_exercise_file(entry)
