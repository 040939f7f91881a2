"""Tokenise documents and pack them into fixed-length blocks separated by EOS tokens.

Padding every document to the context length wastes most of each batch on short documents;
GPT-2 and GPT-3 instead concatenate documents, each followed by an end-of-text token, and cut
the stream into blocks of exactly ``block_size`` tokens (Radford et al. 2019; Brown et al.
2020). Attention then crosses document boundaries, and the EOS token tells the model where one
document ends and an unrelated one begins.

    [d₁ EOS d₂ EOS d₃ EOS ...] → [block 1][block 2] ... [last, shorter block]

Packing loses no tokens: the blocks concatenated are exactly the documents each followed by EOS.
Only the last block can be shorter; ``drop_last=True`` discards it, as training on fixed shapes
sometimes requires.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from llmcourse.data.document import Document


class TokenizerLike(Protocol):
    """Anything with ``encode(text) -> list[int]``: ours, tiktoken, a transformers tokenizer."""

    def encode(self, text: str) -> list[int]: ...


def tokenize_documents(
    docs: Iterable[Document | str], tokenizer: TokenizerLike
) -> Iterator[list[int]]:
    """Token ids of each document (no EOS: ``pack`` and ``write_token_file`` add it)."""
    if not callable(getattr(tokenizer, "encode", None)):
        raise TypeError(f"{type(tokenizer).__name__} has no encode(text) method.")
    for doc in docs:
        text = doc.text if isinstance(doc, Document) else doc
        yield list(tokenizer.encode(text))


def check_eos(eos_id: int) -> None:
    if not isinstance(eos_id, int) or isinstance(eos_id, bool) or eos_id < 0:
        raise ValueError(
            f"eos_id must be a non-negative token id, got {eos_id!r}; pass the tokenizer's "
            "end-of-text id explicitly (e.g. 50256 for GPT-2)."
        )


def pack(
    token_lists: Iterable[Sequence[int]], block_size: int, eos_id: int, drop_last: bool = False
) -> Iterator[list[int]]:
    """Blocks of ``block_size`` tokens from documents joined with ``eos_id`` after each.

    Streams: holds at most one block plus one document in memory.
    """
    if not isinstance(block_size, int) or block_size <= 0:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}.")
    check_eos(eos_id)
    buffer: list[int] = []
    for ids in token_lists:
        buffer.extend(ids)
        buffer.append(eos_id)
        while len(buffer) >= block_size:
            yield buffer[:block_size]
            del buffer[:block_size]
    if buffer and not drop_last:
        yield buffer
