"""Sentence-level objectives: BERT's next-sentence prediction and contrastive InfoNCE.

Next-sentence prediction (NSP; Devlin et al. 2019, §3.1 "Task #2"): BERT reads
``[CLS] A [SEP] B [SEP]`` and a small head on the [CLS] vector says whether B really followed A
(50%) or was drawn from another document (50%). RoBERTa (Liu et al. 2019, §4.2) found that
dropping NSP and training on longer contiguous text matches or beats it, and later encoders
left it out; it is here so you can see what it was.

InfoNCE (van den Oord et al. 2018; used for sentence embeddings by SimCSE, Gao et al. 2021, and
sentence-transformers' "multiple negatives ranking"): in a batch of n pairs (a_i, b_i), each
a_i must pick its own b_i out of all n b's. It is cross-entropy over cosine similarities:

    L = −1/n Σ_i log( exp(s(a_i, b_i)/τ) / Σ_j exp(s(a_i, b_j)/τ) ),    s = cosine similarity

The other n − 1 pairs of the batch serve as negatives for free; the temperature τ sets how
sharply the model must separate them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IS_NEXT, NOT_NEXT = 0, 1  # transformers' next_sentence_label convention


def next_sentence_pairs(
    documents: Sequence[Sequence[str]], seed: int = 0
) -> list[tuple[str, str, int]]:
    """``(sentence_a, sentence_b, label)`` for every consecutive pair of sentences.

    ``documents`` is a list of documents, each a list of sentences. With probability 1/2, B is
    the true next sentence (label ``IS_NEXT`` = 0), otherwise a sentence from another document
    (``NOT_NEXT`` = 1) — from another document so that topic alone gives it away, which is why
    NSP turned out to be too easy to teach much.
    """
    if sum(1 for d in documents if d) < 2:
        raise ValueError("next_sentence_pairs needs at least two non-empty documents.")
    rng = random.Random(seed)
    pairs = []
    for index, document in enumerate(documents):
        for a, b in itertools.pairwise(document):
            if rng.random() < 0.5:
                pairs.append((a, b, IS_NEXT))
                continue
            other = rng.choice([d for i, d in enumerate(documents) if i != index and d])
            pairs.append((a, rng.choice(other), NOT_NEXT))
    return pairs


class NextSentenceHead(nn.Module):
    """BERT's pooler and NSP classifier: ``(batch, seq, d_model)`` → logits ``(batch, 2)``.

    The pooler is ``tanh(W h_[CLS] + b)`` on the first position's hidden state; the classifier
    is one linear layer to {IsNext, NotNext}. Same layout as ``transformers``' ``BertPooler`` +
    ``BertOnlyNSPHead`` (``pooler.dense``, ``classifier``).
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.pooler = nn.Linear(d_model, d_model)
        self.classifier = nn.Linear(d_model, 2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hidden_states.dim() != 3:
            raise ValueError(
                f"hidden_states must be (batch, seq, d_model), got {tuple(hidden_states.shape)}."
            )
        pooled = torch.tanh(self.pooler(hidden_states[:, 0]))
        return self.classifier(pooled)


def next_sentence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the NSP logits ``(batch, 2)`` against labels ``(batch,)``."""
    if logits.dim() != 2 or logits.shape[-1] != 2:
        raise ValueError(f"NSP logits must be (batch, 2), got {tuple(logits.shape)}.")
    return F.cross_entropy(logits.float(), labels)


def info_nce_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    temperature: float = 0.05,
    *,
    symmetric: bool = False,
) -> torch.Tensor:
    """Contrastive loss with in-batch negatives; ``anchors`` and ``positives`` are ``(n, dim)``.

    Row i of ``anchors`` and row i of ``positives`` form a positive pair; every other row of
    ``positives`` is a negative for it. ``symmetric=True`` averages both directions (a→b and
    b→a), as CLIP does (Radford et al. 2021).
    """
    if anchors.dim() != 2 or anchors.shape != positives.shape:
        raise ValueError(
            f"anchors and positives must both be (n, dim) with the same shape, got "
            f"{tuple(anchors.shape)} and {tuple(positives.shape)}."
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    a = F.normalize(anchors.float(), dim=-1)
    b = F.normalize(positives.float(), dim=-1)
    similarities = a @ b.T / temperature  # (n, n): row i, column j = s(a_i, b_j) / τ
    targets = torch.arange(len(a), device=a.device)
    loss = F.cross_entropy(similarities, targets)
    if symmetric:
        loss = (loss + F.cross_entropy(similarities.T, targets)) / 2
    return loss
