"""Lesson 08's project, LoRA-tune the tiny GPT: the score comes from the updates that come back,
added to the grader's own pretrained model; full-rank, misnamed, zero or over-budget updates
fail with a reason, and the held-out examples never leave the grader."""

from __future__ import annotations

import pytest
import torch

from llmcourse.grading import spec, wire
from llmcourse.grading.exercises import lesson_08
from llmcourse.train.tiny_gpt import pretrained_tiny_gpt


def _case():
    (test,) = spec.tests_for("08.lora_project")
    (case,) = test.draw_cases(5)
    return test, case


def _low_rank(shape, rank, scale=0.01, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(shape[0], rank, generator=generator)
        @ torch.randn(rank, shape[1], generator=generator)
        * scale
    )


def _report(updates, tokens=100 * 16 * 40):
    return {"updates": updates, "tokens": tokens, "passes": 100}


def test_bad_updates_fail_with_a_reason():
    test, case = _case()
    shape = tuple(pretrained_tiny_gpt().model.blocks[0].attn.q_proj.weight.shape)
    name = "blocks.0.attn.q_proj.weight"
    reasons = {
        "has rank": {name: torch.randn(shape) * 0.01},
        "is not the weight of a linear layer": {"blocks.0.attn.q_proj.lora_A": torch.zeros(8, 8)},
        "should have shape": {name: torch.zeros(3, 3)},
        "every update is zero": {name: torch.zeros(shape)},
        "returned no updates": {},
        "NaN or infinite": {name: torch.full(shape, float("nan"))},
    }
    for reason, updates in reasons.items():
        with pytest.raises(AssertionError, match=reason):
            test.measure(_report(updates), case)
    context = pretrained_tiny_gpt().model.config.context_length
    over = _report({name: _low_rank(shape, 4)}, tokens=100 * 16 * context + 1)
    with pytest.raises(AssertionError, match="the budget is 100 steps"):
        test.measure(over, case)
    with pytest.raises(AssertionError, match="no training forward pass"):
        test.measure(_report({name: _low_rank(shape, 4)}, tokens=0), case)
    with pytest.raises(AssertionError, match="should return a dict"):
        test.measure({"updates": [1, 2], "tokens": 5}, case)


def test_a_small_random_update_scores_about_the_pretrained_models_accuracy():
    """No constant answer passes: a low-rank update that learned nothing stays near chance."""
    test, case = _case()
    shape = tuple(pretrained_tiny_gpt().model.blocks[0].attn.q_proj.weight.shape)
    measured = test.measure(_report({"blocks.0.attn.q_proj.weight": _low_rank(shape, 4)}), case)
    assert not measured.passed
    assert measured.value < 0.6 and "the pretrained model scores" in measured.detail
    assert measured.threshold == lesson_08.PROJECT_THRESHOLD


def test_the_held_out_examples_never_leave_the_grader():
    test, case = _case()
    sent = wire.dumps((case.args, case.kwargs))
    assert str(case.hidden) not in sent
    (other,) = test.draw_cases(6)
    assert other.hidden != case.hidden and other.args != case.args


def test_the_probe_counts_training_tokens_and_passes_the_updates_back():
    def two_steps(model, tokenizer, examples, steps, batch_size):
        assert steps == 2 and examples and examples[0].instruction == "Folio or modern?"
        ids = torch.randint(0, tokenizer.vocab_size, (batch_size, 10))
        with torch.no_grad():
            model(ids)  # evaluation passes do not count
        for _ in range(steps):
            model(ids).logits.sum().backward()
        weight = model.blocks[0].attn.q_proj.weight
        return {"blocks.0.attn.q_proj.weight": torch.zeros_like(weight)}

    report = lesson_08._finetune(two_steps, 2, 3, 2, 0)
    assert (report["tokens"], report["passes"]) == (2 * 3 * 10, 2)
    assert list(report["updates"]) == ["blocks.0.attn.q_proj.weight"]
