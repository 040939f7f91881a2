"""Exercise tests of lesson 01 (course overview): next-token distributions, the chain rule and
perplexity, each against ``llmcourse.infer.sampling`` or ``llmcourse.eval``."""

from __future__ import annotations

import math

import torch

from llmcourse.eval import perplexity_from_log_probs, token_log_probs
from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.infer.sampling import process_logits


def _reference_distribution(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(process_logits(logits, temperature=temperature), dim=-1)


# ---- 01.next_token ----------------------------------------------------------------------------


@exercise_test(
    "01.next_token",
    points=1,
    hint="Exponentiate and divide by the sum over the last dimension (dim=-1, keepdim=True), so "
    "each row sums to 1.",
)
def softmax_of_a_batch(ns: Namespace) -> None:
    function = ns.function("next_token_distribution")
    logits = torch.randn(4, 11)
    assert_close(function(logits), _reference_distribution(logits, 1.0), what="temperature 1")


@exercise_test(
    "01.next_token",
    points=1,
    hint="Divide the logits by the temperature before the softmax (not the probabilities after).",
)
def temperature_sharpens_and_flattens(ns: Namespace) -> None:
    function = ns.function("next_token_distribution")
    logits = torch.randn(3, 9) * 2
    for temperature in (0.5, 2.0):
        assert_close(
            function(logits, temperature),
            _reference_distribution(logits, temperature),
            what=f"temperature {temperature}",
        )


@exercise_test(
    "01.next_token",
    points=1,
    hint="exp(1000) overflows to inf and inf/inf is nan: subtract each row's maximum first.",
)
def large_logits_stay_finite(ns: Namespace) -> None:
    function = ns.function("next_token_distribution")
    logits = torch.tensor([[1000.0, 999.0, 990.0], [-1000.0, -1001.0, -1000.5]])
    result = function(logits)
    assert torch.isfinite(result).all(), f"large logits gave non-finite probabilities: {result}"
    assert_close(result, _reference_distribution(logits, 1.0), what="logits around ±1000")


# ---- 01.sequence_log_prob ---------------------------------------------------------------------


@exercise_test(
    "01.sequence_log_prob",
    points=2,
    hint="Row t-1 of the logits predicts token t: pair logits rows 0..T-2 with ids 1..T-1 and "
    "use log_softmax, not softmax.",
)
def matches_the_chain_rule(ns: Namespace) -> None:
    function = ns.function("sequence_log_prob")
    for seq, vocab in ((6, 10), (20, 50)):
        logits, ids = torch.randn(seq, vocab), torch.randint(0, vocab, (seq,))
        expected = token_log_probs(logits, ids).sum()
        assert_close(function(logits, ids), expected, what=f"a sequence of {seq} tokens")


@exercise_test(
    "01.sequence_log_prob",
    points=1,
    hint="A single token has nothing before it to be predicted from: the sum is empty, 0.",
)
def a_single_token_scores_zero(ns: Namespace) -> None:
    value = ns.function("sequence_log_prob")(torch.randn(1, 5), torch.tensor([3]))
    assert_close(value, 0.0, what="one token")


# ---- 01.perplexity ----------------------------------------------------------------------------


@exercise_test(
    "01.perplexity",
    points=1,
    hint="Average the log-probabilities (mean, not sum), negate, exponentiate.",
)
def perplexity_matches_the_package(ns: Namespace) -> None:
    function = ns.function("perplexity")
    log_probs = -torch.rand(30) * 5
    expected = perplexity_from_log_probs(log_probs)
    assert_close(function(log_probs), expected, what="perplexity of 30 tokens", rtol=1e-5)


@exercise_test(
    "01.perplexity",
    points=1,
    hint="A uniform choice among k tokens has log-probability log(1/k) for every token.",
)
def uniform_choice_among_k_tokens(ns: Namespace) -> None:
    function = ns.function("perplexity")
    for k in (2, 50_257):
        value = function(torch.full((8,), math.log(1 / k)))
        assert_close(value, float(k), what=f"uniform over {k} tokens", rtol=1e-5)
