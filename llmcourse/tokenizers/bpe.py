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
learn the same merges. Encoding applies the learned merges to each chunk, earliest merge first;
``encode_iterable`` does it lazily over a file. ``BPETokenizer.from_vocab_merges`` takes the
vocabulary and merges of another library (numbered its way), and ``bpe_files`` reads and writes
the files of GPT-2, tiktoken and Hugging Face with it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import regex

from llmcourse.tokenizers.base import Tokenizer
from llmcourse.tokenizers.bpe_train import learn_merges

#: GPT-2's pre-tokenisation regex (from its ``encoder.py``; tiktoken's ``r50k_base`` too).
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

Pair = tuple[int, int]


#: The bytes GPT-2 counts as printable (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``): first in its
#: byte order, and standing for themselves in its files (``bpe_files.bytes_to_unicode``).
GPT2_PRINTABLE_BYTES = (*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100))


def gpt2_byte_order() -> list[int]:
    """The 256 byte values in the order of GPT-2's first 256 ranks: its printable bytes first,
    then the rest (controls, space, soft hyphen) in byte order."""
    printable = set(GPT2_PRINTABLE_BYTES)
    return [*GPT2_PRINTABLE_BYTES, *(b for b in range(256) if b not in printable)]


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


def apply_merges(
    ids: Sequence[int], merges: dict[Pair, int], ranks: dict[Pair, int] | None = None
) -> list[int]:
    """Encode one chunk: apply the learned merges, always the earliest-learned one first.

    ``merges`` maps a pair to the id it becomes. ``ranks`` gives each pair's priority (lower
    first); without it the new id is the priority, which holds when ids were handed out in the
    order the merges were learned (as ``train`` does). Files from elsewhere number tokens
    differently, so ``BPETokenizer`` always passes ``ranks``.
    """
    ranks = merges if ranks is None else ranks
    ids = list(ids)
    while len(ids) > 1:
        pair = min(pairwise(ids), key=lambda p: ranks.get(p, math.inf))
        if pair not in ranks:
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


#: Where ``encode_iterable`` may cut: just after a letter or digit that whitespace follows.
_CUT = regex.compile(r"(?r)[\p{L}\p{N}](?=\s)")


