"""Document quality heuristics in the style of Gopher's MassiveWeb filters (Rae et al. 2021).

Web pages that are menus, tables of links, keyword spam or repeated boilerplate look different
from prose in ways that simple counts expose. Gopher (Rae et al. 2021, appendix A.1.1 and
table A1) removes a document when any of these is outside its range:

| signal | keep when |
|---|---|
| words (whitespace-separated) | 50 ≤ n ≤ 100,000 |
| mean word length | 3 ≤ mean ≤ 10 characters |
| ``#`` per word, ellipses per word | ≤ 0.1 each |
| lines starting with a bullet | ≤ 90% |
| lines ending with an ellipsis | ≤ 30% |
| words with a letter | ≥ 80% |
| English stop words present (the, be, to, of, and, that, have, with) | ≥ 2 of them |
| duplicate lines / paragraphs (share of lines / paragraphs) | ≤ 30% |
| duplicate lines / paragraphs (share of characters) | ≤ 20% |
| most frequent 2-, 3-, 4-gram (share of characters) | ≤ 20%, 18%, 16% |
| characters in repeated 5- ... 10-grams | ≤ 15%, 14%, 13%, 12%, 11%, 10% |

Character shares are over the characters of words (whitespace excluded). "Duplicate" and
"repeated" count the second and later occurrences only, so a text written twice scores 50%.
The stop-word rule is English-only: run it after language identification.
"""

from __future__ import annotations

import itertools
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from llmcourse.data.document import Document, Dropped, Stage
from llmcourse.utils.checks import check_int, check_number, check_type

BULLETS = ("•", "‣", "⁃", "◦", "▪", "▫", "●", "○", "■", "□", "·", "-", "*", "–")
ELLIPSES = ("...", "…")
STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
_LETTER = re.compile(r"[^\W\d_]")  # a word character that is not a digit or underscore


def words_of(text: str) -> list[str]:
    """Whitespace-separated words, punctuation attached (as Gopher counts them)."""
    return text.split()


def mean_word_length(words: Sequence[str]) -> float:
    """Average number of characters per word (0 for no words)."""
    return sum(map(len, words)) / len(words) if words else 0.0


def symbol_to_word_ratio(text: str, words: Sequence[str], symbol: str) -> float:
    """Occurrences of ``symbol`` (``"#"``, ``"..."``) per word; an ellipsis also counts ``…``."""
    count = text.count(symbol) + (text.count("…") if symbol == "..." else 0)
    return count / len(words) if words else 0.0


