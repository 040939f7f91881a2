"""Lesson 10b's project: the solution's temperature calibrates held-out positions of both an
over- and an under-confident tiny GPT with margin on three seeds, and the shortcuts do not."""

from __future__ import annotations

import math

import pytest
import torch
from grading_fixtures.judge import grade_answer
from test_grading_projects import SEEDS, solution_answers

from llmcourse.grading.evaluate import FAILED, NOT_ATTEMPTED
from llmcourse.grading.exercises import lesson_10b

PROJECT = "10b.calibration_project"


def outcomes(answer, seed: int = 1):
    return grade_answer(PROJECT, {"fit_temperature": answer}, seed=seed)


@pytest.fixture(scope="module")
def fit_temperature():
    answers = solution_answers(
        "10b_evaluation_serving_rag.ipynb",
        "expected_calibration_error",
        "fit_temperature",
    )
    return answers["fit_temperature"]


@pytest.mark.slow
def test_the_solution_calibrates_both_cases_with_margin(fit_temperature):
    for seed in SEEDS:
        (outcome,) = outcomes(fit_temperature, seed)
        assert outcome.passed, outcome.message
        assert outcome.measured["value"] < lesson_10b.MAX_ECE - 0.01, outcome.measured


def test_a_constant_temperature_cannot_pass_both_cases():
    for constant in (0.35, 1.0, 3.0):
        (outcome,) = outcomes(lambda logits, targets, t=constant: t)
        assert outcome.status == FAILED, constant


def test_the_inverse_temperature_is_diagnosed(fit_temperature):
    (outcome,) = outcomes(lambda logits, targets: 1 / fit_temperature(logits, targets))
    assert outcome.status == FAILED
    assert "1/T would pass" in outcome.message


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (lambda logits, targets: -1.0, "above 0"),
        (lambda logits, targets: math.nan, "above 0"),
        (lambda logits, targets: "warm", "one number"),
        (lambda logits, targets: torch.ones(2), "one number"),
    ],
)
def test_a_temperature_that_is_not_a_positive_number_fails_with_a_reason(answer, says):
    (outcome,) = outcomes(answer)
    assert outcome.status == FAILED and says in outcome.message, outcome.message


def test_a_blank_answer_is_not_attempted():
    def stub(logits, targets):
        raise NotImplementedError

    (outcome,) = outcomes(stub)
    assert outcome.status == NOT_ATTEMPTED


def test_the_held_out_positions_are_not_the_ones_sent():
    cases = lesson_10b.temperature_calibrates_held_out_positions(lesson_10b.Draw(5))
    kinds = set()
    for case in cases:
        logits_recipe, targets_recipe = case.args
        held_out, sharpness = case.hidden
        seed = logits_recipe.args[0]
        assert held_out != seed and logits_recipe.args[1] == sharpness
        sent = logits_recipe.build()
        assert sent.shape == (4096, 84) and targets_recipe.build().shape == (4096,)
        assert not torch.equal(sent, lesson_10b.calibration_logits(held_out, sharpness))
        kinds.add(sharpness > 1)
    assert kinds == {True, False}  # one over-confident case, one under-confident