class BPETokenizer(Tokenizer):
    """Byte-level BPE with GPT-2's pre-tokenisation and byte order.

    >>> tok = BPETokenizer().train(text, vocab_size=4096)       # 256 bytes + merges + specials
    >>> tok.decode(tok.encode("To be, or not to be")) == "To be, or not to be"
    True

    ``vocab_size`` counts everything: the 256 bytes, the merges and the special tokens
    (``<|endoftext|>`` by default, id ``vocab_size - 1``). ``vocab[id]`` is the bytes of each id
    (a special token's UTF-8; ``None`` for an id no token uses) and ``merges`` maps each pair of
    ids to the id it becomes, earliest-learned first. ``from_vocab_merges`` builds one from
    another library's vocabulary; ``llmcourse.tokenizers.bpe_files`` reads and writes the files
    of GPT-2, tiktoken and Hugging Face.
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
        try:
            self._compiled = regex.compile(pattern)
        except (regex.error, TypeError) as error:
            raise ValueError(
                f"pattern {pattern!r} is not a valid regular expression ({error})."
            ) from None
        self.merges: dict[Pair, int] = {}
        self.vocab: list[bytes | None] = []
        self._ranks: dict[Pair, int] = {}  # pair -> priority (0 = merged first)
        self._byte_ids: list[int] = []  # byte value -> id of that single-byte token
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @classmethod
    def from_vocab_merges(
        cls,
        vocab: Mapping[int, bytes],
        merges: Iterable[tuple[bytes, bytes]],
        special_tokens: Sequence[str] | Mapping[str, int] | None = None,
        *,
        pattern: str = GPT2_SPLIT_PATTERN,
        eos_token: str | None = "<|endoftext|>",
    ) -> BPETokenizer:
        """A tokenizer from a vocabulary and a merge list (the minbpe / CS336 assignment-1 shape).

        ``vocab`` maps each id to its token's bytes and should hold all 256 single bytes (text
        that needs a missing one cannot be encoded: SmolLM2's vocabulary lacks 21 of them).
        ``merges`` lists pairs ``(first, second)`` of token bytes in priority order: encoding
        applies the earliest merge present in a chunk, and the merged token ``first + second``
        keeps its id from ``vocab``, so ids need not follow the merge order (Hugging Face files
        put special tokens first) and may skip numbers (tiktoken's cl100k skips 100,256).
        ``special_tokens`` lists strings that always become one id: the id whose bytes are the
        string's UTF-8, else the next unused id (as CS336 does); a dict ``{string: id}`` gives
        the ids. ``pattern`` is the pre-tokenisation regex.
        """
        if not isinstance(vocab, Mapping) or not vocab:
            raise TypeError(f"vocab must be a dict {{id: bytes}}, got {vocab!r:.80}.")
        if special_tokens is None:
            special_tokens = ()
        if isinstance(special_tokens, str):
            raise TypeError(
                f"special_tokens must be a list of strings (or a dict {{string: id}}), got the "
                f"single string {special_tokens!r}; write [{special_tokens!r}]."
            )
        tokenizer = cls(pattern, special_tokens=list(special_tokens), eos_token=eos_token)
        tokens: dict[int, bytes] = {}
        for token_id, token in vocab.items():
            if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
                raise ValueError(f"vocab ids must be non-negative ints, got {token_id!r}.")
            if not isinstance(token, (bytes, bytearray)) or not token:
                raise TypeError(f"vocab[{token_id}] must be non-empty bytes, got {token!r}.")
            tokens[token_id] = bytes(token)
        specials = _special_token_ids(special_tokens, tokens)
        special_ids = set(specials.values())
        ids_of: dict[bytes, int] = {}  # ordinary tokens only
        for token_id, token in sorted(tokens.items()):
            if token_id in special_ids:
                continue
            if token in ids_of:
                raise ValueError(
                    f"vocab holds {token!r} twice (ids {ids_of[token]} and {token_id}); each "
                    "ordinary token must be unique."
                )
            ids_of[token] = token_id
        merge_ids: dict[Pair, int] = {}
        for rank, merge in enumerate(merges):
            if not (
                isinstance(merge, (tuple, list))
                and len(merge) == 2
                and all(isinstance(part, (bytes, bytearray)) for part in merge)
            ):
                raise TypeError(f"merges[{rank}] must be a pair (bytes, bytes), got {merge!r}.")
            first, second = bytes(merge[0]), bytes(merge[1])
            unknown = [part for part in (first, second, first + second) if part not in ids_of]
            if unknown:
                raise ValueError(
                    f"merges[{rank}] = ({first!r}, {second!r}) needs the token {unknown[0]!r}, "
                    "which vocab lacks (special tokens do not count)."
                )
            pair = (ids_of[first], ids_of[second])
            if pair in merge_ids:
                raise ValueError(f"merges[{rank}] = ({first!r}, {second!r}) repeats a merge.")
            merge_ids[pair] = ids_of[first + second]
        table: list[bytes | None] = [None] * (1 + max([*tokens, *special_ids]))
        for token_id, token in tokens.items():
            table[token_id] = token
        for name, token_id in specials.items():
            table[token_id] = name.encode("utf-8")
        tokenizer.special_tokens = specials
        tokenizer._compile_special_pattern()
        tokenizer._set_vocab(table, merge_ids)
        return tokenizer

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
        self.special_tokens = {}
        self._compile_special_pattern()
        self._set_vocab([bytes([b]) for b in gpt2_byte_order()], {})
        return vocab_size - smallest

    def _chunks(self, text: str | Iterable[str]) -> Counter[str]:
        """Pre-token counts of the training text, special-token strings cut out first."""
        documents = [text] if isinstance(text, str) else text
        counts: Counter[str] = Counter()
        for document in documents:
            for part in self._split_specials(document):
                counts.update(self.pretokenize(part))
        return counts

    def _split_specials(self, document: str) -> list[str]:
        if not isinstance(document, str):
            raise TypeError(f"train() expects str documents, got {type(document).__name__}.")
        if not self.special_token_names:
            return [document]
        specials = regex.compile("|".join(map(regex.escape, self.special_token_names)))
        return specials.split(document)

    def _byte_ids_of(self, word: str) -> list[int]:
        byte_ids = self._byte_ids
        ids = [byte_ids[b] for b in word.encode("utf-8")]
        if -1 in ids:
            char = next(c for c in word if -1 in [byte_ids[b] for b in c.encode("utf-8")])
            raise ValueError(
                f"{char!r} (U+{ord(char):04X}) cannot be encoded: this vocabulary has no token "
                f"for one of its UTF-8 bytes {char.encode('utf-8')!r}. (Hugging Face's tokenizers "
                "drops such characters silently; remove or replace them first.)"
            )
        return ids

    def train(self, text: str | Iterable[str], vocab_size: int) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text`` (fast).

        ``text`` is one string or an iterable of documents (chunks never span two documents).
        Pairs are counted once per *distinct* pre-token, weighted by its frequency, and after
        each merge only the words that contain the merged pair are updated.
        """
        num_merges = self._start(vocab_size)
        words = self._chunks(text)
        word_ids = {tuple(self._byte_ids_of(word)): n for word, n in words.items()}
        merges, vocab = learn_merges(word_ids, self.vocab, num_merges)
        self._finish_training(vocab, merges)
        return self

    def train_naive(self, text: str | Iterable[str], vocab_size: int) -> BPETokenizer:
        """Learn the same merges as ``train`` with the textbook loop (``train_merges_naive``).

        It keeps one list of ids per pre-token *occurrence* and recounts all pairs after every
        merge: easy to read, and very slow beyond a few hundred kilobytes.
        """
        num_merges = self._start(vocab_size)
        chunks = [
            self._byte_ids_of(word) for word, n in self._chunks(text).items() for _ in range(n)
        ]
        merges = train_merges_naive(chunks, num_merges, first_id=256)
        vocab = list(self.vocab)
        for first, second in merges:
            vocab.append(vocab[first] + vocab[second])
        self._finish_training(vocab, merges)
        return self

    def _finish_training(self, vocab: list[bytes], merges: dict[Pair, int]) -> None:
        """The special tokens take the ids after the learned ones."""
        self._set_special_ids(len(vocab))
        specials = [name.encode("utf-8") for name in self.special_token_names]
        self._set_vocab([*vocab, *specials], merges)

    def _set_vocab(self, vocab: list[bytes | None], merges: dict[Pair, int]) -> None:
        self.vocab = vocab
        self.merges = merges
        new_ids = list(merges.values())
        if all(a < b for a, b in pairwise(new_ids)):
            self._ranks = merges  # ids grow in merge order, so they rank the merges themselves
        else:
            self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        byte_ids = [-1] * 256
        for token_id, token in enumerate(vocab):
            if token is not None and len(token) == 1 and token_id not in self._special_ids:
                byte_ids[token[0]] = token_id
        self._byte_ids = byte_ids
        self._cache = {}

    # ---- encoding ----------------------------------------------------------------------------

    def pretokenize(self, text: str) -> list[str]:
        """The chunks that merges stay inside (``GPT2_SPLIT_PATTERN`` by default).

        Text between two matches of the pattern becomes a chunk of its own (as the ``Split``
        pre-tokenizer of Hugging Face does), so no pattern can make ``encode`` drop text.
        """
        if self._compiled.groups == 0:
            chunks = self._compiled.findall(text)
            if sum(map(len, chunks)) == len(text):  # the usual case: the matches cover the text
                return chunks
        chunks, end = [], 0
        for match in self._compiled.finditer(text):
            if match.start() > end:
                chunks.append(text[end : match.start()])
            chunks.append(match.group())
            end = match.end()
        if end < len(text):
            chunks.append(text[end:])
        return chunks

    def _encode_ordinary(self, text: str) -> list[int]:
        ids: list[int] = []
        cache = self._cache
        for chunk in self.pretokenize(text):
            cached = cache.get(chunk)
            if cached is None:
                cached = apply_merges(self._byte_ids_of(chunk), self.merges, self._ranks)
                if len(cache) < 200_000:  # bound the memory a long, varied text can take
                    cache[chunk] = cached
            ids.extend(cached)
        return ids

    def encode_iterable(self, texts: Iterable[str], allowed_special: bool = True) -> Iterator[int]:
        """The ids of ``"".join(texts)``, yielded lazily, in memory that does not grow with it.

        ``texts`` is any iterable of strings, such as a text file opened with ``newline=""``
        (which keeps ``"\\r\\n"`` as written; the default turns it into ``"\\n"``). The ids
        equal ``encode("".join(texts))``: text is encoded only up to the last place where a
        letter or digit meets whitespace, and the rest waits for the next string. No pre-token
        of GPT-2's pattern (nor of tiktoken's cl100k/o200k or LLaMA 3's) runs from a letter or
        digit into whitespace, so no pre-token is split, and the cut also keeps clear of special
        tokens. Memory is bounded by the longest stretch without such a place: a line or so of
        prose, but a whole file of text without spaces.
        """
        self._require_trained()
        longest_special = max(map(len, self.special_tokens), default=1) if allowed_special else 1
        held = ""
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"encode_iterable() expects strings, got {type(text).__name__}.")
            held += text
            cut = self._safe_cut(held, longest_special, allowed_special)
            if cut:
                yield from self.encode(held[:cut], allowed_special)
                held = held[cut:]
        if held:
            yield from self.encode(held, allowed_special)

    def _safe_cut(self, text: str, longest_special: int, allowed_special: bool) -> int:
        """The last position where ``text`` can be cut without splitting a pre-token (0: none).

        A cut is kept ``longest_special - 1`` characters from the end, so a special token that
        crosses it lies wholly inside ``text`` and can be seen and avoided.
        """
        end = len(text) - (longest_special - 1)
        specials = self._special_pattern if allowed_special else None
        while end > 0:
            found = _CUT.search(text, 0, end)
            if found is None:
                return 0
            cut = found.end()
            crossing = None
            if specials is not None:
                nearby = specials.finditer(text, max(0, cut - longest_special))
                crossing = next((m for m in nearby if m.start() < cut < m.end()), None)
            if crossing is None:
                return cut
            end = crossing.start()
        return 0

    def _decode_ordinary(self, ids: list[int]) -> str:
        try:
            data = b"".join(self.vocab[i] for i in ids)
        except TypeError:  # a None entry
            unused = next(i for i in ids if self.vocab[i] is None)
            raise ValueError(
                f"id {unused} is not used by this vocabulary (no token has it)."
            ) from None
        # A token can end in the middle of a multi-byte character; "replace" shows that as U+FFFD
        # instead of failing, as GPT-2's decoder does.
        return data.decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        (token_id,) = self.check_ids([token_id])
        token = self.vocab[token_id]
        if token is None:
            raise ValueError(f"id {token_id} is not used by this vocabulary (no token has it).")
        return token

    # ---- files -------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        # Each token's bytes in hex; special tokens' slots stay empty (the file lists them by
        # name) and are filled again by _check_loaded.
        specials = self._special_ids
        return {
            "pattern": self.pattern,
            "vocab": [
                None if token is None or i in specials else token.hex()
                for i, token in enumerate(self.vocab)
            ],
            "merges": [[first, second, new_id] for (first, second), new_id in self.merges.items()],
        }

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> BPETokenizer:
        legacy = "bytes" in state and "vocab" not in state
        if legacy:
            state = _state_from_byte_order(state)
        texts = state["vocab"]
        vocab = {i: bytes.fromhex(text) for i, text in enumerate(texts) if text is not None}
        merges = []
        for first, second, new_id in state["merges"]:
            if not all(isinstance(i, int) and i in vocab for i in (first, second, new_id)):
                raise ValueError(f"merge {[first, second, new_id]} refers to an unknown id")
            if vocab[first] + vocab[second] != vocab[new_id]:
                raise ValueError(f"merge {[first, second, new_id]} does not spell its token")
            merges.append((vocab[first], vocab[second]))
        tokenizer = cls.from_vocab_merges(vocab, merges, (), pattern=str(state["pattern"]))
        tokenizer.vocab.extend([None] * (len(texts) - len(tokenizer.vocab)))  # trailing slots
        tokenizer._legacy_file = legacy  # special tokens follow the vocabulary, without slots
        return tokenizer

    def _check_loaded(self, path: Path) -> None:
        """Check the special tokens' ids, then put their bytes back into their empty slots."""
        if getattr(self, "_legacy_file", False) and self.special_tokens:
            end = max(self.special_tokens.values()) + 1
            self.vocab.extend([None] * (end - len(self.vocab)))
        super()._check_loaded(path)
        for name, token_id in self.special_tokens.items():
            if self.vocab[token_id] is not None:
                raise ValueError(
                    f"{path} is damaged: special token {name!r} has id {token_id}, which is the "
                    f"ordinary token {self.vocab[token_id]!r}."
                )
            self.vocab[token_id] = name.encode("utf-8")


