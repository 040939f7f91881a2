"""Exercise tests of lesson 02 (NLP fundamentals): each compares the learner's function with the
package's own (``llmcourse.embeddings``, ``llmcourse.ngram``, ``llmcourse.ethics``)."""

from __future__ import annotations

import numpy as np
import torch

from llmcourse import embeddings, pretrained
from llmcourse.embeddings import WordVectors
from llmcourse.ethics import CALISKAN_TESTS
from llmcourse.ethics import weat_effect_size as reference_effect_size
from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.ngram import NGramLM, tokenize_lines

# ---- 02.cosine_similarity -----------------------------------------------------------------------


@exercise_test(
    "02.cosine_similarity",
    points=2,
    hint="Divide the dot product a @ b by the product of the two lengths, np.linalg.norm(a) * "
    "np.linalg.norm(b), and return a float.",
)
def cosine_similarity_matches_on_random_vectors(ns: Namespace) -> None:
    cosine_similarity = ns.function("cosine_similarity")
    for dim in (2, 5, 50):
        a, b = np.random.randn(dim), np.random.randn(dim)
        expected = embeddings.cosine_similarity(a, b)
        assert_close(
            cosine_similarity(a, b), expected, what=f"cosine_similarity of two {dim}-d vectors"
        )


@exercise_test(
    "02.cosine_similarity",
    points=1,
    hint="Cosine ignores length: parallel vectors give 1, opposite -1, perpendicular 0.",
)
def cosine_similarity_known_angles(ns: Namespace) -> None:
    cosine_similarity = ns.function("cosine_similarity")
    cases = {
        "parallel [1, 2] and [3, 6]": ([1.0, 2.0], [3.0, 6.0], 1.0),
        "opposite [1, 0] and [-2, 0]": ([1.0, 0.0], [-2.0, 0.0], -1.0),
        "perpendicular [1, 1] and [1, -1]": ([1.0, 1.0], [1.0, -1.0], 0.0),
    }
    for what, (a, b, expected) in cases.items():
        assert_close(cosine_similarity(np.array(a), np.array(b)), expected, what=what)


@exercise_test(
    "02.cosine_similarity",
    points=1,
    hint="A zero vector has no direction; return 0.0 for it instead of dividing by zero.",
)
def cosine_similarity_of_a_zero_vector_is_zero(ns: Namespace) -> None:
    cosine_similarity = ns.function("cosine_similarity")
    assert_close(cosine_similarity(np.zeros(3), np.ones(3)), 0.0, what="cosine_similarity(0, 1)")


# ---- 02.analogy ---------------------------------------------------------------------------------


@exercise_test(
    "02.analogy",
    points=1,
    hint="Leave a, b and c themselves out of the candidates: b - a + c is often closest to b.",
)
def analogy_excludes_the_question_words(ns: Namespace) -> None:
    analogy = ns.function("analogy")
    toy = WordVectors(
        ["man", "woman", "king", "queen", "throne"],
        np.array([[1, 0, 0], [0, 1, 0], [1, 0, 3], [0, 1, 1], [0, 0.3, 1]], dtype=np.float32),
    )
    expected = embeddings.analogy(toy, "man", "king", "woman")
    answer = analogy(toy, "man", "king", "woman")
    assert answer == expected, f"man : king :: woman : ? should be {expected!r}, got {answer!r}."


@exercise_test(
    "02.analogy",
    points=2,
    hint="Normalise each of the three vectors to unit length, form b - a + c, and pick the word "
    "with the highest cosine similarity to it (use vectors.vectors and vectors.words).",
)
def analogy_matches_on_glove(ns: Namespace) -> None:
    analogy = ns.function("analogy")
    glove = pretrained.glove(20_000)
    for a, b, c in [
        ("man", "king", "woman"),
        ("france", "paris", "japan"),
        ("slow", "slower", "fast"),
        ("good", "better", "bad"),
    ]:
        expected = embeddings.analogy(glove, a, b, c)
        answer = analogy(glove, a, b, c)
        assert answer == expected, f"{a} : {b} :: {c} : ? should be {expected!r}, got {answer!r}."


# ---- 02.bigram_perplexity -----------------------------------------------------------------------


def _reference_perplexity(train: list[list[str]], test: list[list[str]], k: float) -> float:
    return NGramLM(order=2, smoothing="add-k", k=k).fit(train).perplexity(test)


@exercise_test(
    "02.bigram_perplexity",
    points=2,
    hint="Pad each sentence as <s> w1 ... wn </s>; P(w | prev) = (c(prev, w) + k) / "
    "(c(prev) + k * V) with V = training words + </s> + <unk>; perplexity = exp(-mean log P) "
    "over every predicted token, </s> included.",
)
def bigram_perplexity_matches_on_a_toy_corpus(ns: Namespace) -> None:
    bigram_perplexity = ns.function("bigram_perplexity")
    train = [["a", "b"], ["a", "c"], ["b", "c", "a"]]
    test = [["a", "b", "c"], ["c"]]
    for k in (1.0, 0.5):
        assert_close(
            bigram_perplexity(train, test, k=k),
            _reference_perplexity(train, test, k),
            what=f"bigram_perplexity on the toy corpus with k={k}",
        )


