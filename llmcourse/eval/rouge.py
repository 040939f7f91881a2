"""ROUGE-L (Lin 2004): how much of a reference a generated text covers, in order.

ROUGE-L compares word sequences through their **longest common subsequence** (LCS): words that
appear in both texts in the same order, not necessarily next to each other.

    P = LCS(ref, hyp) / |hyp|,   R = LCS(ref, hyp) / |ref|,   F = 2PR / (P + R)

Recall asks how much of the reference the hypothesis reproduced; precision how much of the
hypothesis was in the reference. Tokens are those of Google's ``rouge-score`` package
(lower-cased runs of ``[a-z0-9]``), so ``rouge_l`` equals its ``rougeL`` without stemming
(tested). The LCS is the classic dynamic programme (Wagner & Fischer 1974), O(|ref|·|hyp|).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class RougeScore:
    """Precision, recall and F1 of one hypothesis against one reference (each in [0, 1])."""

    precision: float
    recall: float
    fmeasure: float


def rouge_tokenize(text: str) -> list[str]:
    """Lower-case words of ``[a-z0-9]`` (anything else separates words), as ``rouge-score``."""
    if not isinstance(text, str):
        raise TypeError(f"ROUGE compares strings, got {type(text).__name__}.")
    return _NON_ALPHANUMERIC.sub(" ", text.lower()).split()


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of ``a`` and ``b``.

    ``table[i][j]`` is the LCS of ``a[:i]`` and ``b[:j]``: one more than ``table[i-1][j-1]``
    when ``a[i-1] == b[j-1]``, else the larger of dropping the last item of either. Only the
    previous row is needed, so memory is O(|b|).
    """
    previous = [0] * (len(b) + 1)
    for item in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(
                previous[j - 1] + 1 if item == other else max(previous[j], current[j - 1])
            )
        previous = current
    return previous[-1]


def rouge_l(hypothesis: str, reference: str) -> RougeScore:
    """ROUGE-L of one ``hypothesis`` against one ``reference`` (both plain strings).

    Empty token lists score 0 (nothing to cover, or nothing covered).
    """
    hyp, ref = rouge_tokenize(hypothesis), rouge_tokenize(reference)
    if not hyp or not ref:
        return RougeScore(0.0, 0.0, 0.0)
    common = lcs_length(ref, hyp)
    precision, recall = common / len(hyp), common / len(ref)
    f = 2 * precision * recall / (precision + recall) if common else 0.0
    return RougeScore(precision, recall, f)


def corpus_rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> RougeScore:
    """The mean of sentence-level ROUGE-L over pairs (what summarisation papers report)."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("Give lists of strings (one reference per hypothesis), not a string.")
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(
            f"Need as many references as hypotheses (at least one); got {len(hypotheses)} "
            f"hypotheses and {len(references)} references."
        )
    scores = [rouge_l(h, r) for h, r in zip(hypotheses, references, strict=True)]
    n = len(scores)
    return RougeScore(
        sum(s.precision for s in scores) / n,
        sum(s.recall for s in scores) / n,
        sum(s.fmeasure for s in scores) / n,
    )
