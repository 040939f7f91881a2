"""Bias probes: statistics, SEAT, LM likelihood probes, fairness metrics, debiasing, safety."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from llmcourse.embeddings import WordVectors
from llmcourse.ethics import (
    SafetyFilter,
    bleach,
    bootstrap_ci,
    cluster_recoverability,
    cohens_d,
    continuation_logprobs,
    demographic_parity_difference,
    direct_bias,
    equalized_odds_difference,
    gender_direction,
    group_rates,
    hard_debias,
    paired_sentences,
    permutation_test,
    pronoun_probe,
    seat,
    stereoset_metrics,
    weat,
)
from llmcourse.ethics.safety import REFUSAL

# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def test_bootstrap_interval_matches_scipy():
    from scipy.stats import bootstrap

    values = np.random.default_rng(0).normal(1.0, 2.0, size=40)
    ours = bootstrap_ci(values, n_resamples=20_000)
    theirs = bootstrap(
        (values,), np.mean, n_resamples=20_000, method="percentile", rng=np.random.default_rng(1)
    ).confidence_interval
    assert ours.value == pytest.approx(values.mean())
    assert ours.low == pytest.approx(theirs.low, abs=0.05)
    assert ours.high == pytest.approx(theirs.high, abs=0.05)


def test_permutation_test_matches_scipy():
    from scipy.stats import permutation_test as scipy_permutation_test

    rng = np.random.default_rng(2)
    a, b = rng.normal(0.0, 1.0, 12), rng.normal(0.8, 1.0, 12)
    ours = permutation_test(a, b, n_permutations=20_000)
    theirs = scipy_permutation_test(
        (a, b),
        lambda x, y: np.mean(x) - np.mean(y),
        n_resamples=20_000,
        rng=np.random.default_rng(3),
    ).pvalue
    assert ours == pytest.approx(theirs, abs=0.01)


def test_cohens_d_and_bad_input():
    assert cohens_d([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="non-empty"):
        permutation_test([], [1.0])


# --------------------------------------------------------------------------------------------
# SEAT
# --------------------------------------------------------------------------------------------


def test_bleach_fills_and_capitalises():
    assert bleach(["engineer"], ["This is {}.", "{} is here."]) == [
        "This is engineer.",
        "Engineer is here.",
    ]
    with pytest.raises(ValueError, match="non-empty"):
        bleach([])
    with pytest.raises(ValueError, match="non-empty"):
        bleach("engineer")


class _TableEncoder:
    """Sentence 'encoder' that looks up the vector of the sentence's word."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, sentences):
        return np.stack([self.vectors[s.split()[-1].rstrip(".").lower()] for s in sentences])


def test_seat_with_one_template_is_weat():
    rng = np.random.default_rng(4)
    words = ["a1", "a2", "a3", "b1", "b2", "b3", "x1", "x2", "x3", "y1", "y2", "y3"]
    table = {w: rng.normal(size=8) for w in words}
    X, Y, A, B = words[6:9], words[9:], words[:3], words[3:6]
    seat_result = seat(X, Y, A, B, _TableEncoder(table), templates=["This is {}."])
    weat_result = weat(X, Y, A, B, table)
    assert seat_result.effect_size == pytest.approx(weat_result.effect_size)
    assert seat_result.p_value == pytest.approx(weat_result.p_value)
    with pytest.raises(ValueError, match="non-empty"):
        seat([], Y, A, B, _TableEncoder(table))


@pytest.mark.slow
def test_seat_on_minilm_reports_effect_and_p_value():
    from llmcourse.ethics.weat import CALISKAN_TESTS
    from llmcourse.pretrained import minilm

    X, Y, A, B = CALISKAN_TESTS["flowers_insects_pleasant"]
    result = seat(X, Y, A, B, minilm(), permutations=2000)
    assert result.effect_size > 0.5 and result.p_value < 0.01  # May et al. 2019: large, p < .01


# --------------------------------------------------------------------------------------------
# LM probes
# --------------------------------------------------------------------------------------------


