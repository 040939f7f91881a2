"""Robustness: does accuracy survive the small noise real users type?

Models that score well on clean benchmarks can fall apart on misspellings (Belinkov & Bisk
2018, "Synthetic and Natural Noise Both Break Neural Machine Translation") or odd casing and
spacing. We perturb the *question* text only (the options stay clean) and measure accuracy
again. Each perturbation is seeded, so the same text always gets the same noise.

- ``"typos"``: in each word of 4+ letters, with probability ``rate``, swap two adjacent inner
  letters (first and last stay: the form people still read easily);
- ``"case"``: with probability ``rate``, a word is upper-cased;
- ``"whitespace"``: with probability ``rate``, a gap between words becomes 2-3 spaces or a
  newline.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal, TypeVar

from llmcourse.eval.multiple_choice import MCQuestion

Score = TypeVar("Score")

Perturbation = Literal["typos", "case", "whitespace"]
PERTURBATIONS: tuple[Perturbation, ...] = ("typos", "case", "whitespace")
_WORD = re.compile(r"[A-Za-z]+")


def perturb(text: str, kind: Perturbation, rate: float = 0.2, seed: int = 0) -> str:
    """``text`` with ``kind`` noise applied at ``rate`` (see the module docstring)."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"kind must be one of {PERTURBATIONS}, got {kind!r}.")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate is a probability in [0, 1], got {rate!r}.")
    rng = random.Random(f"{seed}-{kind}-{text}")
    if kind == "whitespace":
        gaps = ["  ", "   ", "\n"]
        return re.sub(r" ", lambda _: rng.choice(gaps) if rng.random() < rate else " ", text)

    def change(match: re.Match) -> str:
        word = match.group(0)
        if rng.random() >= rate:
            return word
        if kind == "case":
            return word.upper()
        if len(word) < 4:
            return word
        i = rng.randrange(1, len(word) - 2)  # swap letters i and i+1, both inside the word
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]

    return _WORD.sub(change, text)


def robustness_report(
    score: Callable[[Sequence[MCQuestion]], Score],
    questions: Sequence[MCQuestion],
    kinds: Sequence[Perturbation] = PERTURBATIONS,
    rate: float = 0.2,
    seed: int = 0,
    clean: Score | None = None,
) -> dict[str, Score]:
    """``{"clean": score(questions), kind: score(perturbed questions), ...}``.

    ``score`` maps a list of questions to a number (e.g. accuracy from
    ``score_multiple_choice``) or to anything else, such as the per-question ``correct`` array
    that a paired bootstrap of the drop needs; only each question's text is perturbed.
    ``clean``: the score of the unperturbed questions when you already have it, to skip
    scoring them again.
    """
    report = {"clean": score(questions) if clean is None else clean}
    for kind in kinds:
        noisy = [replace(q, question=perturb(q.question, kind, rate, seed)) for q in questions]
        report[kind] = score(noisy)
    return report
