"""BLEU (Papineni et al. 2002): n-gram overlap of generated text with reference translations.

Matches ``sacrebleu`` (Post 2018, "A Call for Clarity in Reporting BLEU Scores") exactly: the
same 13a tokenisation, clipping, brevity penalty and smoothing (tests compare the two).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# mteval-v13a tokenisation (the WMT standard, sacrebleu's default "13a"): split off ASCII
# punctuation except ' - . , ; split . and , unless they sit between digits; split a dash after
# a digit. Written as the character ranges !-& (-+ / :-@ [-` {-~.
_BLEU_SYMBOLS = re.compile(r"([!-&(-+/:-@\[-`{-~])")
_BLEU_PERIOD_AFTER = re.compile(r"([^0-9])([.,])")
_BLEU_PERIOD_BEFORE = re.compile(r"([.,])([^0-9])")
_BLEU_DIGIT_DASH = re.compile(r"([0-9])(-)")


@dataclass(frozen=True)
class BLEUResult:
    """Corpus BLEU (0-100) and the statistics it was computed from."""

    score: float
    precisions: tuple[float, ...]  # modified n-gram precisions, in percent
    brevity_penalty: float
    hyp_len: int
    ref_len: int
    matches: tuple[int, ...]
    totals: tuple[int, ...]


def tokenize_13a(line: str) -> list[str]:
    """mteval-v13a tokens of ``line`` (what sacrebleu's ``tokenize="13a"`` produces)."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
            line = line.replace(entity, char)
    line = _BLEU_SYMBOLS.sub(r" \1 ", f" {line} ")
    line = _BLEU_PERIOD_AFTER.sub(r"\1 \2 ", line)
    line = _BLEU_PERIOD_BEFORE.sub(r" \1 \2", line)
    return _BLEU_DIGIT_DASH.sub(r"\1 \2 ", line).split()


def _ngrams(tokens: list[str], max_order: int) -> Counter:
    return Counter(
        tuple(tokens[i : i + n])
        for n in range(1, max_order + 1)
        for i in range(len(tokens) - n + 1)
    )


def check_streams(
    metric: str, hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> None:
    """sacrebleu's corpus shapes: a list of hypotheses and a list of reference streams, each
    with one reference per hypothesis (shared by ``bleu`` and ``chrf``)."""
    if isinstance(hypotheses, str) or any(isinstance(r, str) for r in references):
        raise TypeError(
            f"{metric} takes a list of hypothesis strings and a list of reference streams (lists "
            f"of strings): {metric}(['the cat'], [['the cat']]), not bare strings."
        )
    if not references:
        raise ValueError("Give at least one reference stream.")
    for index, stream in enumerate(references):
        if len(stream) != len(hypotheses):
            raise ValueError(
                f"Reference stream {index} has {len(stream)} sentences, the hypotheses "
                f"{len(hypotheses)}: each stream needs one reference per hypothesis."
            )


def bleu(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], max_order: int = 4
) -> BLEUResult:
    """Corpus-level BLEU-4 (Papineni et al. 2002) with sacrebleu's conventions.

        BLEU = BP · exp( (1/N) Σ_n log p_n ),   BP = min(1, exp(1 − r / c))

    ``p_n``: matched n-grams / hypothesis n-grams over the whole corpus, each n-gram's matches
    clipped to its largest count in any one reference; ``c``: hypothesis tokens; ``r``: for each
    sentence the reference length closest to the hypothesis (the shorter on a tie), summed.
    ``references`` is a list of reference *streams*, each as long as ``hypotheses`` (sacrebleu's
    shape: ``[[ref_a_1, ref_a_2, …], [ref_b_1, …]]``). An order with no match gets the "exp"
    smoothing of mteval-v13a (sacrebleu's default): 1 / (2^k · total) for the k-th such order.
    Text is tokenized with ``tokenize_13a``; the score is in 0-100 and equals
    ``sacrebleu.corpus_bleu(hypotheses, references).score`` (tested).
    """
    check_streams("bleu", hypotheses, references)
    statistics = [0] * (2 + 2 * max_order)
    for index, hypothesis in enumerate(hypotheses):
        row = bleu_statistics(hypothesis, [stream[index] for stream in references], max_order)
        statistics = [a + b for a, b in zip(statistics, row, strict=True)]
    return bleu_from_statistics(statistics)


def bleu_statistics(hypothesis: str, references: Sequence[str], max_order: int = 4) -> list[int]:
    """One sentence's BLEU counts: ``[hyp_len, ref_len, matches_1..N, totals_1..N]``.

    Corpus BLEU is ``bleu_from_statistics`` of these rows summed over sentences, which is what
    lets a bootstrap resample sentences without re-tokenizing (``llmcourse.eval.significance``).
    """
    hyp_tokens = tokenize_13a(hypothesis)
    ref_tokens = [tokenize_13a(reference) for reference in references]
    ref_len = min((abs(len(r) - len(hyp_tokens)), len(r)) for r in ref_tokens)[1]
    best: Counter = Counter()
    for tokens in ref_tokens:
        best |= _ngrams(tokens, max_order)  # element-wise max: clip to the best reference
    matches, totals = [0] * max_order, [0] * max_order
    for gram, count in _ngrams(hyp_tokens, max_order).items():
        totals[len(gram) - 1] += count
        matches[len(gram) - 1] += min(count, best[gram])
    return [len(hyp_tokens), ref_len, *matches, *totals]


def bleu_from_statistics(statistics: Sequence[float]) -> BLEUResult:
    """Corpus BLEU from summed ``bleu_statistics`` rows (the order N is read off the length)."""
    max_order = (len(statistics) - 2) // 2
    if max_order < 1 or len(statistics) != 2 + 2 * max_order:
        raise ValueError(
            f"BLEU statistics are [hyp_len, ref_len, N matches, N totals]; got {len(statistics)} "
            "numbers."
        )
    hyp_len, ref_len = int(statistics[0]), int(statistics[1])
    matches = [int(m) for m in statistics[2 : 2 + max_order]]
    totals = [int(t) for t in statistics[2 + max_order :]]
    brevity = 1.0 if hyp_len >= ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    precisions, halvings = [], 1.0
    for match, total in zip(matches, totals, strict=True):
        if total == 0:
            precisions.append(0.0)
        elif match == 0:
            halvings *= 2
            precisions.append(100.0 / (halvings * total))
        else:
            precisions.append(100.0 * match / total)
    if not any(matches):
        score = 0.0
    else:
        logs = [math.log(p) if p > 0 else -9999999999.0 for p in precisions]
        score = brevity * math.exp(sum(logs) / max_order)
    return BLEUResult(
        score, tuple(precisions), brevity, hyp_len, ref_len, tuple(matches), tuple(totals)
    )