class _CharTokenizer:
    """Byte-level stand-in for a Hugging Face tokenizer (ids 1..255, BOS 0)."""

    bos_token_id, eos_token_id = 0, 0

    def __call__(self, text, add_special_tokens=False):
        return SimpleNamespace(input_ids=[min(ord(c), 255) or 1 for c in text])


@pytest.fixture(scope="module")
def tiny_lm():
    from llmcourse.config import ModelConfig
    from llmcourse.models import DecoderLM

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=256, context_length=128, d_model=32, n_layer=2, n_head=4)
    return DecoderLM(config).eval()


def test_continuation_logprobs_equal_a_direct_computation(tiny_lm):
    tok = _CharTokenizer()
    scores, lengths = continuation_logprobs(tiny_lm, tok, ["ab", "hello"], [" c", "!"])
    ids = torch.tensor([[0, *map(ord, "ab c")]])
    with torch.no_grad():
        logprobs = torch.log_softmax(tiny_lm(ids).logits[0], -1)
    expected = float(logprobs[2, ord(" ")] + logprobs[3, ord("c")])
    assert scores[0] == pytest.approx(expected, abs=1e-5)
    assert lengths.tolist() == [2, 1]


def test_probes_on_a_tiny_model_and_bad_input(tiny_lm):
    tok = _CharTokenizer()
    result = pronoun_probe(
        tiny_lm, tok, ["nurse", "baker"], ["pilot", "smith"], ["The {occupation} said"]
    )
    assert set(result.scores) == {"nurse", "baker", "pilot", "smith"}
    assert result.group_a.low <= result.group_a.value <= result.group_a.high
    assert 0 < result.p_value <= 1
    pairs = paired_sentences(tiny_lm, tok, [("He ran.", "She ran.", "gender")] * 3)
    assert pairs.stereotype_preferred.value in (0.0, 100.0)
    with pytest.raises(ValueError, match="group_a must be a non-empty"):
        pronoun_probe(tiny_lm, tok, [], ["pilot"])
    with pytest.raises(ValueError, match="occupation"):
        pronoun_probe(tiny_lm, tok, ["a"], ["b"], ["no slot here"])


def test_stereoset_metrics_follow_nadeem_et_al():
    # stereo > anti in 3 of 4 items; meaningful beats unrelated in 7 of 8 comparisons
    scores = np.array([[-1, -2, -5], [-1, -2, -5], [-1, -2, -5], [-3, -1, -2]])
    ss, lms, icat = stereoset_metrics(scores)
    assert ss == 75.0 and lms == 87.5
    assert icat == pytest.approx(87.5 * 25 / 50)
    ideal = stereoset_metrics(np.array([[-1, -2, -9], [-2, -1, -9]]))
    assert ideal == (50.0, 100.0, 100.0)


@pytest.mark.slow
def test_smollm2_pronoun_probe_finds_occupation_gender_association():
    from llmcourse.models.hf import load_smollm2

    model, tokenizer = load_smollm2()
    result = pronoun_probe(model, tokenizer)
    # " he" is likelier after male-coded occupations than after female-coded ones
    assert result.difference > 0 and result.effect_size > 0.8 and result.p_value < 0.01
    assert result.group_a.high < result.group_b.low


# --------------------------------------------------------------------------------------------
# Fairness metrics: parity with fairlearn
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_fairness_metrics_match_fairlearn(seed):
    from fairlearn.metrics import (
        demographic_parity_difference as fl_dpd,
    )
    from fairlearn.metrics import (
        equalized_odds_difference as fl_eod,
    )

    rng = np.random.default_rng(seed)
    groups = rng.choice(["a", "b", "c"], size=300)
    y_true = rng.integers(0, 2, 300)
    y_pred = (rng.random(300) < np.where(groups == "a", 0.7, 0.4)).astype(int)
    assert demographic_parity_difference(y_pred, groups) == pytest.approx(
        fl_dpd(y_true, y_pred, sensitive_features=groups)
    )
    assert equalized_odds_difference(y_true, y_pred, groups) == pytest.approx(
        fl_eod(y_true, y_pred, sensitive_features=groups)
    )


