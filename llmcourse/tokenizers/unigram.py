"""Unigram language-model tokenization through SentencePiece, for comparison with BPE.

BPE builds a vocabulary bottom-up by merging. The Unigram model (Kudo 2018) goes top-down:
start from a large set of candidate substrings, fit a unigram LM
``P(x_1..x_n) = prod_i p(x_i)`` by EM over all segmentations of each word, and repeatedly drop
the pieces whose removal costs the corpus likelihood least, until ``vocab_size`` remain.
Encoding picks the most probable segmentation (Viterbi), not a greedy one. SentencePiece
(Kudo & Richardson 2018) implements it; T5, ALBERT and XLNet use it, LLaMA 1/2 use its BPE mode.

We wrap the real library instead of rewriting it (writing it is not this course's lesson):
``UnigramTokenizer`` trains a SentencePiece model in memory and keeps the course's tokenizer
contract. Settings chosen so that ``decode(encode(s)) == s``: no Unicode normalisation, spaces
kept as they are (shown as ``▁``), and byte fallback so unseen characters become byte tokens.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from llmcourse.tokenizers.base import Tokenizer

_SPECIALS = ("<unk>", "<s>", "</s>")  # SentencePiece's own control symbols, ids 0, 1, 2
_LINE_LIMIT = 4000  # SentencePiece ignores training "sentences" longer than ~4 kB


class UnigramTokenizer(Tokenizer):
    """A SentencePiece Unigram model: ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2 (the end marker)."""

    def __init__(self) -> None:
        super().__init__(_SPECIALS, eos_token="</s>")
        self._processor: Any = None
        self._model: bytes = b""

    @property
    def vocab_size(self) -> int:
        return 0 if self._processor is None else int(self._processor.get_piece_size())

    def train(self, text: str | Iterable[str], vocab_size: int) -> UnigramTokenizer:
        """Train on ``text`` (a string or documents), one training sentence per line."""
        import sentencepiece

        documents: Sequence[str] = [text] if isinstance(text, str) else list(text)
        if any(not isinstance(d, str) for d in documents):
            raise TypeError("train() expects a str or an iterable of str.")
        smallest = 256 + len(_SPECIALS) + 1
        if vocab_size < smallest:
            raise ValueError(
                f"vocab_size={vocab_size} is too small: byte fallback needs the 256 bytes and 3 "
                f"control symbols; use vocab_size >= {smallest}."
            )
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=_lines(documents),
                model_writer=model,
                vocab_size=vocab_size,
                model_type="unigram",
                character_coverage=1.0,
                byte_fallback=True,
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                add_dummy_prefix=False,
                max_sentence_length=_LINE_LIMIT * 4,
                num_threads=2,
                minloglevel=2,
            )
        except RuntimeError as error:
            raise ValueError(f"SentencePiece could not train: {error}") from None
        self._load_model(model.getvalue())
        self.special_tokens = {name: i for i, name in enumerate(_SPECIALS)}
        self._compile_special_pattern()
        return self

    def _load_model(self, model: bytes) -> None:
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model)
        except RuntimeError as error:
            raise ValueError(f"not a SentencePiece model ({error})") from None
        self._processor = processor
        self._model = model

    def pieces(self, text: str) -> list[str]:
        """The pieces of ``text`` as strings (``▁`` marks a space)."""
        self._require_trained()
        return self._processor.encode(text, out_type=str)

    def _encode_ordinary(self, text: str) -> list[int]:
        return self._processor.encode(text)

    def _decode_ordinary(self, ids: list[int]) -> str:
        return self._processor.decode(ids)

    def token_bytes(self, token_id: int) -> bytes:
        (token_id,) = self.check_ids([token_id])
        if self._processor.is_byte(token_id):
            return bytes([int(self._processor.id_to_piece(token_id)[3:5], 16)])  # "<0xE6>"
        return self._processor.id_to_piece(token_id).replace("▁", " ").encode("utf-8")

    def _state(self) -> dict[str, Any]:
        return {"model": base64.b64encode(self._model).decode("ascii")}

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> UnigramTokenizer:
        tokenizer = cls()
        tokenizer._load_model(base64.b64decode(state["model"], validate=True))
        return tokenizer


def _lines(documents: Sequence[str]) -> Iterator[str]:
    for document in documents:
        for line in document.splitlines():
            while line:
                yield line[:_LINE_LIMIT]
                line = line[_LINE_LIMIT:]