def _state_from_byte_order(state: dict[str, Any]) -> dict[str, Any]:
    """The state as earlier llmcourse versions saved it (the 256 byte values in id order, then
    merges that each create the next id), in today's shape, so their files still load."""
    byte_values = [int(b) for b in state["bytes"]]
    if sorted(byte_values) != list(range(256)):
        raise ValueError("'bytes' must list each of the 256 byte values once")
    vocab = [bytes([b]) for b in byte_values]
    for first, second, new_id in state["merges"]:
        if not (0 <= first < len(vocab) and 0 <= second < len(vocab)) or new_id != len(vocab):
            raise ValueError(f"merge {[first, second, new_id]} does not fit the ids before it")
        vocab.append(vocab[first] + vocab[second])
    return {
        "pattern": state["pattern"],
        "vocab": [t.hex() for t in vocab],
        "merges": state["merges"],
    }


def _special_token_ids(
    special_tokens: Sequence[str] | Mapping[str, int], tokens: dict[int, bytes]
) -> dict[str, int]:
    """``{name: id}``: given ids checked, else the id spelling the name or the next free one."""
    if isinstance(special_tokens, Mapping):
        ids = dict(special_tokens)
        for name, token_id in ids.items():
            if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
                raise ValueError(
                    f"special token {name!r} needs a non-negative int id, got {token_id!r}."
                )
            if token_id in tokens and tokens[token_id] != name.encode("utf-8"):
                raise ValueError(
                    f"special token {name!r} has id {token_id}, which vocab gives to "
                    f"{tokens[token_id]!r}."
                )
    else:
        by_bytes = {token: token_id for token_id, token in tokens.items()}
        next_id = 1 + max(tokens, default=-1)
        ids = {}
        for name in special_tokens:
            token_id = by_bytes.get(name.encode("utf-8"))
            if token_id is None:
                token_id, next_id = next_id, next_id + 1
            ids[name] = token_id
    if len(set(ids.values())) != len(ids):
        raise ValueError(f"special tokens share ids: {ids}.")
    return ids
