"""chrF (Popović 2015): the F-score of character n-grams, for text that differs inside words.

    P_n = matched n-grams / hypothesis n-grams,  R_n = matched / reference n-grams  (n = 1..6)
    chrF_β = (1 + β²) · P · R / (β² · P + R),    P, R: means of P_n, R_n over the orders present

Counts are summed over the corpus before dividing; spaces are removed first, so a word split or
joined differently costs little; β = 2 weighs recall twice as much as precision. BLEU's word
n-grams score a one-letter spelling change as a whole wrong word; chrF gives it partial credit,
which is why spelling tasks report both. Matches sacrebleu's ``CHRF()`` (chrF2, no word
n-grams, its default "effective order" averaging) exactly: the tests compare the two.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from llmcourse.eval.bleu import check_streams


@dataclass(frozen=True)
class CHRFResult:
    """Corpus chrF (0-100) and the summed ``[hyp, ref, match]`` counts per order it came from."""

    score: float
    statistics: tuple[int, ...]


def _char_ngrams(text: str, order: int) -> list[Counter]:
    text = "".join(text.split())
    return [Counter(text[i : i + n] for i in range(len(text) - n + 1)) for n in range(1, order + 1)]


def chrf_statistics(
    hypothesis: str, references: Sequence[str], char_order: int = 6, beta: float = 2.0
) -> list[int]:
    """One sentence's counts ``[hyp_1, ref_1, match_1, …, hyp_N, ref_N, match_N]``.

    With several references, the one giving this sentence the best chrF is used (sacrebleu's
    rule). Sum the rows over sentences and pass them to ``chrf_from_statistics``.
    """
    hyp = _char_ngrams(hypothesis, char_order)
    best, best_score = [], -1.0
    for reference in references:
        row = []
        for hyp_grams, ref_grams in zip(hyp, _char_ngrams(reference, char_order), strict=True):
            matched = sum(min(count, ref_grams[gram]) for gram, count in hyp_grams.items())
            # An order the reference is too short for counts no hypothesis n-grams either.
            row += [sum(hyp_grams.values()) if ref_grams else 0, sum(ref_grams.values()), matched]
        score = chrf_from_statistics(row, beta).score
        if score > best_score:
            best, best_score = row, score
    return best


def chrf_from_statistics(statistics: Sequence[float], beta: float = 2.0) -> CHRFResult:
    """chrF from summed ``chrf_statistics`` rows (orders with no n-grams on either side skipped)."""
    if len(statistics) % 3 or len(statistics) == 0:
        raise ValueError(
            f"chrF statistics are [hyp, ref, match] per order; got {len(statistics)} numbers."
        )
    precision = recall = 0.0
    effective = 0
    for index in range(0, len(statistics), 3):
        n_hyp, n_ref, n_match = statistics[index : index + 3]
        if n_hyp > 0 and n_ref > 0:
            precision += n_match / n_hyp
            recall += n_match / n_ref
            effective += 1
    if effective:
        precision, recall = precision / effective, recall / effective
    factor = beta**2
    score = 0.0
    if precision + recall:
        # sacrebleu's order of operations, bit for bit: two references can tie exactly in
        # exact arithmetic, and then the rounding decides which one a sentence is scored on.
        score = (1 + factor) * precision * recall
        score /= (factor * precision) + recall
        score = 100 * score
    return CHRFResult(score, tuple(int(s) for s in statistics))


def chrf(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    char_order: int = 6,
    beta: float = 2.0,
) -> CHRFResult:
    """Corpus chrF with sacrebleu's shapes: ``references`` is a list of reference *streams*,
    each as long as ``hypotheses``. Equals ``sacrebleu.corpus_chrf(hypotheses, references)``."""
    check_streams("chrf", hypotheses, references)
    if char_order < 1:
        raise ValueError(f"char_order must be at least 1, got {char_order}.")
    total = [0] * (3 * char_order)
    for index, hypothesis in enumerate(hypotheses):
        row = chrf_statistics(hypothesis, [s[index] for s in references], char_order, beta)
        total = [a + b for a, b in zip(total, row, strict=True)]
    return chrf_from_statistics(total, beta)
