"""Character-level tokenization: one id per Unicode character seen in training.

The simplest tokenizer that works for a language model (Karpathy's char-rnn, 2015, and the
Shakespeare GPT of many tutorials): tiny vocabulary (Shakespeare has ~80 distinct characters),
no unknown words, but every sequence is as long as the text, so a model sees less context per
token and spends more compute per sentence than with subwords.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from llmcourse.tokenizers.base import Tokenizer


class CharTokenizer(Tokenizer):
    """Ids ``0..n-1`` are the training text's characters in code-point order, then specials.

    >>> tok = CharTokenizer().train("hello")
    >>> tok.encode("hole"), tok.decode([1, 2])
    ([1, 3, 2, 0], 'el')
    """

    def __init__(self, special_tokens: Sequence[str] = (), eos_token: str | None = None) -> None:
        super().__init__(special_tokens, eos_token)
        self.chars: list[str] = []
        self._ids: dict[str, int] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + len(self.special_tokens)

    def train(self, text: str | Iterable[str], vocab_size: int | None = None) -> CharTokenizer:
        """Collect the characters of ``text`` (a string or an iterable of strings).

        ``vocab_size``, if given, must equal the size that comes out (a character vocabulary
        cannot be made smaller without an unknown token); it exists to match the other
        tokenizers' ``train(text, vocab_size)``.
        """
        documents = [text] if isinstance(text, str) else list(text)
        if any(not isinstance(d, str) for d in documents):
            raise TypeError("train() expects a str or an iterable of str.")
        chars = sorted(set().union(*map(set, documents)))
        if not chars:
            raise ValueError("train() got no text: the character vocabulary would be empty.")
        size = len(chars) + len(self.special_token_names)
        if vocab_size is not None and vocab_size != size:
            raise ValueError(
                f"The training text has {len(chars)} distinct characters, so the vocabulary has "
                f"{size} ids with the special tokens, not vocab_size={vocab_size}. Leave "
                "vocab_size out."
            )
        self._set_chars(chars)
        self._set_special_ids(len(chars))
        return self

    def _set_chars(self, chars: list[str]) -> None:
        self.chars = chars
        self._ids = {c: i for i, c in enumerate(chars)}

    def _encode_ordinary(self, text: str) -> list[int]:
        try:
            return [self._ids[c] for c in text]
        except KeyError as error:
            char = error.args[0]
            raise ValueError(
                f"Character {char!r} (U+{ord(char):04X}) did not occur in the training text, so "
                "it has no id; train on text that contains it."
            ) from None

    def _decode_ordinary(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def token_bytes(self, token_id: int) -> bytes:
        (token_id,) = self.check_ids([token_id])
        if token_id in self._special_ids:
            return self._special_ids[token_id].encode("utf-8")
        return self.chars[token_id].encode("utf-8")

    def _state(self) -> dict[str, Any]:
        return {"chars": "".join(self.chars)}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> CharTokenizer:
        chars = list(state["chars"])
        if chars != sorted(set(chars)):
            raise ValueError("the characters must be distinct and in code-point order")
        tokenizer = cls()
        tokenizer._set_chars(chars)
        return tokenizer
