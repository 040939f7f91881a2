"""Unicode normalisation and cleaning: the first stage of every pipeline.

The same word can arrive as different code points: "ﬁne" with a ligature, "Ｈｅｌｌｏ" in
full-width forms, "e" + a combining acute instead of "é", a no-break space instead of a space.
A tokenizer would give each spelling its own tokens and a deduplicator would miss the copies, so
text is normalised before anything else looks at it:

1. **Line breaks**: every boundary that ``str.splitlines`` knows (``\\r\\n``, ``\\r``, ``\\v``,
   ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028, U+2029) becomes ``\\n``.
2. **Invisible characters**: control (Cc) and format (Cf) characters are removed, except ``\\n``,
   ``\\t`` and the zero-width (non-)joiners U+200C/U+200D, which Persian, Urdu and emoji need;
   U+FFFD (what undecodable bytes turned into) goes too. Other spaces become U+0020.
3. **NFKC** (Unicode Standard Annex #15): canonical composition plus compatibility mappings
   (ligatures, full-width and super-script forms become their plain forms). It runs after
   step 2 so that a combining accent separated from its letter by a removed character still
   composes with it, which makes normalising twice the same as normalising once.
4. **Whitespace**: inside a line, each run of spaces and tabs becomes one space; trailing
   whitespace goes; indentation stays (code and verse use it); at most one blank line in a row;
   the document is stripped.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

from llmcourse.data.document import Document, Dropped, Stage

LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
KEEP = {"\n", "\t", "\u200c", "\u200d"}  # newline, tab, zero-width non-joiner and joiner


@cache
def _translation() -> dict[int, str | None]:
    """``str.translate`` table: line breaks to ``\\n``, other invisible characters deleted."""
    table: dict[int, str | None] = {ord(c): "\n" for c in LINE_BREAKS}
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if code not in table and char not in KEEP and unicodedata.category(char) in ("Cc", "Cf"):
            table[code] = None
        elif unicodedata.category(char) == "Zs":
            table[code] = " "  # spaces NFKC leaves alone (e.g. U+1680) become plain spaces
    table[0xFFFD] = None
    return table


_INNER_SPACE = re.compile(r"(?<=\S)[ \t]+(?=\S)")
_BLANK_LINES = re.compile(r"\n{3,}")
# U+FFFD and the C0/C1 control codes that are not whitespace (\t \n \v \f \r \x85).
_INVALID = re.compile("[\ufffd\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")


def normalize_text(text: str, form: str = "NFKC") -> str:
    """Normalise ``text`` as described in the module docstring (steps 1-4, in order)."""
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects str, got {type(text).__name__}.")
    if form not in ("NFC", "NFKC", "NFD", "NFKD"):
        raise ValueError(f"form must be one of NFC, NFKC, NFD, NFKD; got {form!r}.")
    text = text.replace("\r\n", "\n").translate(_translation())
    text = unicodedata.normalize(form, text)
    text = _INNER_SPACE.sub(" ", text)
    # rstrip per line, not a regex: "[ \t]+$" backtracks quadratically on a long run of spaces.
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def invalid_fraction(text: str) -> float:
    """Share of characters that are U+FFFD or control characters other than whitespace.

    Plain text scores ~0; a binary file decoded as UTF-8 scores far above 0.1 (most of its
    bytes are not valid UTF-8 sequences, and many valid ones are control codes).
    """
    if not text:
        return 0.0
    return len(_INVALID.findall(text)) / len(text)


class Normalize(Stage):
    """Normalise every document; drop binary files (``"binary"``) and empty ones (``"empty"``).

    ``max_invalid_fraction``: documents with more undecodable or control characters than this
    (before cleaning) are binary data, not text.
    """

    name = "normalize"

    def __init__(self, form: str = "NFKC", max_invalid_fraction: float = 0.1) -> None:
        if not 0.0 <= max_invalid_fraction <= 1.0:
            raise ValueError(f"max_invalid_fraction must be in [0, 1], got {max_invalid_fraction}.")
        normalize_text("", form)  # validates form now, not at the first document
        self.form = form
        self.max_invalid_fraction = max_invalid_fraction

    def process(self, document: Document) -> Document | Dropped:
        bad = invalid_fraction(document.text)
        if bad > self.max_invalid_fraction:
            return Dropped(document, "binary", f"{bad:.0%} undecodable or control characters")
        text = normalize_text(document.text, self.form)
        if not text:
            return Dropped(document, "empty", "no visible text after normalisation")
        return document if text == document.text else document.with_text(text)