@exercise_test(
    "02.bigram_perplexity",
    points=1,
    hint="Words never seen in training count as <unk> (with c(prev, <unk>) = 0), in the test "
    "sentences and in their contexts.",
)
def bigram_perplexity_handles_unknown_words(ns: Namespace) -> None:
    bigram_perplexity = ns.function("bigram_perplexity")
    train = [["the", "cat", "sat"], ["the", "dog", "sat"]]
    test = [["the", "cow", "sat"], ["a", "dog"]]
    assert_close(
        bigram_perplexity(train, test, k=1.0),
        _reference_perplexity(train, test, 1.0),
        what="bigram_perplexity with unseen test words",
    )


@exercise_test(
    "02.bigram_perplexity",
    points=1,
    hint="Count over all sentences; make sure a small k (0.01) does not divide by zero.",
)
def bigram_perplexity_matches_on_shakespeare(ns: Namespace) -> None:
    bigram_perplexity = ns.function("bigram_perplexity")
    train = tokenize_lines(pretrained.shakespeare("train")[:60_000])
    test = tokenize_lines(pretrained.shakespeare("val")[:10_000])
    assert_close(
        bigram_perplexity(train, test, k=0.01),
        _reference_perplexity(train, test, 0.01),
        what="bigram_perplexity on a slice of Shakespeare (k=0.01)",
        rtol=1e-6,
    )


# ---- 02.sgns_loss -------------------------------------------------------------------------------


@exercise_test(
    "02.sgns_loss",
    points=2,
    hint="Dot each centre vector with its context vector and with each of its K negatives "
    "(torch.einsum('bd,bkd->bk', ...)); loss = -log σ(pos) - Σ log σ(-neg), batch-averaged.",
)
def sgns_loss_matches_on_random_vectors(ns: Namespace) -> None:
    sgns_loss = ns.function("sgns_loss")
    for batch, negatives, dim in ((1, 1, 3), (8, 5, 16)):
        center, context = torch.randn(batch, dim), torch.randn(batch, dim)
        noise = torch.randn(batch, negatives, dim)
        assert_close(
            sgns_loss(center, context, noise),
            embeddings.sgns_loss(center, context, noise),
            what=f"sgns_loss with batch {batch}, K={negatives}, dim {dim}",
        )


@exercise_test(
    "02.sgns_loss",
    points=1,
    hint="Use F.logsigmoid (or softplus) rather than torch.log(torch.sigmoid(x)), which gives "
    "log(0) = -inf for large negative x.",
)
def sgns_loss_is_stable_for_large_dot_products(ns: Namespace) -> None:
    sgns_loss = ns.function("sgns_loss")
    center = torch.full((2, 4), 10.0)
    context = -center
    noise = center[:, None].repeat(1, 3, 1)
    expected = embeddings.sgns_loss(center, context, noise)
    actual = sgns_loss(center, context, noise)
    assert torch.isfinite(torch.as_tensor(actual)), f"the loss should be finite, got {actual}."
    assert_close(actual, expected, what="sgns_loss with dot products of ±400")


# ---- 02.weat_effect_size ------------------------------------------------------------------------

_TOY = {
    "a1": [1.0, 0.0],
    "a2": [1.0, 0.3],
    "b1": [0.0, 1.0],
    "b2": [0.2, 1.0],
    "x1": [1.0, 0.2],
    "x2": [0.9, 0.5],
    "x3": [0.6, 0.6],
    "y1": [0.2, 1.0],
    "y2": [0.5, 1.0],
}


@exercise_test(
    "02.weat_effect_size",
    points=2,
    hint="s(w) = mean cos(w, a) over A - mean cos(w, b) over B; d = (mean s over X - mean s over "
    "Y) / std of s over X and Y together, with ddof=1.",
)
def weat_effect_size_matches_on_a_toy_space(ns: Namespace) -> None:
    weat_effect_size = ns.function("weat_effect_size")
    args = (["x1", "x2", "x3"], ["y1", "y2"], ["a1", "a2"], ["b1", "b2"], _TOY)
    assert_close(
        weat_effect_size(*args), reference_effect_size(*args), what="effect size on the toy space"
    )


@exercise_test(
    "02.weat_effect_size",
    points=1,
    hint="Look words up with embed[word]; cosine similarity, not the raw dot product.",
)
def weat_effect_size_matches_on_glove(ns: Namespace) -> None:
    weat_effect_size = ns.function("weat_effect_size")
    glove = pretrained.glove()
    for name in ("names_career_family", "math_arts_gender"):
        X, Y, A, B = CALISKAN_TESTS[name]
        assert_close(
            weat_effect_size(X, Y, A, B, glove),
            reference_effect_size(X, Y, A, B, glove),
            what=f"effect size of {name} on GloVe",
        )
