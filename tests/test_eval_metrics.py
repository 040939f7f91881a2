"""BLEU, ROUGE-L, accuracy/F1 against their reference implementations; calibration; latency."""

from __future__ import annotations

import functools
import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.eval import (
    accuracy,
    bleu,
    corpus_rouge_l,
    expected_calibration_error,
    f1_score,
    lcs_length,
    percentile,
    precision_recall_f1,
    reliability_diagram,
    rouge_l,
    summarize_latencies,
    time_stream,
)

SENTENCES = [
    "The cat sat on the mat.",
    "There is a cat on the mat!",
    "To be, or not to be: that is the question.",
    "Whether 'tis nobler in the mind to suffer 3.5 slings and arrows",
    "O Romeo, Romeo! wherefore art thou Romeo?",
    "A rose by any other name would smell as sweet -- 2-3 times, at least.",
    "",
    "Now is the winter of our discontent made glorious summer by this sun of York;",
]
words = st.sampled_from(
    [
        "the",
        "a",
        "cat",
        "dog",
        "sat",
        "on",
        "mat",
        ",",
        ".",
        "!",
        "?",
        "to",
        "be",
        "or",
        "not",
        "3.14",
        "x-ray",
        "don't",
    ]
)
sentence = st.lists(words, max_size=20).map(" ".join)


# ------------------------------------------------------------------------------------- BLEU


def test_bleu_matches_sacrebleu_on_real_sentences():
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = random.Random(0)
    hyps = [s for s in SENTENCES if s]
    refs = [[rng.choice(SENTENCES[:5]) for _ in hyps], list(reversed(hyps))]
    ours, theirs = bleu(hyps, refs), sacrebleu.corpus_bleu(hyps, refs)
    assert ours.score == pytest.approx(theirs.score, abs=1e-9)
    assert ours.brevity_penalty == pytest.approx(theirs.bp)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(sentence, sentence, sentence), min_size=1, max_size=6))
def test_bleu_matches_sacrebleu_on_random_corpora(triples):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = [h for h, _, _ in triples]
    refs = [[r for _, r, _ in triples], [r for _, _, r in triples]]
    assert bleu(hyps, refs).score == pytest.approx(
        sacrebleu.corpus_bleu(hyps, refs).score, abs=1e-6
    )


# ---------------------------------------------------------------------------------- ROUGE-L


@functools.cache
def rouge_scorer():
    module = pytest.importorskip("rouge_score.rouge_scorer")
    return module.RougeScorer(["rougeL"])


@settings(max_examples=50, deadline=None)
@given(sentence, sentence)
def test_rouge_l_matches_rouge_score(hypothesis, reference):
    theirs = rouge_scorer().score(reference, hypothesis)["rougeL"]
    ours = rouge_l(hypothesis, reference)
    assert (ours.precision, ours.recall, ours.fmeasure) == pytest.approx(
        (theirs.precision, theirs.recall, theirs.fmeasure)
    )


def test_rouge_l_on_real_sentences_and_a_worked_example():
    scorer = rouge_scorer()
    for hyp in SENTENCES:
        for ref in SENTENCES:
            assert rouge_l(hyp, ref).fmeasure == pytest.approx(
                scorer.score(ref, hyp)["rougeL"].fmeasure
            )
    # "police killed the gunman" vs "the gunman killed police" (Lin 2004, §3.1): LCS = 2 of 4.
    assert rouge_l("the gunman killed police", "police killed the gunman").fmeasure == 0.5
    mean = corpus_rouge_l(SENTENCES[:2], SENTENCES[1:3])
    assert mean.fmeasure == pytest.approx(
        (
            rouge_l(SENTENCES[0], SENTENCES[1]).fmeasure
            + rouge_l(SENTENCES[1], SENTENCES[2]).fmeasure
        )
        / 2
    )


