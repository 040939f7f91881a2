"""Splitting documents into retrievable chunks.

A retriever returns whole chunks, and a reader (the LM) sees only what it returns, so a chunk
should be small enough to be about one thing and to fit a few in the prompt, and large enough
to hold a whole fact. We pack consecutive **paragraphs** (blank-line separated) into chunks of
at most ``max_chars``; a paragraph longer than that is cut at word boundaries into windows that
overlap by ``overlap`` characters, so a sentence cut at one edge is whole in the next window.
Each chunk starts with its document's title line (its first line), so a chunk from the middle
of "The try statement" still says what it is about: a cheap form of the "contextual headers"
retrieval systems add.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """``text`` (title line + body) from document ``doc_id``, the ``index``-th of its chunks."""

    doc_id: str
    index: int
    text: str


def _windows(paragraph: str, max_chars: int, overlap: int) -> list[str]:
    """Cut one long paragraph into word-aligned windows of at most ``max_chars``."""
    words = paragraph.split()
    windows, start = [], 0
    while start < len(words):
        end, length = start, 0
        while end < len(words) and length + len(words[end]) + (end > start) <= max_chars:
            length += len(words[end]) + (end > start)
            end += 1
        end = max(end, start + 1)  # a single word longer than max_chars stands alone
        windows.append(" ".join(words[start:end]))
        if end == len(words):
            break
        back, kept = end, 0  # step back ~overlap characters of whole words
        while back - 1 > start and kept + len(words[back - 1]) + 1 <= overlap:
            back -= 1
            kept += len(words[back]) + 1
        start = back
    return windows


def chunk_text(text: str, max_chars: int = 600, overlap: int = 100) -> list[str]:
    """Paragraph-packed chunks of ``text`` (see the module docstring), without titles."""
    if max_chars < 50 or not 0 <= overlap < max_chars // 2:
        raise ValueError(
            f"Need max_chars >= 50 and 0 <= overlap < max_chars / 2, got {max_chars}, {overlap}."
        )
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    pieces = []
    for paragraph in paragraphs:
        if len(paragraph) <= max_chars:
            pieces.append(paragraph)
        else:
            pieces.extend(_windows(paragraph, max_chars, overlap))
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= max_chars:
            chunks[-1] += "\n\n" + piece
        else:
            chunks.append(piece)
    return chunks


def chunk_documents(
    documents: Mapping[str, str], max_chars: int = 600, overlap: int = 100
) -> list[Chunk]:
    """Chunks of every document, each prefixed with the document's first line (its title)."""
    chunks = []
    for doc_id, text in documents.items():
        title, _, body = text.strip().partition("\n")
        for index, piece in enumerate(chunk_text(body, max_chars, overlap)):
            chunks.append(Chunk(doc_id, index, f"{title.strip()}\n{piece}"))
    return chunks
