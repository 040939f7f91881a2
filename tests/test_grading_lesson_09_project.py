"""Lesson 09's project, DPO on the tiny GPT: the score is the implicit reward's preference
accuracy of the weights that come back, on pairs the grader samples itself; unchanged, broken,
renamed or over-budget weights fail with a reason."""

from __future__ import annotations

import pytest
import torch

from llmcourse.grading import spec, wire
from llmcourse.grading.exercises import lesson_09
from llmcourse.train.tiny_gpt import pretrained_tiny_gpt


def _case():
    (test,) = spec.tests_for("09.dpo_project")
    (case,) = test.draw_cases(5)
    return test, case


def _report(state, tokens=30 * 32 * 96):
    return {"state": state, "tokens": tokens, "passes": 60, "pairs": 200}


def test_bad_weights_fail_with_a_reason():
    test, case = _case()
    state = pretrained_tiny_gpt().model.state_dict()
    with pytest.raises(AssertionError, match="did not change"):
        test.measure(_report(state), case)
    with pytest.raises(AssertionError, match="the budget is 30 steps"):
        test.measure(_report(state, tokens=30 * 32 * 96 + 1), case)
    with pytest.raises(AssertionError, match="no training forward pass"):
        test.measure(_report(state, tokens=0), case)
    renamed = {f"lm.{name}": t for name, t in state.items()}
    with pytest.raises(AssertionError, match="parameter names changed"):
        test.measure(_report(renamed), case)
    nan = torch.full_like(state["embed_tokens.weight"], float("nan"))
    broken = {**state, "embed_tokens.weight": nan}
    with pytest.raises(AssertionError, match="NaN or infinite"):
        test.measure(_report(broken), case)
    with pytest.raises(AssertionError, match="train the policy it is given"):
        test.measure({"state": None}, case)


def test_weights_that_learned_nothing_score_about_chance():
    """No constant answer passes: a small random change to the weights orders pairs at random,
    and the reference itself (all margins 0) scores 0."""
    test, case = _case()
    generator = torch.Generator().manual_seed(0)
    state = {
        name: t + 1e-3 * torch.randn(t.shape, generator=generator) if t.is_floating_point() else t
        for name, t in pretrained_tiny_gpt().model.state_dict().items()
    }
    measured = test.measure(_report(state), case)
    assert not measured.passed and 0.3 < measured.value < 0.65, measured
    assert measured.threshold == lesson_09.DPO_THRESHOLD
    pairs = lesson_09.lipogram_pairs(
        pretrained_tiny_gpt().model, pretrained_tiny_gpt().tokenizer, "val", 32, 0
    )
    assert lesson_09.preference_accuracy(pretrained_tiny_gpt().model.state_dict(), pairs) == 0.0


def test_the_held_out_pairs_never_leave_the_grader():
    test, case = _case()
    sent = wire.dumps((case.args, case.kwargs))
    assert str(case.hidden) not in sent
    (other,) = test.draw_cases(6)
    assert other.hidden != case.hidden and other.args != case.args


def test_the_probe_counts_the_policys_training_tokens_only():
    seen = {}

    def two_steps(policy, reference, tokenizer, pairs, steps, batch_size, beta):
        seen.update(
            pairs=len(pairs),
            beta=beta,
            frozen=not any(p.requires_grad for p in reference.parameters()),
        )
        ids = torch.randint(0, tokenizer.vocab_size, (batch_size, 48))
        with torch.no_grad():
            policy(ids)  # evaluation passes do not count
        reference(ids)  # nor do the reference's
        for _ in range(steps):
            policy(ids).logits.sum().backward()

    report = lesson_09._dpo_run(two_steps, 24, 0, 2, 3, 0.3)
    assert (report["tokens"], report["passes"]) == (2 * 3 * 48, 2)
    assert seen["beta"] == 0.3 and seen["frozen"] and 0 < seen["pairs"] <= 24
    assert set(report["state"]) == set(pretrained_tiny_gpt().model.state_dict())
