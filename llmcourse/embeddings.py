"""Word and sentence vectors: similarity, neighbours, analogies, skip-gram with negative sampling.

A one-hot vector says only *which* word this is: every pair of words is equally far apart. A
dense vector (50-300 numbers) learned from text places words that occur in similar contexts
near each other ("you shall know a word by the company it keeps", Firth 1957), and directions
in the space carry meaning: king - man + woman lands near queen (Mikolov et al. 2013a).

- ``WordVectors``: a vocabulary and one vector per word (``llmcourse.pretrained.glove()`` gives
  GloVe's, ``train_sgns`` learns new ones); ``SentenceEncoder``: a BERT whose mean-pooled,
  normalised token states embed a whole sentence (``llmcourse.pretrained.minilm()``).
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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class WordVectors:
    """A vocabulary and its vectors: ``words[i]`` has vector ``vectors[i]`` (float32)."""

    words: list[str]
    vectors: np.ndarray  # (vocab, dim)

    def __post_init__(self) -> None:
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        try:
            return self.vectors[self.index[word]]
        except KeyError:
            raise KeyError(f"{word!r} is not in the vocabulary (GloVe is lower-case).") from None

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


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
# Sentence vectors
# --------------------------------------------------------------------------------------------


class SentenceEncoder:
    """all-MiniLM-L6-v2 (Wang et al. 2020; Reimers & Gurevych 2019): a 6-layer BERT whose
    mean-pooled, L2-normalised token states embed a sentence in 384 dimensions.

    ``model`` is a ``transformers.BertModel`` and ``tokenizer`` its WordPiece tokenizer.
    """

    max_length = 256  # what the model was trained with (sentence_bert_config.json)

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer

    def encode(self, sentences: str | Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Unit-length embeddings, shape ``(n_sentences, 384)``."""
        if isinstance(sentences, str):
            sentences = [sentences]
        parts = []
        with torch.no_grad():
            for start in range(0, len(sentences), batch_size):
                batch = self.tokenizer(
                    list(sentences[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state  # (batch, seq, 384)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                parts.append(F.normalize(pooled, dim=-1))
        return torch.cat(parts) if parts else torch.empty(0, self.model.config.hidden_size)


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
