"""Preference pairs from a transparent rule: a stand-in for human raters.

RLHF learns from people who compare two responses to the same prompt and say which is better
(Christiano et al. 2017; Ouyang et al. 2022, §3.4). We have no raters, so a rule plays their
part: ``RealWordRule`` scores a text by the fraction of its words that are real words, and
``label_pair`` prefers the response with the higher score (ties say nothing and are dropped).
Because the rule is known and simple, we can check what the reward model learned and watch a
policy exploit it (a text of one real word repeated scores perfectly): real raters are noisier
and harder to exploit, but not impossible to.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z']+")


def word_counts(text: str) -> Counter:
    """How often each lower-cased word (letters and apostrophes) occurs in ``text``."""
    return Counter(word.lower() for word in _WORD.findall(text))


class RealWordRule:
    """Score a text by the fraction of its words that are real words: ones that occur at least
    ``min_count`` times in a reference text (the training plays, in the lessons).

    A small model's samples mix words with near-misses ("lovve", "thifg"); a rater who prefers
    correctly spelled words is what this rule stands in for. A text with no words scores 0.
    """

    def __init__(self, reference_text: str, min_count: int = 5) -> None:
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}.")
        counts = word_counts(reference_text)
        self.vocabulary = frozenset(w for w, c in counts.items() if c >= min_count)
        if not self.vocabulary:
            raise ValueError(f"No word occurs {min_count} times in the reference text.")

    def __call__(self, text: str) -> float:
        words = [word.lower() for word in _WORD.findall(text)]
        if not words:
            return 0.0
        return sum(word in self.vocabulary for word in words) / len(words)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt and two different responses, the ``chosen`` one preferred."""

    prompt: str
    chosen: str
    rejected: str

    def __post_init__(self) -> None:
        if self.chosen == self.rejected:
            raise ValueError(
                "chosen and rejected are the same text: an identical pair carries no preference "
                "(and gives a zero Bradley-Terry margin forever). Drop it."
            )


def label_pair(
    prompt: str,
    response_a: str,
    response_b: str,
    score: Callable[[str], float],
) -> PreferencePair | None:
    """The pair ordered by ``score`` (higher is chosen), or ``None`` when the scores tie.

    Raises ``ValueError`` for identical responses.
    """
    if response_a == response_b:
        raise ValueError(
            f"Both responses are {response_a!r}: a rater cannot prefer a text to itself."
        )
    score_a, score_b = score(response_a), score(response_b)
    if score_a == score_b:
        return None
    if score_a > score_b:
        return PreferencePair(prompt, response_a, response_b)
    return PreferencePair(prompt, response_b, response_a)


def label_pairs(
    prompts: Sequence[str],
    responses_a: Sequence[str],
    responses_b: Sequence[str],
    score: Callable[[str], float],
) -> list[PreferencePair]:
    """``label_pair`` over aligned lists, skipping ties and identical responses."""
    if not len(prompts) == len(responses_a) == len(responses_b):
        raise ValueError("prompts, responses_a and responses_b must have the same length.")
    pairs = []
    for prompt, a, b in zip(prompts, responses_a, responses_b, strict=True):
        if a != b and (pair := label_pair(prompt, a, b, score)) is not None:
            pairs.append(pair)
    return pairs
