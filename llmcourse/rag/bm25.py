"""BM25 (Robertson et al. 1994; Robertson & Zaragoza 2009): the classic lexical retriever.

For a query ``q`` and document ``d``:

    score(q, d) = Σ_{t ∈ q} idf(t) · f(t, d) · (k1 + 1) / (f(t, d) + k1 · (1 − b + b · |d| / avgdl))

``f(t, d)``: how often term ``t`` occurs in ``d``; ``|d|``: its length in terms; ``avgdl``: the
mean length. ``k1`` saturates term frequency (the 10th "loop" adds far less than the 1st);
``b`` normalises by length (a long page mentions everything once). The inverse document
frequency, with ``n(t)`` of the ``N`` documents containing ``t``, is

    idf(t) = ln( (N − n(t) + 0.5) / (n(t) + 0.5) )

which is negative for terms in more than half of the documents; like ``rank_bm25``'s
``BM25Okapi`` (our parity peer), such terms get ``epsilon`` times the mean idf instead.
It needs no training and no GPU, and is a strong baseline for dense retrievers to beat
(Thakur et al. 2021, BEIR).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_TERM = re.compile(r"[a-z0-9_]+")


def bm25_tokenize(text: str) -> list[str]:
    """Lower-case runs of letters, digits and underscores (so ``__init__`` stays one term)."""
    return _TERM.findall(text.lower())


class BM25:
    """An index over tokenized documents; ``scores(query_terms)`` gives one score per document."""

    def __init__(
        self,
        documents: Sequence[Sequence[str]],
        k1: float = 1.5,
        b: float = 0.75,
        epsilon: float = 0.25,
    ) -> None:
        if not documents:
            raise ValueError("BM25 needs at least one document.")
        if isinstance(documents[0], str):
            raise TypeError("Give tokenized documents (lists of terms): use bm25_tokenize(text).")
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"Need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}.")
        self.k1, self.b = k1, b
        self.term_counts = [Counter(doc) for doc in documents]
        self.lengths = [len(doc) for doc in documents]
        self.average_length = sum(self.lengths) / len(documents)
        document_frequency = Counter(term for counts in self.term_counts for term in counts)
        n = len(documents)
        self.idf = {
            term: math.log(n - df + 0.5) - math.log(df + 0.5)
            for term, df in document_frequency.items()
        }
        floor = epsilon * sum(self.idf.values()) / len(self.idf)
        self.idf = {term: (idf if idf >= 0 else floor) for term, idf in self.idf.items()}

    def score(self, query: Sequence[str], index: int) -> float:
        """BM25 of document ``index`` for the query terms."""
        counts, length = self.term_counts[index], self.lengths[index]
        norm = self.k1 * (1 - self.b + self.b * length / self.average_length)
        total = 0.0
        for term in query:
            f = counts.get(term, 0)
            if f:
                total += self.idf[term] * f * (self.k1 + 1) / (f + norm)
        return total

    def scores(self, query: Sequence[str]) -> list[float]:
        """Scores of every document, in index order."""
        if isinstance(query, str):
            raise TypeError("Give the query as terms: bm25_tokenize(query).")
        return [self.score(query, i) for i in range(len(self.lengths))]

    def search(self, query: str, k: int = 5) -> list[int]:
        """Indices of the ``k`` best documents for a query string, best first."""
        scores = self.scores(bm25_tokenize(query))
        return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
