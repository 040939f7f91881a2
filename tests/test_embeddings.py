"""Cosine similarity, neighbours and analogies over GloVe; skip-gram with negative sampling."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmcourse import pretrained
from llmcourse.embeddings import (
    SkipGram,
    WordVectors,
    analogy,
    analogy_neighbours,
    cosine_similarity,
    nearest_neighbours,
    sgns_loss,
    skipgram_pairs,
)
from llmcourse.train.sgns import train_sgns


@functools.cache
def glove() -> WordVectors:
    return pretrained.glove()


def test_cosine_similarity_matches_torch():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(3, 7))
    expected = F.cosine_similarity(torch.tensor(a)[:, None], torch.tensor(b)[None], dim=-1)
    np.testing.assert_allclose(cosine_similarity(a, b), expected.numpy(), rtol=1e-10)
    assert cosine_similarity(a[0], b[0]) == pytest.approx(float(expected[0, 0]), rel=1e-10)
    assert isinstance(cosine_similarity(a[0], b[0]), float)
    assert cosine_similarity([1, 0], [0, 3]) == 0.0
    assert cosine_similarity([1, 1], [2, 2]) == pytest.approx(1.0)
    assert cosine_similarity([0, 0], [1, 2]) == 0.0  # a zero vector has no direction


def test_cosine_similarity_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same length"):
        cosine_similarity(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="matrices"):
        cosine_similarity(np.ones((2, 2, 3)), np.ones(3))


def test_neighbours_and_analogies_on_a_hand_made_space():
    vectors = WordVectors(
        ["man", "woman", "king", "queen", "apple"],
        np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1], [-1, -1, 0]], dtype=np.float32),
    )
    assert [w for w, _ in nearest_neighbours(vectors, "king", k=2)] == ["man", "queen"]
    assert analogy(vectors, "man", "king", "woman") == "queen"
    assert nearest_neighbours(vectors, np.array([1.0, 0, 0]), k=1)[0] == ("man", pytest.approx(1.0))


def test_glove_king_minus_man_plus_woman_is_queen():
    """Mikolov et al. 2013's classic, and two more that GloVe 6B gets right."""
    assert analogy(glove(), "man", "king", "woman") == "queen"
    assert analogy(glove(), "france", "paris", "japan") == "tokyo"
    assert analogy(glove(), "big", "bigger", "small") in {"larger", "smaller"}
    top = analogy_neighbours(glove(), "man", "king", "woman", k=5)
    assert top[0][0] == "queen" and all(w not in {"man", "king", "woman"} for w, _ in top)
    assert top[0][1] > top[1][1]


def test_glove_answers_about_half_of_lesson_02s_gender_analogies():
    """Lesson 02's headline: every ordered pair of gender pairs as a 3CosAdd question; GloVe 6B
    (50-d, top 50k words) gets about half right, far above what chance could (1 in 50,000)."""
    pairs = [
        ("man", "woman"), ("king", "queen"), ("boy", "girl"), ("brother", "sister"),
        ("uncle", "aunt"), ("father", "mother"), ("son", "daughter"), ("husband", "wife"),
        ("lord", "lady"), ("prince", "princess"), ("he", "she"), ("nephew", "niece"),
    ]  # fmt: skip
    questions = [(a, b, c, d) for a, b in pairs for c, d in pairs if a != c]
    right = [analogy(glove(), a, b, c) == d for a, b, c, d in questions]
    assert 0.35 < np.mean(right) < 0.9


def test_glove_neighbours_are_semantically_close():
    words = [w for w, _ in nearest_neighbours(glove(), "frog", k=10)]
    assert {"toad", "snake"} <= set(words)
    assert "frog" not in words


def test_sgns_loss_equals_binary_cross_entropy_form():
    """-log σ(u·v) - Σ log σ(-u_k·v) is BCE with target 1 for the pair and 0 for each negative."""
    torch.manual_seed(0)
    center, context, negatives = torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 3, 4)
    positive_logits = (center * context).sum(-1)
    negative_logits = (negatives @ center[:, :, None]).squeeze(-1)
    expected = F.binary_cross_entropy_with_logits(
        positive_logits, torch.ones(6), reduction="sum"
    ) + F.binary_cross_entropy_with_logits(negative_logits, torch.zeros(6, 3), reduction="sum")
    torch.testing.assert_close(sgns_loss(center, context, negatives), expected / 6)
    big = torch.full((1, 4), 100.0)
    assert torch.isfinite(sgns_loss(big, -big, big[:, None]))  # no overflow at huge logits


def test_sgns_loss_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"negatives \(batch, K, dim\)"):
        sgns_loss(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4))


def test_skipgram_pairs_window_one_is_every_neighbour():
    ids = np.array([10, 11, 12, 13])
    centers, contexts = skipgram_pairs(ids, window=1, rng=np.random.default_rng(0))
    pairs = sorted(zip(centers.tolist(), contexts.tolist(), strict=True))
    assert pairs == [(10, 11), (11, 10), (11, 12), (12, 11), (12, 13), (13, 12)]


def test_skipgram_pairs_weights_near_neighbours_more():
    ids = np.arange(20_000)
    centers, contexts = skipgram_pairs(ids, window=4, rng=np.random.default_rng(0))
    distance = np.abs(centers - contexts)
    share = np.bincount(distance, minlength=5)[1:] / (2 * len(ids))
    np.testing.assert_allclose(share, [1, 0.75, 0.5, 0.25], atol=0.02)


def test_sgns_learns_two_separate_topics():
    rng = np.random.default_rng(1)
    sea, land = ["ship", "wave", "sail", "tide"], ["horse", "field", "plough", "barn"]
    sentences = [list(rng.choice(group, size=6)) for group in [sea, land] * 400]
    threads = torch.get_num_threads()
    result = train_sgns(
        sentences, dim=8, window=2, min_count=1, subsample=1.0, epochs=3, batch_size=256,
        progress_bar=False,
    )  # fmt: skip
    assert result.losses[-1] < result.losses[0]
    assert torch.get_num_threads() == threads  # the one-thread setting is undone
    for word in sea:
        neighbours = [w for w, _ in nearest_neighbours(result.vectors, word, k=3)]
        assert set(neighbours) <= set(sea), (word, neighbours)


def test_skipgram_module_is_initialised_like_word2vec():
    model = SkipGram(vocab_size=10, dim=4)
    assert torch.all(model.outputs.weight == 0)
    assert model.inputs.weight.abs().max() <= 0.5 / 4


def test_train_sgns_bad_input():
    with pytest.raises(ValueError, match="lower min_count"):
        train_sgns([["a", "b"]], min_count=5)
    with pytest.raises(ValueError, match="must all be positive"):
        train_sgns([["a", "b"]], dim=0)
