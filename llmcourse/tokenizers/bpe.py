"""Byte-level byte-pair encoding (BPE), as in GPT-2.

BPE (Gage 1994; Sennrich et al. 2016 for subwords) starts from single symbols and repeatedly
merges the most frequent adjacent pair into a new symbol. GPT-2 (Radford et al. 2019) made it
*byte-level*: the symbols start as the 256 byte values of UTF-8, so any string, in any script,
encodes without an unknown token. Two more GPT-2 decisions live here:

1. **Pre-tokenisation.** A regex first cuts text into chunks (``GPT2_SPLIT_PATTERN``: English
   contractions, letters with an optional leading space, digits, punctuation, whitespace) and
   merges never cross a chunk boundary, so "dog." and "dog!" share the token " dog".
2. **The byte order.** Ids 0-255 are the bytes in GPT-2's order (printable bytes first, see
   ``gpt2_byte_order``), so a tokenizer trained here numbers its bytes like GPT-2 does and,
   when two pairs are equally frequent, picks the one with the smaller ids, as the Hugging Face
   ``tokenizers`` trainer does.

Training: ``BPETokenizer.train`` (fast, incremental, see ``bpe_train``) and
``BPETokenizer.train_naive`` (the textbook loop below, recounting every pair after each merge)
learn the same merges. Encoding applies the learned merges to each chunk, earliest merge first.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

import regex

from llmcourse.tokenizers.base import Tokenizer
from llmcourse.tokenizers.bpe_train import learn_merges, pretoken_counts

#: GPT-2's pre-tokenisation regex (from its ``encoder.py``; tiktoken's ``r50k_base`` too).
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

Pair = tuple[int, int]


def gpt2_byte_order() -> list[int]:
    """The 256 byte values in the order of GPT-2's first 256 ranks.

    GPT-2's ``bytes_to_unicode`` lists the printable Latin-1 bytes (``!``..``~``, ``¡``..``¬``,
    ``®``..``ÿ``) first and the rest (controls, space, soft hyphen) after, in byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    return printable + [b for b in range(256) if b not in printable]


