"""A simple safety filter for generated text: a phrase list and a PII check.

Deployed systems screen both the prompt and the output, usually with trained classifiers
(e.g. Llama Guard; Inan et al. 2023) plus rules. This filter is the rules part, small enough to
read: it flags text containing

- a phrase from a category list (``DEFAULT_CATEGORIES``: course-authored examples of requests
  for weapons, self-harm methods and credential theft), matched as whole words, case-insensitive
  (``llmcourse.data.blocklist.blocklist_pattern``);
- personal contact data (e-mail, phone, IP address) found by ``llmcourse.data.pii.scrub_pii``.

It is a ``llmcourse.ethics.moderation.Moderator``: ``moderate(text)`` gives the same decision as
an OpenAI-shaped ``ModerationResult`` (categories ``weapons``, ``self_harm``, ``credentials``
and ``pii``; score 1.0 for a category that matched), and ``guard_stream`` (from ``Moderator``)
stops a stream of text pieces the moment the text so far trips the filter.

Phrase lists are easy to evade (misspellings, paraphrase, other languages) and over-block
innocent text that mentions a listed word (Dixon et al. 2018 measured such false positives
against identity terms); measure both kinds of error before relying on one.
``llmcourse.ethics.safety_eval`` does, on the course's labelled set, against a classifier on
sentence embeddings (``llmcourse.ethics.safety_classifier``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmcourse.data.blocklist import blocklist_pattern
from llmcourse.data.pii import scrub_pii

# REFUSAL is re-exported: code written before ``Moderator`` existed imports it from here.
from llmcourse.ethics.moderation import REFUSAL as REFUSAL
from llmcourse.ethics.moderation import ModerationResult, Moderator

#: Course-authored example phrases per category (illustrative, deliberately short).
DEFAULT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "weapons": ("build a bomb", "make a bomb", "pipe bomb", "make a weapon", "nerve agent"),
    "self_harm": ("kill myself", "end my life", "hurt myself"),
    "credentials": ("steal a password", "steal passwords", "phishing kit", "credit card dump"),
}


@dataclass(frozen=True)
class SafetyVerdict:
    """Whether text passed, and why not: category names and ``pii:<kind>`` entries."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    matches: tuple[str, ...] = field(default=(), compare=False)


class SafetyFilter(Moderator):
    """Flag text by phrase categories and (optionally) personal data."""

    name = "phrase-list"

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

    def _moderate(self, texts: list[str]) -> list[ModerationResult]:
        results = []
        names = [*self.patterns, *(["pii"] if self.check_pii else [])]
        for text in texts:
            verdict = self.check(text)
            fired = {r.split(":")[0] for r in verdict.reasons}
            categories = {name: name in fired for name in names}
            scores = {name: float(on) for name, on in categories.items()}
            flagged = not verdict.allowed
            results.append(
                ModerationResult(flagged, categories, scores, verdict.reasons, self.name)
            )
        return results