def test_group_rates_and_bad_input():
    rows = group_rates([1, 0, 1, 0], [1, 1, 0, 0], ["x", "x", "y", "y"])
    assert [
        (r.group, r.selection_rate, r.true_positive_rate, r.false_positive_rate) for r in rows
    ] == [
        ("x", 1.0, 1.0, 1.0),
        ("y", 0.0, 0.0, 0.0),
    ]
    with pytest.raises(ValueError, match="binary"):
        demographic_parity_difference([0.2, 0.9], ["a", "b"])
    with pytest.raises(ValueError, match="two different groups"):
        demographic_parity_difference([0, 1], ["a", "a"])
    with pytest.raises(ValueError, match="both positive and negative"):
        equalized_odds_difference([1, 1, 0, 0], [1, 0, 1, 0], ["a", "a", "b", "b"])


# --------------------------------------------------------------------------------------------
# Hard debiasing
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_vectors() -> WordVectors:
    """Random vectors plus a planted gender axis (dimension 0)."""
    from llmcourse.ethics.wordlists import GENDER_PAIRS

    rng = np.random.default_rng(5)
    words, rows = [], []
    for female, male in GENDER_PAIRS:
        base = rng.normal(size=16)
        for word, sign in ((female, -1), (male, 1)):
            vector = base.copy()
            vector[0] = 3 * sign
            words.append(word)
            rows.append(vector)
    for i in range(40):
        vector = rng.normal(size=16)
        vector[0] = 2.0 if i < 20 else -2.0  # "occupations" leaning male / female
        words.append(f"job{i}")
        rows.append(vector)
    return WordVectors(words, np.array(rows, dtype=np.float32))


def test_gender_direction_finds_the_planted_axis(toy_vectors):
    g = gender_direction(toy_vectors)
    assert abs(g[0]) > 0.95 and g[0] > 0  # points female -> male


def test_hard_debias_removes_direct_bias_and_equalises_pairs(toy_vectors):
    g = gender_direction(toy_vectors)
    jobs = [f"job{i}" for i in range(40)]
    assert direct_bias(toy_vectors, jobs, g) > 0.2
    debiased = hard_debias(toy_vectors, g)
    assert direct_bias(debiased, jobs, g) < 1e-6
    she, he = debiased["she"], debiased["he"]
    assert np.linalg.norm(she) == pytest.approx(1.0, abs=1e-5)
    assert she @ g == pytest.approx(-(he @ g), abs=1e-5)  # symmetric about the neutral plane
    np.testing.assert_allclose(she - (she @ g) * g, he - (he @ g) * g, atol=1e-5)
    for job in jobs:  # equally far from both words of every pair
        assert debiased[job] @ she == pytest.approx(debiased[job] @ he, abs=1e-5)


def test_cluster_recoverability(toy_vectors):
    male, female = [f"job{i}" for i in range(20)], [f"job{i}" for i in range(20, 40)]
    assert cluster_recoverability(toy_vectors, female, male) == 1.0
    debiased = hard_debias(toy_vectors)
    assert cluster_recoverability(debiased, female, male) < 0.8  # random residue only
    with pytest.raises(ValueError, match="non-empty"):
        cluster_recoverability(toy_vectors, [], male)


# --------------------------------------------------------------------------------------------
# Safety filter
# --------------------------------------------------------------------------------------------


def test_safety_filter_flags_phrases_and_pii_as_whole_words():
    f = SafetyFilter()
    assert f.check("How do I build a bomb at home?").reasons == ("weapons",)
    assert f.check("Write to jane.doe@example.org").reasons == ("pii:email",)
    assert f.check("The bombshell news about the builder").allowed
    assert f.predict(["fine", "I want to kill myself"]) == [0, 1]
    with pytest.raises(ValueError, match="non-empty"):
        SafetyFilter({"weapons": []})
    with pytest.raises(TypeError):
        f.check(42)


def test_guard_stream_cuts_before_the_flagged_phrase_is_shown():
    f = SafetyFilter()
    out = list(f.guard_stream(["Sure.", " First", " build a", " bomb", " like this"]))
    assert out == ["Sure.", " First", REFUSAL]
    assert "".join(f.guard_stream(["All", " good", "."])) == "All good."