def pair_counts(ids: Sequence[int], counts: Counter[Pair] | None = None) -> Counter[Pair]:
    """How often each adjacent pair occurs in ``ids`` (added into ``counts`` if given).

    >>> pair_counts([1, 2, 3, 1, 2])
    Counter({(1, 2): 2, (2, 3): 1, (3, 1): 1})
    """
    counts = Counter() if counts is None else counts
    counts.update(pairwise(ids))
    return counts


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    >>> merge_pair([5, 5, 5, 7], (5, 5), 9)  # non-overlapping: the leftmost pair wins
    [9, 5, 7]
    """
    first, second = pair
    merged: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == first and i + 1 < n and ids[i + 1] == second:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def most_frequent_pair(counts: Counter[Pair]) -> Pair:
    """The pair with the highest count; ties go to the smallest pair ``(first, second)``."""
    return min(counts, key=lambda pair: (-counts[pair], pair))


def apply_merges(ids: Sequence[int], merges: dict[Pair, int]) -> list[int]:
    """Encode one chunk: apply the learned merges, always the earliest-learned one first.

    ``merges`` maps a pair to the id it becomes; ids grow in the order merges were learned, so
    the smallest new id is the earliest merge.
    """
    ids = list(ids)
    while len(ids) > 1:
        pair = min(pairwise(ids), key=lambda p: merges.get(p, math.inf))
        if pair not in merges:
            break
        ids = merge_pair(ids, pair, merges[pair])
    return ids


def train_merges_naive(
    chunks: list[list[int]], num_merges: int, first_id: int = 256
) -> dict[Pair, int]:
    """The textbook BPE loop: count every pair in every chunk, merge the winner, repeat.

    Each merge rescans the whole corpus, so it costs O(merges x corpus): fine for a page of
    text, hours for a book. ``bpe_train.learn_merges`` gives the same result incrementally.
    """
    chunks = [list(chunk) for chunk in chunks]
    merges: dict[Pair, int] = {}
    for new_id in range(first_id, first_id + num_merges):
        counts: Counter[Pair] = Counter()
        for chunk in chunks:
            pair_counts(chunk, counts)
        if not counts:
            break  # every chunk is a single token: nothing left to merge
        pair = most_frequent_pair(counts)
        merges[pair] = new_id
        chunks = [merge_pair(chunk, pair, new_id) for chunk in chunks]
    return merges


class BPETokenizer(Tokenizer):
    """Byte-level BPE with GPT-2's pre-tokenisation and byte order.

    >>> tok = BPETokenizer().train(text, vocab_size=4096)       # 256 bytes + merges + specials
    >>> tok.decode(tok.encode("To be, or not to be")) == "To be, or not to be"
    True

    ``vocab_size`` counts everything: the 256 bytes, the merges and the special tokens
    (``<|endoftext|>`` by default, id ``vocab_size - 1``).
    """

    def __init__(
        self,
        pattern: str = GPT2_SPLIT_PATTERN,
        special_tokens: Sequence[str] = ("<|endoftext|>",),
        eos_token: str | None = "<|endoftext|>",
    ) -> None:
        if eos_token is not None and eos_token not in special_tokens:
            eos_token = None  # a custom special-token list without the default end marker
        super().__init__(special_tokens, eos_token)
        self.pattern = pattern
        self._compiled = regex.compile(pattern)
        self.merges: dict[Pair, int] = {}
        self.vocab: list[bytes] = []  # vocab[id] = the bytes of that (non-special) token
        self._byte_ids = bytes(256)  # byte value -> id; a translate() table
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

    # ---- training ----------------------------------------------------------------------------

    def _start(self, vocab_size: int) -> int:
        """Reset to the 256 single bytes; return how many merges ``vocab_size`` leaves room for."""
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}.")
        smallest = 256 + len(self.special_token_names)
        if vocab_size < smallest:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the byte alphabet: byte-level BPE needs "
                f"the 256 byte tokens plus {len(self.special_token_names)} special token(s), so "
                f"use vocab_size >= {smallest}."
            )
        order = gpt2_byte_order()
        self._set_vocab([bytes([b]) for b in order], {})
        return vocab_size - smallest

    def _chunks(self, text: str | Iterable[str]) -> Counter[str]:
        """Pre-token counts of the training text, special-token strings cut out first."""
        documents = [text] if isinstance(text, str) else text
        for_training = (self._split_specials(d) for d in documents)
        return pretoken_counts((part for parts in for_training for part in parts), self._compiled)

    def _split_specials(self, document: str) -> list[str]:
        if not isinstance(document, str):
            raise TypeError(f"train() expects str documents, got {type(document).__name__}.")
        if not self.special_token_names:
            return [document]
        specials = regex.compile("|".join(map(regex.escape, self.special_token_names)))
        return specials.split(document)

    def train(self, text: str | Iterable[str], vocab_size: int) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text`` (fast).

        ``text`` is one string or an iterable of documents (chunks never span two documents).
        Pairs are counted once per *distinct* pre-token, weighted by its frequency, and after
        each merge only the words that contain the merged pair are updated.
        """
        num_merges = self._start(vocab_size)
        words = self._chunks(text)
        word_ids = {
            tuple(word.encode("utf-8").translate(self._byte_ids)): n for word, n in words.items()
        }
        merges, vocab = learn_merges(word_ids, self.vocab, num_merges)
        self._set_vocab(vocab, merges)
        self._set_special_ids(len(self.vocab))
        return self

    def train_naive(self, text: str | Iterable[str], vocab_size: int) -> BPETokenizer:
        """Learn the same merges as ``train`` with the textbook loop (``train_merges_naive``).

        It keeps one list of ids per pre-token *occurrence* and recounts all pairs after every
        merge: easy to read, and very slow beyond a few hundred kilobytes.
        """
        num_merges = self._start(vocab_size)
        chunks = [
            list(word.encode("utf-8").translate(self._byte_ids))
            for word, n in self._chunks(text).items()
            for _ in range(n)
        ]
        merges = train_merges_naive(chunks, num_merges, first_id=256)
        vocab = list(self.vocab)
        for first, second in merges:
            vocab.append(vocab[first] + vocab[second])
        self._set_vocab(vocab, merges)
        self._set_special_ids(len(self.vocab))
        return self

    def _set_vocab(self, vocab: list[bytes], merges: dict[Pair, int]) -> None:
        self.vocab = vocab
        self.merges = merges
        table = bytearray(256)
        for token_id, token in enumerate(vocab[:256]):
            table[token[0]] = token_id
        self._byte_ids = bytes(table)
        self._cache = {}

    # ---- encoding ----------------------------------------------------------------------------

    def pretokenize(self, text: str) -> list[str]:
        """The chunks that merges stay inside (``GPT2_SPLIT_PATTERN`` by default)."""
        return self._compiled.findall(text)

    def _encode_ordinary(self, text: str) -> list[int]:
        ids: list[int] = []
        cache = self._cache
        for chunk in self._compiled.findall(text):
            cached = cache.get(chunk)
            if cached is None:
                cached = apply_merges(chunk.encode("utf-8").translate(self._byte_ids), self.merges)
                if len(cache) < 200_000:  # bound the memory a long, varied text can take
                    cache[chunk] = cached
            ids.extend(cached)
        return ids

    def _decode_ordinary(self, ids: list[int]) -> str:
        # A token can end in the middle of a multi-byte character; "replace" shows that as U+FFFD
        # instead of failing, as GPT-2's decoder does.
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        (token_id,) = self.check_ids([token_id])
        if token_id in self._special_ids:
            return self._special_ids[token_id].encode("utf-8")
        return self.vocab[token_id]

    # ---- files -------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "bytes": [self.vocab[i][0] for i in range(256)],
            "merges": [[first, second, new_id] for (first, second), new_id in self.merges.items()],
        }

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> BPETokenizer:
        byte_values = [int(b) for b in state["bytes"]]
        if sorted(byte_values) != list(range(256)):
            raise ValueError("'bytes' must list each of the 256 byte values once")
        try:
            tokenizer = cls(pattern=str(state["pattern"]), special_tokens=())
        except regex.error as error:
            raise ValueError(f"'pattern' is not a valid regular expression ({error})") from None
        vocab = [bytes([b]) for b in byte_values]
        merges: dict[Pair, int] = {}
        for first, second, new_id in state["merges"]:
            first, second, new_id = int(first), int(second), int(new_id)
            if not (0 <= first < len(vocab) and 0 <= second < len(vocab)):
                raise ValueError(f"merge {[first, second, new_id]} refers to an unknown id")
            if new_id != len(vocab):
                raise ValueError(f"merge {[first, second, new_id]} should create id {len(vocab)}")
            vocab.append(vocab[first] + vocab[second])
            merges[(first, second)] = new_id
        tokenizer._set_vocab(vocab, merges)
        return tokenizer
