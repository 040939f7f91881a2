"""Exercises of lesson 99, a lesson that exists only for the grader's own tests.

Loaded through ``LLMCOURSE_EXTRA_EXERCISES`` / ``llmcourse grade --exercises``, never from the
package, and written exactly as a course lesson's exercises are: six answers of every kind the
grader drives (functions, a class driven by a probe, a project scored on hidden data), with
NumPy only, so that kernels start fast. Time limits are short so that the robustness tests (an
answer that loops forever) finish quickly.
"""

from __future__ import annotations

import numpy as np

from llmcourse.grading.compare import close, exact
from llmcourse.grading.spec import Case, Draw, Exercise, Measurement

TIMEOUT = 3.0


def _reference_mean_square(values):
    return float(np.mean(np.asarray(values, dtype=float) ** 2))


def _reference_normalize(vector):
    vector = np.asarray(vector, dtype=float)
    length = np.linalg.norm(vector)
    return vector if length == 0 else vector / length


def _reference_clip(values, low, high):
    return [min(max(v, low), high) for v in values]


def _reference_word_count(text):
    counts: dict[str, int] = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


class _ReferenceRunningMean:
    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, value):
        self.total += value
        self.count += 1

    @property
    def value(self):
        return self.total / self.count if self.count else 0.0


# ---- 99.mean_square --------------------------------------------------------------------------

mean_square = Exercise(
    "99.mean_square", answer="mean_square", reference=_reference_mean_square, section="Squares"
)


@mean_square.variant("the mean of absolute values instead of squares")
def _mean_of_absolutes(values):
    return float(np.mean(np.abs(np.asarray(values, dtype=float))))


@mean_square.test(points=2, hint="Square every value, then average.", timeout=TIMEOUT)
def mean_square_matches_numpy_on_random_values(draw: Draw) -> list[Case]:
    return [
        Case((draw.numpy.normal(size=size),), label=f"{size} random values") for size in (1, 7, 100)
    ]


@mean_square.test(points=1, hint="A list of plain Python numbers should work too.", timeout=TIMEOUT)
def mean_square_accepts_a_list(draw: Draw) -> list[Case]:
    values = [draw.integer(-9, 9) for _ in range(draw.integer(2, 6))]
    return [Case((values,), label=f"the list {values}")]


# ---- 99.normalize ----------------------------------------------------------------------------

normalize = Exercise("99.normalize", answer="normalize", reference=_reference_normalize)


@normalize.test(points=2, hint="Divide the vector by its Euclidean length.", timeout=TIMEOUT)
def normalize_gives_unit_length(draw: Draw) -> list[Case]:
    return [Case((draw.numpy.normal(size=5),), label="a random 5-d vector")]


@normalize.test(
    points=1,
    hint="The zero vector has no direction: return it unchanged instead of dividing by 0.",
    timeout=TIMEOUT,
)
def normalize_leaves_the_zero_vector_alone(draw: Draw) -> list[Case]:
    size = draw.integer(2, 6)
    return [
        Case((np.zeros(size),), label=f"zeros({size})"),
        Case((draw.numpy.normal(size=size),), label=f"a random {size}-d vector"),
    ]


# ---- 99.clip ---------------------------------------------------------------------------------

clip = Exercise("99.clip", answer="clip", reference=_reference_clip, compare=close())


@clip.test(points=1, hint="Each value becomes min(max(value, low), high).", timeout=TIMEOUT)
def clip_matches_on_random_values(draw: Draw) -> list[Case]:
    values = [round(draw.uniform(-5, 5), 3) for _ in range(draw.integer(3, 9))]
    return [Case((values, -1.0, 2.0), label=f"clip({values}, -1.0, 2.0)")]


# ---- 99.word_count ---------------------------------------------------------------------------

word_count = Exercise(
    "99.word_count", answer="word_count", reference=_reference_word_count, compare=exact()
)


@word_count.test(points=1, hint="Split on whitespace and count each word.", timeout=TIMEOUT)
def word_count_matches(draw: Draw) -> list[Case]:
    words = [draw.choice(["to", "be", "or", "not", "that"]) for _ in range(draw.integer(3, 12))]
    return [Case((" ".join(words),), label=f"{' '.join(words)!r}")]


# ---- 99.running_mean (a class, driven by a probe) --------------------------------------------


def _drive_running_mean(cls, values):
    """Add the values one by one; what ``value`` says after each."""
    running = cls()
    seen = []
    for value in values:
        running.add(value)
        seen.append(float(running.value))
    return {"fresh": float(cls().value), "after_each": seen}


running_mean = Exercise(
    "99.running_mean",
    answer="RunningMean",
    reference=_ReferenceRunningMean,
    kind="class",
)


@running_mean.test(
    points=2,
    hint="Keep a total and a count; the value is their ratio (0.0 before any add).",
    probe=_drive_running_mean,
    timeout=TIMEOUT,
)
def running_mean_follows_its_inputs(draw: Draw) -> list[Case]:
    values = [round(draw.uniform(-3, 3), 2) for _ in range(draw.integer(2, 6))]
    return [Case((values,), label=f"adding {values}")]


# ---- 99.threshold (a project scored on data that stays in the grader) ------------------------


def _labelled_points(
    draw: Draw, count: int, centres: tuple[float, float]
) -> tuple[list[float], list[int]]:
    labels = [draw.integer(0, 1) for _ in range(count)]
    return [float(draw.numpy.normal(centres[y], 0.5)) for y in labels], labels


def _accuracy_on_hidden_data(threshold, case: Case) -> Measurement:
    xs, ys = case.hidden
    if not isinstance(threshold, (int, float)):
        raise AssertionError(f"fit_threshold should return a number, got {threshold!r}.")
    right = sum(int(x > threshold) == y for x, y in zip(xs, ys, strict=True))
    return Measurement("accuracy on held-out points", right / len(xs), 0.9)


threshold = Exercise("99.threshold", answer="fit_threshold")


@threshold.test(
    points=2,
    hint="Put the threshold halfway between the two classes' means.",
    measure=_accuracy_on_hidden_data,
    timeout=TIMEOUT,
)
def threshold_separates_held_out_points(draw: Draw) -> list[Case]:
    low = draw.uniform(-1000, 1000)  # where the classes lie changes every run: no constant works
    centres = (low, low + draw.uniform(2.0, 3.0))
    train = _labelled_points(draw, 200, centres)
    held_out = _labelled_points(draw, 400, centres)  # only in the grader's process: never sent
    return [Case(train, label="200 labelled training points", hidden=held_out)]
