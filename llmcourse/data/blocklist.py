"""Blocklist filtering: drop documents that contain any listed word or phrase.

C4 (Raffel et al. 2020) removed every page containing a word from the "List of Dirty, Naughty,
Obscene or Otherwise Bad Words"; the same mechanism removes spam vocabulary or, with a list of
benchmark questions, evaluation data that must not leak into training. Matching is on whole
words, case-insensitive, so "class" does not match "classic" and "Casino" matches "casino".
A blunt instrument: it also removes medical and educational pages that use a listed word, which
Dodge et al. (2021) showed falls hardest on text by and about minority groups.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from llmcourse.data.document import Document, Dropped, Stage


def blocklist_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """One compiled regex matching any of ``words`` as whole words, ignoring case.

    Longer phrases come first so that "free money" wins over "free" in reports.
    """
    cleaned = sorted({w.strip().casefold() for w in words if w.strip()}, key=len, reverse=True)
    if not cleaned:
        raise ValueError("The blocklist is empty; give at least one word or phrase.")
    alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in cleaned)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


class BlocklistFilter(Stage):
    """Drop a document (reason ``"blocklist"``) when it contains a listed word or phrase."""

    name = "blocklist"

    def __init__(self, words: Iterable[str]) -> None:
        if isinstance(words, str):
            raise TypeError("Give the blocklist as a list of words, not one string.")
        self.pattern = blocklist_pattern(words)

    def process(self, document: Document) -> Document | Dropped:
        match = self.pattern.search(document.text)
        if match is None:
            return document
        return Dropped(document, "blocklist", f"contains {match.group(0).lower()!r}")
