"""Preference pairs from transparent rules: stand-ins for human raters.

RLHF learns from people who compare two responses to the same prompt and say which is better
(Christiano et al. 2017; Ouyang et al. 2022, §3.4). We have no raters, so a rule plays their
part and ``label_pair`` prefers the response it scores higher. Ties say nothing and are
dropped, and so are near-ties when a ``min_margin`` is given: real annotation interfaces let
raters answer "about the same" (Touvron et al. 2023, Llama 2, §3.2.1, collect a "negligibly
better/unsure" grade), and a reward model cannot learn a difference nobody can see. Two rules:

- ``LipogramRule`` prefers text that avoids a letter (by default "e", the letter Perec's novel
  *La Disparition*, 1969, and Wright's *Gadsby*, 1939, do without): the fraction of letters
  that are not that letter. It is a sum of per-character features, so a reward model reading
  characters learns it from a few hundred pairs; the lessons use it.
- ``RealWordRule`` prefers correctly spelled words: the fraction of words that occur often in a
  reference text. Closer to what a person would want, and much harder for a tiny model to learn
  from characters in seconds.

Because a rule is known and simple, we can check what the reward model learned and watch a
policy exploit it (``"aaaa aaaa"`` has no "e"; one real word repeated spells perfectly): real
raters are noisier and harder to exploit, but not impossible to.
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


class LipogramRule:
    """Score a text by the fraction of its letters that are not ``letter`` (case-insensitive).

    1.0 for a text without the letter, about 0.88 for English with "e" (one letter in eight is
    an "e"). A text with no letters at all scores 0: saying nothing is not a lipogram.
    """

    def __init__(self, letter: str = "e") -> None:
        if len(letter) != 1 or not letter.isalpha():
            raise ValueError(f"letter must be a single letter such as 'e', got {letter!r}.")
        self.letter = letter.lower()

    def __call__(self, text: str) -> float:
        letters = [c.lower() for c in text if c.isalpha()]
        if not letters:
            return 0.0
        return sum(c != self.letter for c in letters) / len(letters)


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
    min_margin: float = 0.0,
) -> PreferencePair | None:
    """The pair ordered by ``score`` (higher is chosen), or ``None`` when the scores differ by
    ``min_margin`` or less (0: only exact ties).

    Raises ``ValueError`` for identical responses or a negative ``min_margin``.
    """
    if response_a == response_b:
        raise ValueError(
            f"Both responses are {response_a!r}: a rater cannot prefer a text to itself."
        )
    if min_margin < 0:
        raise ValueError(f"min_margin must be 0 or more, got {min_margin}.")
    score_a, score_b = score(response_a), score(response_b)
    if abs(score_a - score_b) <= min_margin:
        return None
    if score_a > score_b:
        return PreferencePair(prompt, response_a, response_b)
    return PreferencePair(prompt, response_b, response_a)


def label_pairs(
    prompts: Sequence[str],
    responses_a: Sequence[str],
    responses_b: Sequence[str],
    score: Callable[[str], float],
    min_margin: float = 0.0,
) -> list[PreferencePair]:
    """``label_pair`` over aligned lists, skipping (near-)ties and identical responses."""
    if not len(prompts) == len(responses_a) == len(responses_b):
        raise ValueError("prompts, responses_a and responses_b must have the same length.")
    pairs = []
    for prompt, a, b in zip(prompts, responses_a, responses_b, strict=True):
        if a != b and (pair := label_pair(prompt, a, b, score, min_margin)) is not None:
            pairs.append(pair)
    return pairs
