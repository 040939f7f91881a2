"""n-gram language models: hand-computed add-k and Kneser-Ney values, normalisation, perplexity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmcourse import pretrained
from llmcourse.ngram import EOS, UNK, NGramLM, tokenize_lines

TOY = [["a", "b"], ["a", "c"], ["b", "c"]]


def test_tokenize_lines():
    assert tokenize_lines("Good morrow, Kate!\n\n  O'er the hills, I'll go.\n") == [
        ["good", "morrow", "kate"],
        ["o'er", "the", "hills", "i'll", "go"],
    ]


def test_vocabulary_counts_and_add_one_by_hand():
    lm = NGramLM(order=2, smoothing="add-k", k=1.0).fit(TOY)
    assert lm.vocab == ["a", "b", "c", EOS, UNK]
    assert lm.ngram_counts(2)[("<s>", "a")] == 2
    assert lm.prob("b", ["a"]) == pytest.approx((1 + 1) / (2 + 5))
    assert lm.prob("a", []) == pytest.approx((2 + 1) / (3 + 5))  # after <s>
    assert lm.prob("zebra", ["a"]) == lm.prob(UNK, ["a"]) == pytest.approx(1 / 7)
    expected = (3 / 8 * 2 / 7 * 2 / 7) ** (-1 / 3)  # P(a|<s>) P(b|a) P(</s>|b)
    assert lm.perplexity([["a", "b"]]) == pytest.approx(expected)


def test_kneser_ney_by_hand():
    """Bigram KN, D = 0.5. Continuation counts: a 1, b 2, c 2, </s> 2 (7 in all, 4 types)."""
    lm = NGramLM(order=2, smoothing="kneser-ney", discount=0.5).fit(TOY)
    unigram_c = (2 - 0.5) / 7 + (0.5 * 4 / 7) * (1 / 5)
    # After <s>: seen 3 times, 2 distinct followers, never c, so only the back-off share is left.
    assert lm.prob("c", []) == pytest.approx((0.5 * 2 / 3) * unigram_c)
    assert lm.prob("c", ["a"]) == pytest.approx((1 - 0.5) / 2 + (0.5 * 2 / 2) * unigram_c)
    assert lm.prob(UNK, ["a"]) == pytest.approx((0.5 * 2 / 2) * (0.5 * 4 / 7) / 5)
    assert lm.prob("c", ["never", "seen"]) == pytest.approx(lm.prob("c", [UNK]))
    assert lm.prob("c", [UNK]) == pytest.approx(unigram_c)  # unseen context: all backoff


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("smoothing", ["add-k", "kneser-ney"])
def test_every_distribution_sums_to_one(order, smoothing):
    sentences = tokenize_lines(pretrained.shakespeare()[:40_000])
    lm = NGramLM(order=order, smoothing=smoothing, k=0.1).fit(sentences)
    for context in ([], ["to"], ["to", "be"], ["the", "king"], ["zzz", "qqq"], ["of", "zzz"]):
        assert lm.distribution(context).sum() == pytest.approx(1.0, abs=1e-9), context


def test_huge_k_makes_every_word_equally_likely():
    lm = NGramLM(order=2, smoothing="add-k", k=1e12).fit(TOY)
    assert lm.perplexity(TOY) == pytest.approx(len(lm.vocab), rel=1e-6)


@pytest.mark.slow
def test_kneser_ney_beats_add_one_on_held_out_shakespeare():
    """Add-one gives so much mass to unseen pairs that a trigram is worse than a bigram;
    Kneser-Ney's discounting and back-off keep higher orders useful (Chen & Goodman 1998)."""
    train = tokenize_lines(pretrained.shakespeare("train"))[:15_000]
    held_out = tokenize_lines(pretrained.shakespeare("val"))[:1_500]
    add_one_bigram = NGramLM(2, "add-k", k=1.0).fit(train).perplexity(held_out)
    add_one_trigram = NGramLM(3, "add-k", k=1.0).fit(train).perplexity(held_out)
    kn_bigram = NGramLM(2, "kneser-ney").fit(train).perplexity(held_out)
    kn_trigram = NGramLM(3, "kneser-ney").fit(train).perplexity(held_out)
    assert kn_bigram < 0.5 * add_one_bigram
    assert add_one_trigram > add_one_bigram
    assert kn_trigram < 1.1 * kn_bigram
    assert math.isfinite(kn_trigram)


def test_generate_is_reproducible_and_uses_the_vocabulary():
    lm = NGramLM(2).fit(tokenize_lines(pretrained.shakespeare()[:40_000]))
    first = lm.generate(12, seed=3, context=["the"])
    assert first == lm.generate(12, seed=3, context=["the"])
    assert 0 < len(first) <= 12 and set(first) <= set(lm.vocab) - {EOS}
    assert np.isclose(lm.distribution(["the"]).sum(), 1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="positive int"):
        NGramLM(order=0)
    with pytest.raises(ValueError, match="'add-k' or 'kneser-ney'"):
        NGramLM(smoothing="witten-bell")
    with pytest.raises(ValueError, match="k > 0"):
        NGramLM(smoothing="add-k", k=0)
    with pytest.raises(ValueError, match=r"discount must lie in \(0, 1\)"):
        NGramLM(discount=1.5)
    with pytest.raises(ValueError, match="not fitted"):
        NGramLM().prob("a")
    with pytest.raises(ValueError, match="list of str words"):
        NGramLM().fit(["a sentence as one string"])
    with pytest.raises(ValueError, match="between 1 and the model order"):
        NGramLM(2).fit(TOY).ngram_counts(3)
