"""Word vectors: cosine similarity, neighbours, analogies, and skip-gram with negative sampling.

A one-hot vector says only *which* word this is: every pair of words is equally far apart. A
dense vector (50-300 numbers) learned from text places words that occur in similar contexts
near each other ("you shall know a word by the company it keeps", Firth 1957), and directions
in the space carry meaning: king - man + woman lands near queen (Mikolov et al. 2013a).

- ``cosine_similarity(a, b) = a . b / (|a| |b|)``: the angle between vectors, blind to length.
- ``analogy(vectors, a, b, c)``: "a is to b as c is to ?", the word nearest to b - a + c over
  unit vectors, leaving out a, b and c themselves (3CosAdd; Levy & Goldberg 2014).
- ``sgns_loss``, ``SkipGram``: word2vec's skip-gram with negative sampling (Mikolov et al.
  2013b). For each centre word c and a context word o within the window, and K words n_k drawn
  from the unigram distribution raised to 3/4, minimise
      L = -log sigma(u_o . v_c) - sum_k log sigma(-u_{n_k} . v_c)
  which pulls real (centre, context) pairs together and pushes random pairs apart. The model
  (``SkipGram``), the loss and the pairs live here; ``llmcourse.train.sgns.train_sgns`` trains
  them on the course's one ``Trainer``, like every other objective.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.pretrained import WordVectors


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """cos(a, b) = a . b / (|a| |b|). Two vectors ``(dim,)`` give a float; matrices
    ``(n, dim)`` and ``(m, dim)`` give all pairs, ``(n, m)``. A zero vector has similarity 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"vectors must have the same length, got {a.shape} and {b.shape}.")
    if a.ndim > 2 or b.ndim > 2:
        raise ValueError(f"expected vectors (dim,) or matrices (n, dim), got {a.shape}, {b.shape}.")
    scores = _unit(a) @ _unit(b).T
    return float(scores) if scores.ndim == 0 else scores


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm == 0, 1.0, norm)


def nearest_neighbours(
    vectors: WordVectors, query: str | np.ndarray, k: int = 10, exclude: Iterable[str] = ()
) -> list[tuple[str, float]]:
    """The ``k`` words most cosine-similar to ``query`` (a word, itself left out, or a vector)."""
    excluded = set(exclude)
    if isinstance(query, str):
        excluded.add(query)
        query = vectors[query]
    scores = cosine_similarity(vectors.vectors, np.asarray(query)[None, :])[:, 0]
    order = np.argsort(-scores)
    result = []
    for index in order:
        word = vectors.words[index]
        if word not in excluded:
            result.append((word, float(scores[index])))
            if len(result) == k:
                break
    return result


def analogy_neighbours(
    vectors: WordVectors, a: str, b: str, c: str, k: int = 5
) -> list[tuple[str, float]]:
    """Best answers to "a is to b as c is to ?" with their cosine to b - a + c (unit vectors)."""
    target = _unit(vectors[b]) - _unit(vectors[a]) + _unit(vectors[c])
    return nearest_neighbours(vectors, target, k=k, exclude=(a, b, c))


def analogy(vectors: WordVectors, a: str, b: str, c: str) -> str:
    """The d in a : b :: c : d, e.g. ``analogy(glove, "man", "king", "woman") == "queen"``."""
    return analogy_neighbours(vectors, a, b, c, k=1)[0][0]


# --------------------------------------------------------------------------------------------
# Skip-gram with negative sampling
# --------------------------------------------------------------------------------------------


def sgns_loss(
    center: torch.Tensor,
    context: torch.Tensor,
    negatives: torch.Tensor,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Mean SGNS loss -log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c) over the batch (or
    its sum, ``reduction="sum"``).

    ``center`` (batch, dim) holds the centre words' input vectors v_c, ``context`` (batch, dim)
    the context words' output vectors u_o, ``negatives`` (batch, K, dim) the sampled words'
    output vectors. -log sigma(z) is computed as softplus(-z) = log(1 + e^-z), which torch
    evaluates without overflow for large |z|.
    """
    if center.shape != context.shape or negatives.shape[::2] != center.shape:
        raise ValueError(
            "expected center and context (batch, dim) and negatives (batch, K, dim); got "
            f"{tuple(center.shape)}, {tuple(context.shape)}, {tuple(negatives.shape)}."
        )
    positive = F.softplus(-(center * context).sum(-1))  # (batch,)
    negative = F.softplus(torch.einsum("bd,bkd->bk", center, negatives)).sum(-1)  # (batch,)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
    losses = positive + negative
    return losses.mean() if reduction == "mean" else losses.sum()


class SkipGram(nn.Module):
    """Two embedding tables: ``inputs`` (the word vectors we keep) and ``outputs`` (contexts)."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.inputs = nn.Embedding(vocab_size, dim)
        self.outputs = nn.Embedding(vocab_size, dim)
        # word2vec's initialisation: small random inputs, zero outputs.
        nn.init.uniform_(self.inputs.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.outputs.weight)

    def forward(
        self,
        centers: torch.Tensor,
        contexts: torch.Tensor,
        negatives: torch.Tensor,
        reduction: Literal["mean", "sum"] = "mean",
    ) -> torch.Tensor:
        """Loss for ids ``centers`` (batch,), ``contexts`` (batch,), ``negatives`` (batch, K)."""
        return sgns_loss(
            self.inputs(centers), self.outputs(contexts), self.outputs(negatives), reduction
        )


def skipgram_pairs(
    ids: np.ndarray, window: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(centre, context) id pairs from a 1-D id stream, shape ``(pairs,)`` each.

    word2vec draws a window size from 1..``window`` per centre word, so close neighbours count
    more; keeping a pair at distance d with probability (window - d + 1) / window gives the same
    expected weights without a Python loop.
    """
    centers, contexts = [], []
    for distance in range(1, window + 1):
        keep = (window - distance + 1) / window
        for left, right in ((ids[:-distance], ids[distance:]), (ids[distance:], ids[:-distance])):
            mask = rng.random(len(left)) < keep
            centers.append(left[mask])
            contexts.append(right[mask])
    return np.concatenate(centers), np.concatenate(contexts)
