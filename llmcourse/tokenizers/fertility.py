"""Fertility: how many tokens a tokenizer spends per word of a language.

    fertility = (number of tokens of the text) / (number of whitespace-separated words)

Rust et al. (2021, "How Good is Your Tokenizer?") showed that multilingual models do worse on
languages their tokenizer splits into many pieces. A fertility of 1 means whole words; GPT-2's
English-trained BPE spends about 1.3 tokens per English word but several per Arabic or Urdu
word, often one or two per *character*, because it learned almost no merges for those scripts.
That costs context length, compute and money per sentence, and it is why bilingual models such
as JAIS (Sengupta et al. 2023) train their own Arabic-English vocabulary.
"""

from __future__ import annotations

from typing import Protocol


class _Encodes(Protocol):
    def encode(self, text: str) -> list[int]: ...


def fertility(tokenizer: _Encodes, text: str) -> float:
    """Tokens per whitespace-separated word of ``text`` under ``tokenizer`` (anything with
    ``encode(str) -> list[int]``, such as a course tokenizer or a tiktoken encoding)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    words = text.split()
    if not words:
        raise ValueError("text has no words: fertility is tokens per word, so it needs some.")
    return len(tokenizer.encode(text)) / len(words)
