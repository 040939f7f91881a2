"""Lesson 04's project, "assemble a GPT": MiniGPT's own classes pass every test, each common
mistake is named by the test that catches it, and the training score reads only the weights
that come back (untrained, over budget or misnamed weights fail with a reason)."""

from __future__ import annotations

import math

import pytest
import torch
from grading_fixtures.judge import grade_answer

from llmcourse.grading import spec, wire
from llmcourse.grading.evaluate import FAILED
from llmcourse.grading.exercises import lesson_04
from llmcourse.models.minigpt import MLP, Block, CausalSelfAttention, MiniGPT, MiniGPTConfig
from llmcourse.train.presets import shakespeare_chars

REFERENCES = {
    "CausalSelfAttention": CausalSelfAttention,
    "MLP": MLP,
    "Block": Block,
    "GPT": MiniGPT,
}
STRUCTURE = ("04.gpt_attention", "04.gpt_block", "04.gpt_model")


@pytest.mark.parametrize("exercise", STRUCTURE)
def test_minigpts_own_classes_pass(exercise):
    outcomes = grade_answer(exercise, REFERENCES)
    assert outcomes and all(o.passed for o in outcomes), [o.message for o in outcomes]


@pytest.mark.parametrize(
    "exercise, mistake",
    [(ex, v.mistake) for ex in STRUCTURE for v in spec.exercise(ex).variants],
)
def test_each_mistake_is_named(exercise, mistake):
    """Fed a variant as the learner's class, some test of the exercise fails and names it, and
    no test names another mistake (the inputs tell the variants apart). The causality tests
    name no variant: their message says what leaked."""
    variant = next(v for v in spec.exercise(exercise).variants if v.mistake == mistake)
    answers = {**REFERENCES, variant.answer: variant.implementation}
    outcomes = grade_answer(exercise, answers)
    failed = [o for o in outcomes if not o.passed]
    assert failed, f"no test catches: {mistake}"
    assert mistake in {o.mistake for o in failed}, [o.message for o in failed]
    for outcome in failed:
        if outcome.test.endswith("_is_causal"):
            assert "position t sees later positions" in outcome.message
        else:
            assert outcome.mistake == mistake, outcome.message
    assert all(o.status == FAILED for o in failed)


class _Peeking(CausalSelfAttention):
    """Attention without its mask: every position sees the whole sequence."""

    def forward(self, x):
        batch, seq, d = x.shape
        q, k, v = (
            p(x).view(batch, seq, self.n_head, -1).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        return self.o_proj((weights @ v).transpose(1, 2).reshape(batch, seq, d))


def test_causality_is_checked_on_the_learners_own_weights():
    causal = {o.test: o for o in grade_answer("04.gpt_attention", {**REFERENCES})}
    assert causal["attention_is_causal"].passed
    peeking = {
        o.test: o for o in grade_answer("04.gpt_attention", {"CausalSelfAttention": _Peeking})
    }
    assert "position t sees later positions" in peeking["attention_is_causal"].message

    class Constant(torch.nn.Module):  # ignores its input: "causal", but not a model
        def __init__(self, config):
            super().__init__()

        def forward(self, x):
            return torch.zeros_like(x)

    constant = grade_answer("04.gpt_attention", {"CausalSelfAttention": Constant})
    assert (
        "do not depend on the inputs"
        in {o.test: o for o in constant}["attention_is_causal"].message
    )


def test_misnamed_parameters_are_reported_by_name():
    class Renamed(MLP):
        def __init__(self, config):
            super().__init__(config)
            self.fc = self.up_proj
            del self.up_proj

        def forward(self, x):
            return self.down_proj(torch.nn.functional.gelu(self.fc(x), approximate="tanh"))

    (outcome,) = [
        o
        for o in grade_answer("04.gpt_block", {**REFERENCES, "MLP": Renamed})
        if o.test == "mlp_matches_minigpt"
    ]
    assert not outcome.passed
    assert "it has no ['up_proj.bias', 'up_proj.weight']" in outcome.message
    assert "the table does not name ['fc.bias', 'fc.weight']" in outcome.message


def _training_case():
    (test,) = spec.tests_for("04.gpt_training")
    (case,) = test.draw_cases(3)
    return test, case


def test_the_training_score_is_computed_from_the_weights_that_come_back():
    test, case = _training_case()
    (
        config,
        _,
        steps,
        batch,
    ) = case.args
    assert (steps, batch, config["context_length"]) == (600, 16, 64)
    torch.manual_seed(0)
    untrained = MiniGPT(MiniGPTConfig(**config)).state_dict()
    budget = steps * batch * config["context_length"]
    measured = test.measure({"state": untrained, "tokens": budget, "passes": steps}, case)
    assert not measured.passed
    assert abs(measured.value - math.log(config["vocab_size"])) < 0.1  # a uniform guess
    assert measured.threshold == lesson_04.TRAINING_THRESHOLD < 2.517  # the counted bigram
    over = {"state": untrained, "tokens": budget + 64, "passes": steps + 1}
    with pytest.raises(AssertionError, match="the budget is 600 steps"):
        test.measure(over, case)
    with pytest.raises(AssertionError, match="no training forward pass"):
        test.measure({"state": untrained, "tokens": 0, "passes": 0}, case)
    renamed = {k.replace("final_norm", "ln_f"): v for k, v in untrained.items()}
    with pytest.raises(AssertionError, match="could not load the trained weights"):
        test.measure({"state": renamed, "tokens": budget, "passes": steps}, case)


def test_the_held_out_windows_never_leave_the_grader():
    test, case = _training_case()
    starts = case.hidden["starts"]
    assert len(starts) == lesson_04.VALIDATION_WINDOWS
    sent = wire.dumps((case.args, case.kwargs))
    assert str(starts[:3])[1:-1] not in sent and "starts" not in sent
    (other,) = test.draw_cases(4)
    assert other.hidden["starts"] != starts  # each run scores other windows


def test_each_run_renames_the_characters():
    """Weights trained in one run are worth nothing in the next: the ids are permuted per run,
    the same way for the training ids the kernel gets and the windows the grader scores."""
    test, case = _training_case()
    (other,) = test.draw_cases(4)
    seeds = case.hidden["seed"], other.hidden["seed"]
    assert case.args[1].args == (seeds[0],) and seeds[0] != seeds[1]
    first, second = (lesson_04.shakespeare_train_ids(s)[:5000] for s in seeds)
    corpus = shakespeare_chars()
    plain = torch.from_numpy(corpus.train_ids[:5000])
    for renamed in (first, second):  # a bijection of the ids: the text is the same text
        pairs = set(zip(plain.tolist(), renamed.tolist(), strict=True))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    assert not torch.equal(first, second)


def test_the_probe_counts_training_tokens_through_the_models_forward():
    config = {"vocab_size": 13, "context_length": 8, "d_model": 16, "n_layer": 1, "n_head": 2}
    ids = torch.randint(0, 13, (500,))

    def three_steps(model, train_ids, steps, batch_size, context_length):
        with torch.no_grad():
            model(train_ids[:context_length].unsqueeze(0))  # evaluation passes do not count
        for _ in range(3):
            x = train_ids[: context_length * batch_size].view(batch_size, context_length)
            model(x, x)[1].backward()

    report = lesson_04._train(MiniGPT, three_steps, config, ids, 3, 4)
    assert (report["tokens"], report["passes"]) == (3 * 4 * 8, 3)
    assert set(report["state"]) >= {"embed_tokens.weight", "lm_head.weight"}
