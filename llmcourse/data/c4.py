"""Line-level cleaning in the style of C4, the Colossal Clean Crawled Corpus (Raffel et al. 2020).

T5's authors cleaned Common Crawl with rules on lines and pages (section 2.2 of the paper):

- keep only lines that end in terminal punctuation (a period, exclamation mark, question mark
  or closing quotation mark) and that have at least 5 words;
- remove lines that mention "javascript" (pages that ask the reader to enable it);
- drop the page if it contains "lorem ipsum" (placeholder text) or a curly bracket "{"
  (code rarely belongs in natural-language pre-training data);
- drop the page if fewer than 3 sentences remain.

The page-level "bad words" rule of C4 is ``llmcourse.data.blocklist.BlocklistFilter``.
These rules were written for web pages; verse and code lose most of their lines to them,
which is why they are a separate stage you can leave out.
"""

from __future__ import annotations

import re

from llmcourse.data.document import Document, Dropped, Stage

TERMINAL = (".", "!", "?", '"', "”", "'", "’")
# The look-behind starts a match only at the first mark of a run, which keeps a long run of
# dots (or quotes) linear instead of retrying it from every position.
_SENTENCE_END = re.compile(r"(?<![.!?])[.!?]+(?=[\"'”’)\]]*(?:\s|$))")


def count_sentences(text: str) -> int:
    """Approximate sentence count: runs of ``.``, ``!`` or ``?`` followed by a space or the end."""
    return len(_SENTENCE_END.findall(text))


def c4_clean(
    text: str, min_words_per_line: int = 5, min_sentences: int = 3
) -> tuple[str, tuple[str, str] | None]:
    """``(cleaned text, None)`` when the page survives, else ``(text, (reason, detail))``."""
    lowered = text.lower()
    if "lorem ipsum" in lowered:
        return text, ("lorem_ipsum", "placeholder text")
    if "{" in text:
        return text, ("curly_bracket", "looks like code")
    kept = [
        line.strip()
        for line in text.split("\n")
        if line.strip().endswith(TERMINAL)
        and len(line.split()) >= min_words_per_line
        and "javascript" not in line.lower()
    ]
    cleaned = "\n".join(kept)
    sentences = count_sentences(cleaned)
    if sentences < min_sentences:
        return text, ("too_few_sentences", f"{sentences} sentences after line cleaning")
    return cleaned, None


class C4Filter(Stage):
    """Apply ``c4_clean``: rewrite kept pages, drop the others with the rule's name."""

    name = "c4"

    def __init__(self, min_words_per_line: int = 5, min_sentences: int = 3) -> None:
        if min_words_per_line < 0 or min_sentences < 0:
            raise ValueError("min_words_per_line and min_sentences must be non-negative.")
        self.min_words_per_line = min_words_per_line
        self.min_sentences = min_sentences

    def process(self, document: Document) -> Document | Dropped:
        cleaned, failure = c4_clean(document.text, self.min_words_per_line, self.min_sentences)
        if failure is not None:
            return Dropped(document, *failure)
        return document if cleaned == document.text else document.with_text(cleaned)