def line_fraction(text: str, predicate: Callable[[str], bool]) -> float:
    """Share of non-empty lines for which ``predicate(stripped line)`` holds."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return sum(map(predicate, lines)) / len(lines) if lines else 0.0


def alpha_word_fraction(words: Sequence[str]) -> float:
    """Share of words that contain at least one letter."""
    return sum(1 for w in words if _LETTER.search(w)) / len(words) if words else 0.0


def stop_word_count(words: Sequence[str], stop_words: Sequence[str] = STOP_WORDS) -> int:
    """How many distinct ``stop_words`` occur (case-insensitive, punctuation stripped)."""
    present = {w.strip(string.punctuation) for w in set(map(str.lower, words))}
    return len(present.intersection(stop_words))


def duplicate_fractions(parts: Sequence[str]) -> tuple[float, float]:
    """``(share of parts, share of characters)`` that repeat an earlier part exactly.

    Used on lines and on paragraphs; empty parts are ignored.
    """
    parts = [p for p in parts if p.strip()]
    seen: set[str] = set()
    duplicate_parts = duplicate_chars = 0
    for part in parts:
        if part in seen:
            duplicate_parts += 1
            duplicate_chars += len(part)
        seen.add(part)
    total_chars = sum(map(len, parts))
    if not parts:
        return 0.0, 0.0
    return duplicate_parts / len(parts), duplicate_chars / total_chars


def top_ngram_char_fraction(words: Sequence[str], n: int) -> float:
    """Characters covered by the most frequent repeated word ``n``-gram, over all word characters.

    ``count(top n-gram) * characters(top n-gram) / characters(all words)``; 0 if no n-gram
    occurs twice.
    """
    total = sum(map(len, words))
    if len(words) < n or total == 0:
        return 0.0
    counts = Counter(zip(*(words[k:] for k in range(n)), strict=False))  # n-gram tuples
    ngram, count = counts.most_common(1)[0]
    return count * sum(map(len, ngram)) / total if count > 1 else 0.0


def duplicate_ngram_char_fraction(words: Sequence[str], n: int) -> float:
    """Share of word characters inside word ``n``-grams that already occurred earlier.

    Each word counts once even when several repeated n-grams overlap it.
    """
    return duplicate_ngram_char_fractions(words, (n,))[n]


def duplicate_ngram_char_fractions(
    words: Sequence[str], sizes: Iterable[int] = range(5, 11)
) -> dict[int, float]:
    """``duplicate_ngram_char_fraction`` for several ``n`` at once, in about two passes.

    An n-gram can only repeat where its first m-gram (m = the smallest size) repeats, so one
    count of the m-grams finds the few positions worth checking for every larger n.
    """
    sizes = sorted(set(sizes))
    fractions = dict.fromkeys(sizes, 0.0)
    total = sum(map(len, words))
    if not sizes or len(words) < sizes[0] or total == 0:
        return fractions
    # The m-grams as tuples; zip stops at the shortest slice, i.e. at the last full m-gram.
    grams = list(zip(*(words[k:] for k in range(sizes[0])), strict=False))
    counts = Counter(grams)
    candidates = [i for i, gram in enumerate(grams) if counts[gram] > 1]
    prefix = [0, *itertools.accumulate(map(len, words))]  # characters before word i
    for n in sizes:
        seen: set[tuple[str, ...]] = set()
        covered_chars, covered_until = 0, 0
        for i in candidates:
            gram = tuple(words[i : i + n])
            if len(gram) == n and gram in seen:
                # count words i .. i+n-1, minus those already counted by an overlapping repeat
                covered_chars += prefix[i + n] - prefix[max(i, covered_until)]
                covered_until = i + n
            seen.add(gram)
        fractions[n] = covered_chars / total
    return fractions


@dataclass(frozen=True)
class GopherThresholds:
    """Gopher's published limits (Rae et al. 2021, appendix A.1.1, table A1)."""

    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_to_word: float = 0.1
    max_bullet_lines: float = 0.9
    max_ellipsis_lines: float = 0.3
    min_alpha_words: float = 0.8
    min_stop_words: int = 2
    max_duplicate_lines: float = 0.3
    max_duplicate_paragraphs: float = 0.3
    max_duplicate_line_chars: float = 0.2
    max_duplicate_paragraph_chars: float = 0.2
    max_top_ngram_chars: dict[int, float] = field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16}
    )
    max_duplicate_ngram_chars: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )

    def __post_init__(self) -> None:
        for name in ("min_words", "max_words", "min_stop_words"):
            check_int(f"GopherThresholds.{name}", getattr(self, name), 0)
        for name in ("min_mean_word_length", "max_mean_word_length", "max_symbol_to_word"):
            check_number(f"GopherThresholds.{name}", getattr(self, name), 0)
        fractions = (
            "max_bullet_lines", "max_ellipsis_lines", "min_alpha_words", "max_duplicate_lines",
            "max_duplicate_paragraphs", "max_duplicate_line_chars",
            "max_duplicate_paragraph_chars",
        )  # fmt: skip
        for name in fractions:
            check_number(f"GopherThresholds.{name}", getattr(self, name), 0, 1)
        for name in ("max_top_ngram_chars", "max_duplicate_ngram_chars"):
            limits = getattr(self, name)
            check_type(f"GopherThresholds.{name}", limits, dict, "a dict {n: fraction}")
            for n, fraction in limits.items():
                check_int(f"GopherThresholds.{name} key", n, 1)
                check_number(f"GopherThresholds.{name}[{n}]", fraction, 0, 1)
        for low, high in (
            ("min_words", "max_words"),
            ("min_mean_word_length", "max_mean_word_length"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(
                    f"GopherThresholds.{low}={getattr(self, low)} exceeds {high}="
                    f"{getattr(self, high)}: no text could pass."
                )


def gopher_failure(text: str, limits: GopherThresholds | None = None) -> tuple[str, str] | None:
    """The first Gopher rule ``text`` breaks as ``(reason, detail)``, or ``None`` if it passes.

    Cheap rules run first and the word-count rule guards the expensive n-gram ones, so a
    megabyte-long single line costs one split, not ten n-gram passes.
    """
    limits = limits or GopherThresholds()
    words = words_of(text)
    n = len(words)
    if not limits.min_words <= n <= limits.max_words:
        return "word_count", f"{n} words, outside [{limits.min_words}, {limits.max_words}]"
    mean = mean_word_length(words)
    if not limits.min_mean_word_length <= mean <= limits.max_mean_word_length:
        return "mean_word_length", f"mean word length {mean:.1f}"
    for symbol in ("#", "..."):
        ratio = symbol_to_word_ratio(text, words, symbol)
        if ratio > limits.max_symbol_to_word:
            return "symbol_ratio", f"{ratio:.2f} {symbol!r} per word"
    bullets = line_fraction(text, lambda line: line.startswith(BULLETS))
    if bullets > limits.max_bullet_lines:
        return "bullet_lines", f"{bullets:.0%} of lines start with a bullet"
    ellipsis = line_fraction(text, lambda line: line.endswith(ELLIPSES))
    if ellipsis > limits.max_ellipsis_lines:
        return "ellipsis_lines", f"{ellipsis:.0%} of lines end with an ellipsis"
    alpha = alpha_word_fraction(words)
    if alpha < limits.min_alpha_words:
        return "alpha_words", f"only {alpha:.0%} of words have a letter"
    stops = stop_word_count(words)
    if stops < limits.min_stop_words:
        return "stop_words", f"{stops} of the stop words {STOP_WORDS}"
    checks = [
        ("line", text.split("\n"), limits.max_duplicate_lines, limits.max_duplicate_line_chars),
        (
            "paragraph",
            text.split("\n\n"),
            limits.max_duplicate_paragraphs,
            limits.max_duplicate_paragraph_chars,
        ),
    ]
    for unit, parts, max_share, max_chars in checks:
        share, chars = duplicate_fractions(parts)
        if share > max_share or chars > max_chars:
            return f"duplicate_{unit}s", f"{share:.0%} of {unit}s ({chars:.0%} of characters)"
    for size, limit in limits.max_top_ngram_chars.items():
        value = top_ngram_char_fraction(words, size)
        if value > limit:
            return "top_ngram", f"top {size}-gram covers {value:.0%} of characters"
    repeated = duplicate_ngram_char_fractions(words, limits.max_duplicate_ngram_chars)
    for size, limit in limits.max_duplicate_ngram_chars.items():
        value = repeated[size]
        if value > limit:
            return "duplicate_ngrams", f"repeated {size}-grams cover {value:.0%} of characters"
    return None


def quality_signals(text: str) -> dict[str, float]:
    """Every signal of the table above, by name (for plots and for choosing thresholds)."""
    words = words_of(text)
    line_share, line_chars = duplicate_fractions(text.split("\n"))
    paragraph_share, paragraph_chars = duplicate_fractions(text.split("\n\n"))
    signals = {
        "words": float(len(words)),
        "mean_word_length": mean_word_length(words),
        "hash_per_word": symbol_to_word_ratio(text, words, "#"),
        "ellipsis_per_word": symbol_to_word_ratio(text, words, "..."),
        "bullet_lines": line_fraction(text, lambda line: line.startswith(BULLETS)),
        "ellipsis_lines": line_fraction(text, lambda line: line.endswith(ELLIPSES)),
        "alpha_words": alpha_word_fraction(words),
        "stop_words": float(stop_word_count(words)),
        "duplicate_lines": line_share,
        "duplicate_line_chars": line_chars,
        "duplicate_paragraphs": paragraph_share,
        "duplicate_paragraph_chars": paragraph_chars,
    }
    for n in (2, 3, 4):
        signals[f"top_{n}gram_chars"] = top_ngram_char_fraction(words, n)
    for n, value in duplicate_ngram_char_fractions(words, range(5, 11)).items():
        signals[f"duplicate_{n}gram_chars"] = value
    return signals


class QualityFilter(Stage):
    """Drop documents that break a Gopher rule; the reason is the rule's name."""

    name = "quality"

    def __init__(self, limits: GopherThresholds | None = None) -> None:
        self.limits = limits or GopherThresholds()

    def process(self, document: Document) -> Document | Dropped:
        failure = gopher_failure(document.text, self.limits)
        return document if failure is None else Dropped(document, *failure)
