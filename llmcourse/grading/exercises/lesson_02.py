"""Exercises of lesson 02 (NLP fundamentals): each compares the learner's function with the
package's own (``llmcourse.embeddings``, ``llmcourse.ngram``, ``llmcourse.ethics``).

GloVe vectors and Shakespeare cross to the kernel as recipes (``Make``): each side loads them
itself, so only a few bytes travel."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import torch

from llmcourse import embeddings, pretrained
from llmcourse.ethics import CALISKAN_TESTS
from llmcourse.ethics import weat_effect_size as reference_effect_size
from llmcourse.grading.compare import exact
from llmcourse.grading.spec import Case, Draw, Exercise, Measurement
from llmcourse.grading.wire import Make
from llmcourse.ngram import NGramLM, tokenize_lines

GLOVE_20K = Make("llmcourse.pretrained:glove", 20_000)
GLOVE = Make("llmcourse.pretrained:glove")


def shakespeare_lines(split: str, start: int, length: int) -> list[list[str]]:
    """The words of each line of ``length`` characters of Shakespeare from ``start`` on."""
    return tokenize_lines(pretrained.shakespeare(split)[start : start + length])


# ---- 02.cosine_similarity -----------------------------------------------------------------------

cosine_similarity = Exercise(
    "02.cosine_similarity",
    answer="cosine_similarity",
    reference=embeddings.cosine_similarity,
    forbid=["torch.nn.functional.cosine_similarity", "scipy.spatial.distance.cosine"],
    section="Neighbours and analogies",
)


@cosine_similarity.variant("the dot product is not divided by the two lengths")
def _dot_only(a, b):
    return float(np.asarray(a, float) @ np.asarray(b, float))


@cosine_similarity.test(
    points=2,
    hint="Divide the dot product of a and b by the product of their two lengths, and return a "
    "float.",
)
def cosine_similarity_matches_on_random_vectors(draw: Draw) -> list[Case]:
    return [
        Case(
            (draw.numpy.normal(size=dim), draw.numpy.normal(size=dim)), label=f"two {dim}-d vectors"
        )
        for dim in (2, 5, 50, draw.integer(3, 300))
    ]


@cosine_similarity.test(
    points=1,
    hint="Cosine ignores length: parallel vectors give 1, opposite -1, perpendicular 0.",
)
def cosine_similarity_known_angles(draw: Draw) -> list[Case]:
    a = draw.numpy.normal(size=4)
    perpendicular = np.array([-a[1], a[0], -a[3], a[2]])
    scale = draw.uniform(0.5, 5)
    return [
        Case((a, a * scale), label="parallel vectors"),
        Case((a, -a * scale), label="opposite vectors"),
        Case((a, perpendicular), label="perpendicular vectors"),
    ]


@cosine_similarity.test(
    points=1, hint="A zero vector has no direction; return 0.0 for it instead of dividing by zero."
)
def cosine_similarity_of_a_zero_vector_is_zero(draw: Draw) -> list[Case]:
    dim = draw.integer(2, 8)
    return [Case((np.zeros(dim), draw.numpy.normal(size=dim)), label=f"a zero {dim}-d vector")]


# ---- 02.analogy ---------------------------------------------------------------------------------

analogy = Exercise(
    "02.analogy",
    answer="analogy",
    reference=embeddings.analogy,
    forbid=["llmcourse.embeddings.analogy_neighbours"],
    compare=exact(),
    section="Neighbours and analogies",
)
ANALOGIES = [
    ("man", "king", "woman"),
    ("france", "paris", "japan"),
    ("slow", "slower", "fast"),
    ("good", "better", "bad"),
    ("germany", "berlin", "italy"),
    ("big", "bigger", "small"),
    ("walk", "walked", "go"),
    ("boy", "girl", "brother"),
    ("day", "days", "child"),
    ("spain", "spanish", "china"),
]


@analogy.variant("the question words a, b and c are not left out of the candidates")
def _candidates_include_question(vectors, a, b, c):
    unit = vectors.vectors / np.linalg.norm(vectors.vectors, axis=1, keepdims=True)
    target = unit[vectors.index[b]] - unit[vectors.index[a]] + unit[vectors.index[c]]
    return vectors.words[int(np.argmax(unit @ target))]


@analogy.test(
    points=1,
    hint="Leave a, b and c themselves out of the candidates: b - a + c is often closest to b.",
)
def analogy_excludes_the_question_words(draw: Draw) -> list[Case]:
    vectors = np.array(
        [[1, 0, 0], [0, 1, 0], [1, 0, 3], [0, 1, 1], [0, 0.3, 1]], dtype=np.float32
    ) + draw.numpy.normal(scale=0.02, size=(5, 3)).astype(np.float32)
    toy = Make(
        "llmcourse.embeddings:WordVectors", ["man", "woman", "king", "queen", "throne"], vectors
    )
    return [Case((toy, "man", "king", "woman"), label="man : king :: woman : ? in a toy space")]


@analogy.test(
    points=2,
    hint="Normalise the vectors to unit length, form b - a + c, and pick the word with the "
    "highest cosine similarity to it (the vectors are vectors.vectors, the words vectors.words).",
    timeout=20.0,
)
def analogy_matches_on_glove(draw: Draw) -> list[Case]:
    return [
        Case((GLOVE_20K, a, b, c), label=f"{a} : {b} :: {c} : ? on GloVe")
        for a, b, c in draw.sample(ANALOGIES, 4)
    ]


# ---- 02.bigram_perplexity -----------------------------------------------------------------------


def _reference_perplexity(train: list[list[str]], test: list[list[str]], k: float = 1.0) -> float:
    return NGramLM(order=2, smoothing="add-k", k=k).fit(train).perplexity(test)


bigram_perplexity = Exercise(
    "02.bigram_perplexity",
    answer="bigram_perplexity",
    reference=_reference_perplexity,
    forbid=["llmcourse.ngram.NGramLM"],
    section="n-gram language models, smoothing and perplexity",
)


@bigram_perplexity.variant("</s> is not predicted (it is missing from the sentences' ends)")
def _without_end(train, test, k=1.0):
    vocab = {w for s in train for w in s} | {"<unk>"}
    pairs: dict[tuple[str, str], int] = {}
    starts: dict[str, int] = {}
    for sentence in train:
        padded = ["<s>", *sentence]
        for prev, word in pairwise(padded):
            pairs[prev, word] = pairs.get((prev, word), 0) + 1
            starts[prev] = starts.get(prev, 0) + 1
    total, count = 0.0, 0
    for sentence in test:
        padded = ["<s>", *(w if w in vocab else "<unk>" for w in sentence)]
        for prev, word in pairwise(padded):
            total += math.log(
                (pairs.get((prev, word), 0) + k) / (starts.get(prev, 0) + k * len(vocab))
            )
            count += 1
    return math.exp(-total / count)


@bigram_perplexity.test(
    points=2,
    hint="Pad each sentence as <s> w1 ... wn </s>; P(w | prev) = (c(prev, w) + k) / "
    "(c(prev) + k · V) with V = training words + </s> + <unk>; perplexity = exp(-mean log P) "
    "over every predicted token, </s> included.",
)
def bigram_perplexity_matches_on_a_toy_corpus(draw: Draw) -> list[Case]:
    words = ["a", "b", "c"]
    train = [["a", "b"], ["a", "c"], ["b", "c", "a"]]
    train += [draw.sample(words, draw.integer(1, 3)) for _ in range(3)]
    test = [["a", "b", "c"], ["c"], draw.sample(words, 2)]
    return [
        Case((train, test), {"k": k}, label=f"a toy corpus with k={k:g}")
        for k in (1.0, 0.5, round(draw.uniform(0.05, 2), 2))
    ]


@bigram_perplexity.test(
    points=1,
    hint="Words never seen in training count as <unk> (with c(prev, <unk>) = 0), in the test "
    "sentences and in their contexts.",
)
def bigram_perplexity_handles_unknown_words(draw: Draw) -> list[Case]:
    train = [["the", "cat", "sat"], ["the", "dog", "sat"]]
    unseen = draw.choice(["cow", "emu", "yak"])
    test = [["the", unseen, "sat"], ["a", "dog"], [draw.choice(["ox", "gnu"])]]
    return [Case((train, test), {"k": 1.0}, label=f"unseen test words ({unseen}, …)")]


@bigram_perplexity.test(
    points=1,
    hint="Count over all sentences; make sure a small k (0.01) does not divide by zero.",
    timeout=30.0,
)
def bigram_perplexity_matches_on_shakespeare(draw: Draw) -> list[Case]:
    start = draw.integer(0, 4_000_000)
    target = "llmcourse.grading.exercises.lesson_02:shakespeare_lines"
    train = Make(target, "train", start, 60_000)
    test = Make(target, "val", draw.integer(0, 300_000), 10_000)
    return [Case((train, test), {"k": 0.01}, label="a slice of Shakespeare (k=0.01)")]


# ---- 02.sgns_loss -------------------------------------------------------------------------------

sgns_loss = Exercise(
    "02.sgns_loss",
    answer="sgns_loss",
    reference=embeddings.sgns_loss,
    section="Training word vectors: skip-gram with negative sampling",
)


@sgns_loss.variant("the negatives' scores are not negated inside log σ")
def _negatives_not_negated(center, context, negatives):
    positive = torch.nn.functional.logsigmoid((center * context).sum(-1))
    negative = torch.nn.functional.logsigmoid(torch.einsum("bd,bkd->bk", center, negatives))
    return -(positive + negative.sum(-1)).mean()


@sgns_loss.test(
    points=2,
    hint="Score each centre vector against its context vector and against each of its K "
    "negatives; loss = -log σ(positive) - Σ log σ(-negative), averaged over the batch.",
)
def sgns_loss_matches_on_random_vectors(draw: Draw) -> list[Case]:
    cases = []
    for batch, negatives, dim in (
        (1, 1, 3),
        (8, 5, 16),
        (draw.integer(2, 6), draw.integer(2, 6), 8),
    ):
        args = (draw.randn(batch, dim), draw.randn(batch, dim), draw.randn(batch, negatives, dim))
        cases.append(Case(args, label=f"batch {batch}, K={negatives}, dim {dim}"))
    return cases


@sgns_loss.test(
    points=1,
    hint="Use a numerically stable log σ (log-sigmoid or softplus) rather than log of sigmoid, "
    "which gives log(0) = -inf for large negative x.",
)
def sgns_loss_is_stable_for_large_dot_products(draw: Draw) -> list[Case]:
    center = torch.full((2, 4), 10.0) * draw.uniform(1.0, 2.0)
    noise = center[:, None].repeat(1, draw.integer(2, 4), 1)
    return [Case((center, -center, noise), label="dot products of several hundred")]


# ---- 02.weat_effect_size ------------------------------------------------------------------------

weat_effect_size = Exercise(
    "02.weat_effect_size",
    answer="weat_effect_size",
    reference=reference_effect_size,
    forbid=["llmcourse.ethics.weat", "llmcourse.ethics.cohens_d"],
    section="A first bias measurement: WEAT",
)
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


@weat_effect_size.variant("the standard deviation uses ddof=0 instead of 1")
def _population_std(X, Y, A, B, embed):
    def unit(words):
        m = np.stack([np.asarray(embed[w], float) for w in words])
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    a, b = unit(A), unit(B)
    s_x = (unit(X) @ a.T).mean(1) - (unit(X) @ b.T).mean(1)
    s_y = (unit(Y) @ a.T).mean(1) - (unit(Y) @ b.T).mean(1)
    return float((s_x.mean() - s_y.mean()) / np.concatenate([s_x, s_y]).std())


@weat_effect_size.test(
    points=2,
    hint="s(w) = mean cosine of w with A minus mean cosine with B; d = (mean s over X - mean s "
    "over Y) divided by the sample standard deviation (ddof=1) of s over X and Y together.",
)
def weat_effect_size_matches_on_a_toy_space(draw: Draw) -> list[Case]:
    toy = {w: [v + draw.uniform(-0.05, 0.05) for v in vec] for w, vec in _TOY.items()}
    args = (["x1", "x2", "x3"], ["y1", "y2"], ["a1", "a2"], ["b1", "b2"], toy)
    return [Case(args, label="effect size on a toy space")]


@weat_effect_size.test(
    points=1,
    hint="Look words up with embed[word]; cosine similarity, not the raw dot product.",
    timeout=20.0,
)
def weat_effect_size_matches_on_glove(draw: Draw) -> list[Case]:
    cases = []
    # Every word of these three is among GloVe's 50,000 most frequent (flowers_insects_pleasant
    # has rarer ones, which the package skips and the exercise does not ask about).
    for name in draw.sample(["names_career_family", "math_arts_gender", "science_arts_gender"], 2):
        X, Y, A, B = (list(words) for words in CALISKAN_TESTS[name])
        X, Y = draw.sample(X, max(2, len(X) - 1)), draw.sample(Y, max(2, len(Y) - 1))
        cases.append(Case((X, Y, A, B, GLOVE), label=f"effect size of {name} on GloVe"))
    return cases


# ---- 02.char_ngram (project) --------------------------------------------------------------------
# A character n-gram model trained on a fixed budget of text and scored on plays it never saw.
# Calibration (seeds 1-5, 1,000,000 characters, loaded machine): the solution's Witten-Bell 4-gram
# scores 6.04-6.27 per character on the held-out plays, add-0.1 4-grams the same, add-1 4-grams
# 6.36-6.58, add-1 trigrams 7.80-7.99, an unsmoothed 4-gram infinity, a uniform table 36.

CHAR_ALPHABET = "\n !',-.:;?abcdefghijklmnopqrstuvwxyz"
CHAR_BUDGET = 1_000_000  # characters of training text
CHAR_MAX_ORDER = 4  # a 4-gram table holds 36**4 ≈ 1.7 M probabilities
CHAR_PERPLEXITY_BUDGET = 6.6  # per character, on the held-out plays


def clean_characters(text: str) -> str:
    """Lower-case ``text`` and turn every character outside ``CHAR_ALPHABET`` into a space."""
    allowed = set(CHAR_ALPHABET)
    return "".join(ch if ch in allowed else " " for ch in text.lower())


def char_training_text(seed: int) -> str:
    """``CHAR_BUDGET`` characters of cleaned Shakespeare from training works picked by ``seed``."""
    import random

    works = pretrained.shakespeare_works(split="train")
    names = random.Random(seed).sample(sorted(works), len(works))
    text, total = [], 0
    for name in names:
        text.append(works[name])
        total += len(works[name])
        if total >= CHAR_BUDGET:
            break
    return clean_characters("\n\n".join(text))[:CHAR_BUDGET]


def char_perplexity(model: torch.Tensor, text: str) -> float:
    """exp of the mean negative log-probability per character that ``model`` gives ``text``."""
    size, order = len(CHAR_ALPHABET), model.dim()
    index = {ch: i for i, ch in enumerate(CHAR_ALPHABET)}
    ids = torch.tensor([index[ch] for ch in text])
    codes = (ids.unfold(0, order, 1) * size ** torch.arange(order - 1, -1, -1)).sum(1)
    return math.exp(-float(model.double().reshape(-1)[codes].log().mean()))


def _held_out_perplexity(model, case: Case) -> Measurement:
    size = len(CHAR_ALPHABET)
    name = "perplexity per character on held-out plays"
    if not isinstance(model, torch.Tensor) or not model.is_floating_point():
        raise AssertionError(f"char_ngram_model should return a float tensor, got {model!r:.80}.")
    if not 1 <= model.dim() <= CHAR_MAX_ORDER or any(n != size for n in model.shape):
        raise AssertionError(
            f"the table should have shape ({size},) * n with n from 1 to {CHAR_MAX_ORDER} "
            f"(one axis per character of the n-gram), got {tuple(model.shape)}."
        )
    model = model.double()
    if not torch.isfinite(model).all() or (model < 0).any():
        raise AssertionError("every probability should be a finite number ≥ 0.")
    worst = float((model.sum(-1) - 1).abs().max())
    if worst > 1e-3:
        raise AssertionError(
            "each row over the last axis should sum to 1 (a distribution over the next "
            f"character); one is off by {worst:.3g}."
        )
    value = char_perplexity(model, case.hidden)
    detail = "a context seen in training never followed by a held-out character gives it 0"
    return Measurement(
        name,
        value,
        CHAR_PERPLEXITY_BUDGET,
        higher_is_better=False,
        detail=detail if math.isinf(value) else "",
    )


char_ngram = Exercise(
    "02.char_ngram",
    answer="char_ngram_model",
    forbid=["llmcourse.ngram.NGramLM"],
    section="n-gram language models, smoothing and perplexity",
)


@char_ngram.test(
    points=3,
    hint="A table of raw counts gives probability 0 to every continuation it never saw, and one "
    "0 on held-out text makes the perplexity infinite. Back off from long contexts to shorter "
    "ones (interpolation, Witten-Bell or Kneser-Ney) rather than adding a constant to every "
    "count; compare orders 2, 3 and 4 on text you hold out yourself.",
    measure=_held_out_perplexity,
    timeout=30.0,
    memory_mb=3072,
)
def char_ngram_beats_the_perplexity_budget(draw: Draw) -> list[Case]:
    seed = draw.integer(0, 2**31)
    text = Make("llmcourse.grading.exercises.lesson_02:char_training_text", seed)
    held_out = clean_characters(pretrained.shakespeare("val"))  # plays the training never has
    return [
        Case(
            (text, CHAR_ALPHABET),
            label=f"{CHAR_BUDGET:,} characters of training works (seed {seed})",
            hidden=held_out,
        )
    ]
