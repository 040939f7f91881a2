"""Exercise tests of lesson 99, a lesson that exists only for the grader's own tests.

Loaded through ``LLMCOURSE_EXTRA_EXERCISES`` / ``llmcourse grade --exercises``, never from the
package. Written exactly as a course lesson's tests are: the learner's function against a
reference (NumPy here) on random and edge-case inputs. Time limits are short so that the
robustness tests (a learner function that loops forever) finish quickly.
"""

import numpy as np

from llmcourse.grading.api import Namespace, assert_close, exercise_test


@exercise_test("99.mean_square", points=2, hint="Square every value, then average.", timeout=3.0)
def mean_square_matches_numpy_on_random_values(ns: Namespace) -> None:
    mean_square = ns.function("mean_square")
    for size in (1, 7, 100):
        values = np.random.randn(size)
        expected = np.mean(values**2)
        assert_close(mean_square(values), expected, what=f"mean_square of {size} values")


@exercise_test(
    "99.mean_square",
    points=1,
    hint="A list of plain Python numbers should work too.",
    timeout=3.0,
)
def mean_square_accepts_a_list(ns: Namespace) -> None:
    mean_square = ns.function("mean_square")
    assert_close(mean_square([3.0, -4.0]), 12.5, what="mean_square([3.0, -4.0])")


@exercise_test(
    "99.normalize", points=2, hint="Divide the vector by its Euclidean length.", timeout=3.0
)
def normalize_gives_unit_length(ns: Namespace) -> None:
    normalize = ns.function("normalize")
    vector = np.random.randn(5)
    assert_close(normalize(vector), vector / np.linalg.norm(vector), what="normalize(vector)")


@exercise_test(
    "99.normalize",
    points=1,
    hint="The zero vector has no direction: return it unchanged instead of dividing by 0.",
    timeout=3.0,
)
def normalize_leaves_the_zero_vector_alone(ns: Namespace) -> None:
    normalize = ns.function("normalize")
    assert_close(normalize(np.zeros(3)), np.zeros(3), what="normalize(zeros(3))")
