"""Perplexity filtering: keep text that a small reference language model finds plausible.

CCNet (Wenzek et al. 2019) trained a 5-gram Kneser-Ney model on Wikipedia and scored every
Common Crawl paragraph with it; low perplexity means "reads like Wikipedia", very high
perplexity means garbled text, lists of names, keyword spam or another language.

    PPL(x) = exp(-(1/N) Σ_t log p(x_t | x_<t))

Any scorer works (an n-gram model, a small Transformer): the stage takes a function from text to
perplexity, so it never depends on which model you use. The threshold is a fixed number so the
stage streams; choose it from the scores of a sample (e.g. a high percentile of clean text).
The reference model's taste becomes the corpus's taste: a filter trained on Wikipedia also
removes dialects and registers Wikipedia lacks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llmcourse.data.document import Document, Dropped, Stage


class PerplexityFilter(Stage):
    """Drop documents whose perplexity under ``score`` exceeds ``max_perplexity``.

    ``score(text) -> perplexity``; the value goes to ``meta["perplexity"]``. A scorer that
    returns NaN or a non-positive value is a bug in the scorer and raises.
    """

    name = "perplexity"

    def __init__(self, score: Callable[[str], float], max_perplexity: float) -> None:
        if not callable(score):
            raise TypeError("score must be a function text -> perplexity.")
        if not max_perplexity > 0:
            raise ValueError(f"max_perplexity must be positive, got {max_perplexity}.")
        self.score = score
        self.max_perplexity = max_perplexity

    def process(self, document: Document) -> Document | Dropped:
        perplexity = float(self.score(document.text))
        if math.isnan(perplexity) or perplexity <= 0:
            raise ValueError(
                f"The scorer returned perplexity {perplexity} for document {document.id!r}; "
                "perplexities are positive numbers (use inf for text the model cannot score)."
            )
        tagged = document.with_meta(perplexity=perplexity)
        if perplexity > self.max_perplexity:
            return Dropped(
                tagged, "perplexity", f"perplexity {perplexity:.0f} > {self.max_perplexity:.0f}"
            )
        return tagged
