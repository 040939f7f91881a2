"""A simple safety filter for generated text: a phrase list and a PII check.

Deployed systems screen both the prompt and the output, usually with trained classifiers
(e.g. Llama Guard; Inan et al. 2023) plus rules. This filter is the rules part, small enough to
read: it flags text containing

- a phrase from a category list (``DEFAULT_CATEGORIES``: course-authored examples of requests
  for weapons, self-harm methods and credential theft), matched as whole words, case-insensitive
  (``llmcourse.data.blocklist.blocklist_pattern``);
- personal contact data (e-mail, phone, IP address) found by ``llmcourse.data.pii.scrub_pii``.

``guard_stream`` wraps a stream of text pieces (e.g. decoded tokens from
``llmcourse.infer.stream``) and stops it the moment the accumulated text trips the filter,
replacing the rest with a refusal. Phrase lists are easy to evade (misspellings, paraphrase,
other languages) and over-block innocent text that mentions a listed word (Dixon et al. 2018
measured such false positives against identity terms); measure both kinds of error
(``llmcourse.ethics.fairness``) before relying on one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from llmcourse.data.blocklist import blocklist_pattern
from llmcourse.data.pii import scrub_pii

#: Course-authored example phrases per category (illustrative, deliberately short).
DEFAULT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "weapons": ("build a bomb", "make a bomb", "pipe bomb", "make a weapon", "nerve agent"),
    "self_harm": ("kill myself", "end my life", "hurt myself"),
    "credentials": ("steal a password", "steal passwords", "phishing kit", "credit card dump"),
}

REFUSAL = "[The rest of this response was withheld by the safety filter.]"


@dataclass(frozen=True)
class SafetyVerdict:
    """Whether text passed, and why not: category names and ``pii:<kind>`` entries."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    matches: tuple[str, ...] = field(default=(), compare=False)


class SafetyFilter:
    """Flag text by phrase categories and (optionally) personal data."""

    def __init__(
        self,
        categories: Mapping[str, Sequence[str]] = DEFAULT_CATEGORIES,
        *,
        check_pii: bool = True,
    ) -> None:
        if not categories and not check_pii:
            raise ValueError("Give at least one phrase category or set check_pii=True.")
        self.patterns = {}
        for name, phrases in categories.items():
            if isinstance(phrases, str) or len(phrases) == 0:
                raise ValueError(f"Category {name!r} needs a non-empty list of phrases.")
            self.patterns[name] = blocklist_pattern(phrases)
        self.check_pii = check_pii

    def check(self, text: str) -> SafetyVerdict:
        """The verdict on ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"check() takes a string, got {type(text).__name__}.")
        reasons, matches = [], []
        for name, pattern in self.patterns.items():
            found = pattern.findall(text)
            if found:
                reasons.append(name)
                matches.extend(found)
        if self.check_pii:
            _, counts = scrub_pii(text)
            reasons.extend(f"pii:{kind}" for kind, n in sorted(counts.items()) if n)
        return SafetyVerdict(not reasons, tuple(reasons), tuple(matches))

    def predict(self, texts: Iterable[str]) -> list[int]:
        """1 for every flagged text, 0 for every allowed one (for fairness metrics)."""
        return [0 if self.check(t).allowed else 1 for t in texts]

    def guard_stream(self, pieces: Iterable[str]) -> Iterator[str]:
        """Pass ``pieces`` through until the text so far is flagged; then yield ``REFUSAL``.

        Each piece is released one step late, so a phrase completed by the next piece
        ("build a" + " bomb") is caught before "build a" is shown; the earlier pieces of a
        phrase spread over more than two pieces may already have been shown.
        """
        text, held = "", None
        for piece in pieces:
            text += piece
            if not self.check(text).allowed:
                yield REFUSAL
                return
            if held is not None:
                yield held
            held = piece
        if held is not None:
            yield held
