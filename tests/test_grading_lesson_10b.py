"""Follow-up lessons ("10b") in the grader: ids, modules, notebook names, and lesson 10b's tests."""

from __future__ import annotations

import numpy as np
import pytest
from grading_fixtures.judge import grade_answer

from llmcourse.eval import expected_calibration_error, lcs_length
from llmcourse.grading import spec
from llmcourse.grading.grade import LESSON_PREFIX, UsageError, find_notebooks
from llmcourse.grading.spec import EXERCISE_ID, Exercise, graded_lessons
from llmcourse.rag import recall_at_k


def test_lesson_ids_take_an_optional_letter():
    assert EXERCISE_ID.match("10b.ece").group(1) == "10b"
    assert EXERCISE_ID.match("03.rmsnorm").group(1) == "03"
    for bad in ("10bb.ece", "1b.ece", "10B.ece", "10-b.ece"):
        assert not EXERCISE_ID.match(bad)
    with pytest.raises(ValueError, match=r"10b\.ece"):
        Exercise("10bb.x", answer="x")
    assert LESSON_PREFIX.match("10b_evaluation_serving_rag.ipynb").group(1) == "10b"
    assert LESSON_PREFIX.match("10_sota_models_and_jais.ipynb").group(1) == "10"
    with pytest.raises(ValueError):
        spec.tests_for("10c0")


def test_lesson_10b_is_graded_apart_from_lesson_10(tmp_path):
    assert {"10", "10b"} <= set(graded_lessons())
    exercises = {t.exercise_id for t in spec.tests_for("10b")}
    assert exercises == {"10b.ece", "10b.lcs_length", "10b.recall_at_k", "10b.calibration_project"}
    assert not any(t.exercise_id.startswith("10b") for t in spec.tests_for("10"))
    notebook = tmp_path / "10b_mine.ipynb"
    notebook.write_text("{}")
    assert find_notebooks([str(notebook)]) == [(notebook, "10b")]
    with pytest.raises(UsageError, match="two digits"):
        find_notebooks([str(notebook)], lesson="1b")


def run(answers: dict) -> dict[str, bool]:
    return {
        outcome.test: outcome.passed
        for exercise in ("10b.ece", "10b.lcs_length", "10b.recall_at_k")
        for outcome in grade_answer(exercise, answers)
    }


def test_the_package_functions_pass_and_wrong_ones_fail():
    right = {
        "expected_calibration_error": expected_calibration_error,
        "lcs_length": lcs_length,
        "recall_at_k": recall_at_k,
    }
    assert all(run(right).values())

    def ece_without_weights(conf, correct, n_bins):  # the mean gap, not weighted by bin size
        conf, correct = np.asarray(conf, float), np.asarray(correct, float)
        index = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
        gaps = [abs(correct[index == m].mean() - conf[index == m].mean()) for m in set(index)]
        return float(np.mean(gaps))

    wrong = {
        "expected_calibration_error": ece_without_weights,
        "lcs_length": lambda a, b: len(set(a) & set(b)),  # shared items, order ignored
        "recall_at_k": lambda retrieved, relevant, k: len(relevant & set(retrieved[:k])) / k,
    }
    results = run(wrong)
    assert not any(results.values()), results
    named = {
        o.mistake
        for ex in ("10b.ece", "10b.lcs_length", "10b.recall_at_k")
        for o in grade_answer(ex, wrong)
    }
    assert named >= {
        "shared items are counted whatever their order",
        "divided by k instead of the number of relevant ids",
    }