@given(st.lists(st.integers(0, 4), max_size=12), st.lists(st.integers(0, 4), max_size=12))
def test_lcs_length_is_symmetric_and_bounded(a, b):
    n = lcs_length(a, b)
    assert n == lcs_length(b, a) <= min(len(a), len(b))
    assert lcs_length(a, a) == len(a)


def test_rouge_and_bleu_reject_wrong_shapes():
    with pytest.raises(TypeError):
        rouge_l(["a list"], "text")
    with pytest.raises(ValueError, match="as many references"):
        corpus_rouge_l(["a"], ["b", "c"])
    with pytest.raises(TypeError, match="reference streams"):
        bleu(["the cat"], ["the cat"])


# ----------------------------------------------------------------------- accuracy and F1


@pytest.mark.parametrize("average", ["macro", "micro", "binary"])
def test_precision_recall_f1_match_scikit_learn(average):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for classes in (2, 3, 5):
        if average == "binary" and classes != 2:
            continue
        y_true = rng.integers(0, classes, 40).tolist()
        y_pred = rng.integers(0, classes, 40).tolist()
        ours = precision_recall_f1(y_pred, y_true, average=average)
        theirs = metrics.precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )[:3]
        assert ours == pytest.approx(theirs)
        assert accuracy(y_pred, y_true) == pytest.approx(metrics.accuracy_score(y_true, y_pred))


def test_f1_edge_cases():
    assert f1_score([0, 0], [0, 0], average="binary") == 0.0  # no positives anywhere
    assert f1_score(["a", "b"], ["a", "b"]) == 1.0
    with pytest.raises(ValueError, match="one prediction per example"):
        accuracy([1], [1, 0])
    with pytest.raises(ValueError, match="average"):
        f1_score([1], [1], average="weighted")


# ---------------------------------------------------------------------------- calibration


def reference_ece(conf, correct, n_bins):
    """Guo et al. (2017)'s loop, written independently of ours: bins (lo, hi]."""
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if lo == 0:
            inside |= conf == 0
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


def test_ece_matches_the_binned_definition_and_known_cases():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 500)
    correct = rng.uniform(0, 1, 500) < conf**2  # over-confident
    for bins in (1, 10, 15):
        assert expected_calibration_error(conf, correct, bins) == pytest.approx(
            reference_ece(conf, correct, bins)
        )
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert expected_calibration_error([0.9] * 10, [True] * 6 + [False] * 4) == pytest.approx(0.3)
    # Perfectly calibrated in expectation: the ECE shrinks as samples grow.
    big = rng.uniform(0, 1, 200_000)
    assert expected_calibration_error(big, rng.uniform(0, 1, big.size) < big) < 0.01


def test_reliability_diagram_bins_and_plot():
    diagram = reliability_diagram([0.05, 0.15, 0.95, 1.0, 0.0], [0, 1, 1, 1, 0], n_bins=10)
    assert diagram.count.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert diagram.accuracy[9] == 1.0 and math.isnan(diagram.accuracy[5])
    ax = diagram.plot()
    assert "ECE" in ax.get_title() and ax.get_xlabel().startswith("confidence")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_diagram([1.5], [True])
    with pytest.raises(ValueError, match="equally long"):
        reliability_diagram([0.5, 0.5], [True])


# -------------------------------------------------------------------------------- latency


@given(st.lists(st.floats(0, 100), min_size=1, max_size=30), st.floats(0, 100))
def test_percentile_matches_numpy(values, q):
    assert percentile(values, q) == pytest.approx(np.percentile(values, q), abs=1e-9)


def test_latency_summary_and_stream_timing():
    summary = summarize_latencies([1, 2, 3, 4, 100])
    assert (summary.p50, summary.max, summary.count) == (3, 100, 5)
    assert summary.p95 == pytest.approx(np.percentile([1, 2, 3, 4, 100], 95))
    timing, items = time_stream(iter("abcd"))
    assert items == list("abcd") and timing.n_tokens == 4
    assert 0 <= timing.time_to_first_token <= timing.total
    with pytest.raises(ValueError):
        percentile([], 50)
