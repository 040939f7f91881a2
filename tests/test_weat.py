"""WEAT: hand-checkable values, scipy's exact permutation test, and Caliskan et al.'s result."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from llmcourse import pretrained
from llmcourse.ethics import CALISKAN_TESTS, weat, weat_effect_size
from llmcourse.ethics.weat import associations

stats = pytest.importorskip("scipy.stats")


@functools.cache
def glove():
    return pretrained.glove()


# A 2-D toy: A points along x, B along y; x-words lean to A, y-words to B.
TOY = {
    "a1": [1.0, 0.0],
    "a2": [1.0, 0.1],
    "b1": [0.0, 1.0],
    "b2": [0.1, 1.0],
    "x1": [1.0, 0.2],
    "x2": [1.0, 0.5],
    "y1": [0.2, 1.0],
    "y2": [0.4, 1.0],
}


def _cos(u, v):
    u, v = np.asarray(u), np.asarray(v)
    return u @ v / np.linalg.norm(u) / np.linalg.norm(v)


def test_effect_size_by_hand_on_a_toy_space():
    def s(w):
        return np.mean([_cos(TOY[w], TOY[a]) for a in ("a1", "a2")]) - np.mean(
            [_cos(TOY[w], TOY[b]) for b in ("b1", "b2")]
        )

    values = [s(w) for w in ("x1", "x2", "y1", "y2")]
    expected = (np.mean(values[:2]) - np.mean(values[2:])) / np.std(values, ddof=1)
    d = weat_effect_size(["x1", "x2"], ["y1", "y2"], ["a1", "a2"], ["b1", "b2"], TOY)
    assert d == pytest.approx(expected)
    result = weat(["x1", "x2"], ["y1", "y2"], ["a1", "a2"], ["b1", "b2"], TOY)
    assert result.exact and result.partitions == 6  # C(4, 2)
    assert result.p_value == pytest.approx(1 / 6)  # the observed split is the most extreme
    assert result.effect_size == pytest.approx(expected)


def test_swapping_targets_or_attributes_flips_the_sign():
    X, Y, A, B = CALISKAN_TESTS["names_career_family"]
    d = weat_effect_size(X, Y, A, B, glove())
    assert weat_effect_size(Y, X, A, B, glove()) == pytest.approx(-d)
    assert weat_effect_size(X, Y, B, A, glove()) == pytest.approx(-d)


def test_exact_p_value_equals_scipy_permutation_test():
    X, Y, A, B = CALISKAN_TESTS["math_arts_gender"]
    s_x, s_y = associations(X, A, B, glove()), associations(Y, A, B, glove())
    reference = stats.permutation_test(
        (s_x, s_y),
        lambda x, y, axis: x.sum(axis=axis) - y.sum(axis=axis),
        permutation_type="independent",
        alternative="greater",
        n_resamples=np.inf,
    )
    result = weat(X, Y, A, B, glove())
    assert result.exact and result.partitions == 12870
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert result.statistic == pytest.approx(reference.statistic)
    # A reversed test is not significant: nearly every split beats the observed one.
    assert weat(Y, X, A, B, glove()).p_value > 0.99


def test_random_partitions_estimate_the_exact_p_value():
    X, Y, A, B = CALISKAN_TESTS["science_arts_gender"]
    exact = weat(X, Y, A, B, glove())
    sampled = weat(X, Y, A, B, glove(), max_exact=0, permutations=50_000, seed=1)
    assert not sampled.exact and sampled.partitions == 50_000
    assert sampled.p_value == pytest.approx(exact.p_value, abs=0.002)
    assert sampled.effect_size == exact.effect_size


def test_glove_shows_caliskans_career_family_gender_effect():
    """Caliskan et al. 2017 (WEAT 6): male names sit closer to career words, female names to
    family words; d = 1.81, p < 1e-3 on GloVe 840B. GloVe 6B 50d shows a large effect too."""
    X, Y, A, B = CALISKAN_TESTS["names_career_family"]
    result = weat(X, Y, A, B, glove())
    assert result.exact
    assert result.effect_size > 1.0
    assert result.p_value < 1e-3


def test_bad_input():
    with pytest.raises(ValueError, match=r"not in the embedding: \['xyzzyq'\]"):
        weat(["x1", "xyzzyq"], ["y1"], ["a1"], ["b1"], TOY)
    with pytest.raises(ValueError, match="non-empty list"):
        weat([], ["y1"], ["a1"], ["b1"], TOY)
    with pytest.raises(ValueError, match="non-empty list"):
        weat("x1", ["y1"], ["a1"], ["b1"], TOY)
    assert weat(["x1"], ["y1"], ["a1"], ["b1"], lambda w: TOY[w]).partitions == 2
