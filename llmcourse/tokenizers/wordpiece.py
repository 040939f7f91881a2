"""WordPiece, BERT's tokenizer: normalise, split into words, then greedy longest match.

Encoding (Devlin et al. 2019; Wu et al. 2016) takes each word and repeatedly cuts off the
*longest* vocabulary entry that starts where the previous one ended; pieces after the first
carry the prefix ``##`` ("continues a word"). If some position matches nothing, the whole word
becomes ``[UNK]``. Before that, BERT's *basic tokenizer* cleans the text: drops control
characters, puts spaces around CJK ideographs (each becomes a word), lowercases and strips
accents (uncased models), splits on whitespace and makes every punctuation mark its own word.

Training (Schuster & Nakajima 2012) is BPE with a different choice of merge: instead of the
most frequent pair, the pair whose merge most raises the corpus likelihood under a unigram
model, ``score(a, b) = count(ab) / (count(a) * count(b))``. A pair of rare symbols that always
occur together beats a pair of common ones that meet by chance.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from llmcourse.tokenizers.base import Tokenizer

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# CJK Unified Ideographs and their extensions/compatibility blocks (BERT's list).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    # ASCII symbols such as $ + < = > ^ ` | ~ are not Unicode "P*" but BERT splits them too.
    return (char.isascii() and not char.isalnum() and char.isprintable() and char != " ") or (
        unicodedata.category(char).startswith("P")
    )


def bert_pretokenize(text: str, lowercase: bool = True) -> list[str]:
    """BERT's basic tokenizer: the words that WordPiece then splits into pieces.

    >>> bert_pretokenize("Héllo, wörld! 日本")
    ['hello', ',', 'world', '!', '日', '本']
    """
    cleaned = []
    for char in text:
        if char in "\t\n\r":
            cleaned.append(" ")
        elif char in "\x00\ufffd" or unicodedata.category(char).startswith("C"):
            continue  # control and format characters carry no text
        elif char.isspace():
            cleaned.append(" ")
        elif _is_cjk(char):
            cleaned.append(f" {char} ")
        else:
            cleaned.append(char)
    text = "".join(cleaned)
    if lowercase:
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower()
    words: list[str] = []
    for chunk in text.split():
        start = 0
        for i, char in enumerate(chunk):
            if _is_punctuation(char):
                words.extend(w for w in (chunk[start:i], char) if w)
                start = i + 1
        if start < len(chunk):
            words.append(chunk[start:])
    return words


def greedy_longest_match(
    word: str, vocab: dict[str, int] | set[str], unk_token: str = "[UNK]", max_chars: int = 100
) -> list[str]:
    """Split one word into the longest vocabulary pieces, left to right (``##`` marks a
    continuation); the whole word is ``[unk_token]`` if any position cannot be matched.

    >>> greedy_longest_match("unaffable", {"un", "##aff", "##able", "##a"})
    ['un', '##aff', '##able']
    """
    if len(word) > max_chars:
        return [unk_token]
    pieces: list[str] = []
    start = 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:
            return [unk_token]
    return pieces


class WordPieceTokenizer(Tokenizer):
    """BERT-style WordPiece: ``train`` learns a vocabulary, ``from_vocab`` loads one.

    ``vocab`` maps each piece to its id; the special tokens (``[PAD] [UNK] [CLS] [SEP] [MASK]``)
    are vocabulary entries. ``lowercase=True`` is the uncased BERT normalisation (lowercase and
    strip accents), so decoding returns normalised text, not the original.
    """

    def __init__(
        self,
        special_tokens: Sequence[str] = BERT_SPECIAL_TOKENS,
        unk_token: str = "[UNK]",
        lowercase: bool = True,
        max_chars_per_word: int = 100,
    ) -> None:
        if unk_token not in special_tokens:
            raise ValueError(f"unk_token {unk_token!r} must be one of {list(special_tokens)}.")
        super().__init__(special_tokens, eos_token="[SEP]" if "[SEP]" in special_tokens else None)
        self.unk_token = unk_token
        self.lowercase = lowercase
        self.max_chars_per_word = max_chars_per_word
        self.vocab: dict[str, int] = {}
        self.pieces: list[str] = []

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    @classmethod
    def from_vocab(cls, vocab: str | Path | Sequence[str], **options: Any) -> WordPieceTokenizer:
        """A tokenizer from a vocabulary: a ``vocab.txt`` path (one piece per line, id = line
        number) or a list of pieces. Special tokens missing from it are left out."""
        if isinstance(vocab, (str, Path)):
            pieces = Path(vocab).read_text(encoding="utf-8").splitlines()
        else:
            pieces = list(vocab)
        specials = options.pop("special_tokens", BERT_SPECIAL_TOKENS)
        tokenizer = cls(special_tokens=[t for t in specials if t in pieces], **options)
        tokenizer._set_pieces(pieces)
        return tokenizer

    def _set_pieces(self, pieces: list[str]) -> None:
        if len(set(pieces)) != len(pieces):
            raise ValueError("a WordPiece vocabulary must not repeat a piece.")
        self.pieces = pieces
        self.vocab = {piece: i for i, piece in enumerate(pieces)}
        missing = [t for t in self.special_token_names if t not in self.vocab]
        if missing:
            raise ValueError(f"special tokens {missing} are not in the vocabulary.")
        self.special_tokens = {t: self.vocab[t] for t in self.special_token_names}
        self._compile_special_pattern()

    def train(self, text: str | Iterable[str], vocab_size: int) -> WordPieceTokenizer:
        """Learn pieces by likelihood-scored merges until the vocabulary has ``vocab_size``.

        Starts from every character (first characters bare, later ones as ``##c``), so every
        training word encodes without ``[UNK]``; it may stop short of ``vocab_size`` when no
        pair is left to merge.
        """
        documents = [text] if isinstance(text, str) else list(text)
        if any(not isinstance(d, str) for d in documents):
            raise TypeError("train() expects a str or an iterable of str.")
        word_counts = Counter(w for d in documents for w in bert_pretokenize(d, self.lowercase))
        words = [[w[0]] + ["##" + c for c in w[1:]] for w in word_counts]
        alphabet = sorted({piece for word in words for piece in word})
        pieces = list(self.special_token_names) + alphabet
        if vocab_size < len(pieces):
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the special tokens plus the "
                f"{len(alphabet)} characters of the training text; use at least {len(pieces)}."
            )
        self._learn(words, list(word_counts.values()), pieces, vocab_size)
        self._set_pieces(pieces)
        return self

    @staticmethod
    def _learn(words: list[list[str]], freqs: list[int], pieces: list[str], size: int) -> None:
        """Merge the best-scoring pair until ``pieces`` reaches ``size`` (appends in place)."""
        symbol_counts: Counter[str] = Counter()
        pair_counts: defaultdict[tuple[str, str], int] = defaultdict(int)
        where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
        for index, (word, freq) in enumerate(zip(words, freqs, strict=True)):
            for symbol in word:
                symbol_counts[symbol] += freq
            for pair in pairwise(word):
                pair_counts[pair] += freq
                where[pair].add(index)
        known = set(pieces)
        while len(pieces) < size:
            live = [(pair, n) for pair, n in pair_counts.items() if n > 0]
            if not live:
                break
            # Ties go to the more frequent pair, then to the pair seen first (deterministic).
            (first, second), _ = max(
                live,
                key=lambda item: (
                    item[1] / (symbol_counts[item[0][0]] * symbol_counts[item[0][1]]),
                    item[1],
                ),
            )
            merged = first + second.removeprefix("##")
            if merged not in known:
                pieces.append(merged)
                known.add(merged)
            for index in where.pop((first, second)):
                word, freq = words[index], freqs[index]
                old = list(pairwise(word))
                i = 0
                while i < len(word) - 1:
                    if word[i] == first and word[i + 1] == second:
                        word[i : i + 2] = [merged]
                        symbol_counts[first] -= freq
                        symbol_counts[second] -= freq
                        symbol_counts[merged] += freq
                    i += 1
                for pair in old:
                    pair_counts[pair] -= freq
                for pair in pairwise(word):
                    pair_counts[pair] += freq
                    where[pair].add(index)
            pair_counts.pop((first, second), None)

    def _encode_ordinary(self, text: str) -> list[int]:
        ids = []
        for word in bert_pretokenize(text, self.lowercase):
            pieces = greedy_longest_match(word, self.vocab, self.unk_token, self.max_chars_per_word)
            ids.extend(self.vocab[piece] for piece in pieces)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Pieces joined by spaces, ``##`` pieces glued to the one before; special tokens are
        vocabulary entries here, so they are joined like words (``[CLS] hello [SEP]``)."""
        self._require_trained()
        return self._decode_ordinary(self.check_ids(ids))

    def _decode_ordinary(self, ids: list[int]) -> str:
        words: list[str] = []
        for token_id in ids:
            piece = self.pieces[token_id]
            if piece.startswith("##") and words:
                words[-1] += piece[2:]
            else:
                words.append(piece)
        return " ".join(words)

    def token_bytes(self, token_id: int) -> bytes:
        (token_id,) = self.check_ids([token_id])
        return self.pieces[token_id].removeprefix("##").encode("utf-8")

    def _state(self) -> dict[str, Any]:
        return {
            "pieces": self.pieces,
            "unk_token": self.unk_token,
            "lowercase": self.lowercase,
            "max_chars_per_word": self.max_chars_per_word,
        }

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> WordPieceTokenizer:
        pieces = [str(p) for p in state["pieces"]]
        tokenizer = cls(
            special_tokens=[str(state["unk_token"])],
            unk_token=str(state["unk_token"]),
            lowercase=bool(state["lowercase"]),
            max_chars_per_word=int(state["max_chars_per_word"]),
        )
        tokenizer._set_pieces(pieces)
        return tokenizer


def minilm_wordpiece() -> WordPieceTokenizer:
    """WordPiece with the vocabulary of all-MiniLM-L6-v2 (BERT uncased, 30,522 pieces)."""
    from llmcourse import pretrained

    return WordPieceTokenizer.from_vocab(pretrained.minilm_dir() / "vocab.txt")
