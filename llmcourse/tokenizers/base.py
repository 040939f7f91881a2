"""The contract every course tokenizer keeps: ``train``, ``encode``, ``decode``, ``save``, ``load``.

A tokenizer maps text to a list of integer ids and back. Subclasses implement only the
*ordinary* part (``_encode_ordinary``, ``_decode_ordinary``, ``token_bytes``) and their saved
state; this base class handles what is the same for all of them:

- **special tokens** such as ``<|endoftext|>``: strings that always become one fixed id and are
  never split or merged (Radford et al. 2019 use one to separate documents);
- **checking input at the boundary**: ``encode`` wants ``str``, ``decode`` wants ids inside
  the vocabulary, and both say what to change when they get something else;
- **saving** as a small JSON file and **loading** it back, with clear errors for damaged files.
"""

from __future__ import annotations

import json
import operator
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

FORMAT = "llmcourse.tokenizer"
FORMAT_VERSION = 1

T = TypeVar("T", bound="Tokenizer")


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to a temp file beside ``path``, then rename it into place, so a
    crash never leaves half a file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


class Tokenizer:
    """Base class: text ``str`` -> ids ``list[int]`` -> text, plus special tokens and file I/O.

    ``special_tokens`` maps each special string to its id; ``eos_token`` (if any) names the one
    that ends a document, and ``eos_id`` is its id.
    """

    _registry: ClassVar[dict[str, type[Tokenizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Tokenizer._registry[cls.__name__] = cls  # so Tokenizer.load can rebuild any subclass

    def __init__(self, special_tokens: Sequence[str] = (), eos_token: str | None = None) -> None:
        names = list(special_tokens)
        if any(not isinstance(name, str) or not name for name in names):
            raise TypeError(f"special_tokens must be non-empty strings, got {names!r}.")
        if len(set(names)) != len(names):
            raise ValueError(f"special_tokens has duplicates: {names!r}.")
        if eos_token is not None and eos_token not in names:
            raise ValueError(f"eos_token {eos_token!r} must be one of special_tokens {names!r}.")
        self.special_token_names = names
        self.eos_token = eos_token
        self.special_tokens: dict[str, int] = {}  # filled by train() or load()
        self._special_ids: dict[int, str] = {}
        self._special_pattern: re.Pattern[str] | None = None

    # ---- what subclasses provide -------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included: valid ids are ``0 .. vocab_size - 1``."""
        raise NotImplementedError

    def train(self: T, text: str | Iterable[str], vocab_size: int) -> T:
        raise NotImplementedError

    def _encode_ordinary(self, text: str) -> list[int]:
        raise NotImplementedError

    def _decode_ordinary(self, ids: list[int]) -> str:
        raise NotImplementedError

    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes one id stands for (a piece of a character, for byte-level BPE)."""
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_state(cls: type[T], state: dict[str, Any]) -> T:
        raise NotImplementedError

    # ---- shared behaviour --------------------------------------------------------------------

    @property
    def is_trained(self) -> bool:
        return self.vocab_size > 0

    @property
    def eos_id(self) -> int:
        """The id of ``eos_token`` (the end-of-document marker used when packing data)."""
        if self.eos_token is None:
            raise ValueError(
                f"This {type(self).__name__} has no eos_token; create it with "
                "special_tokens=['<|endoftext|>'], eos_token='<|endoftext|>'."
            )
        self._require_trained()
        return self.special_tokens[self.eos_token]

    def _set_special_ids(self, first_id: int) -> None:
        """Give the special tokens the ids after the ordinary vocabulary, in their given order."""
        self.special_tokens = {
            name: first_id + i for i, name in enumerate(self.special_token_names)
        }
        self._compile_special_pattern()

    def _compile_special_pattern(self) -> None:
        self._special_ids = {i: name for name, i in self.special_tokens.items()}
        # Longest first, so '<|endoftext|>' wins over a special token that is its prefix.
        names = sorted(self.special_tokens, key=len, reverse=True)
        self._special_pattern = (
            re.compile("(" + "|".join(map(re.escape, names)) + ")") if names else None
        )

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise ValueError(
                f"This {type(self).__name__} is not trained yet: call .train(text, vocab_size) "
                f"or {type(self).__name__}.load(path) first."
            )

    def encode(self, text: str, allowed_special: bool = True) -> list[int]:
        """Token ids of ``text``. Special-token strings in ``text`` become their single id
        (``allowed_special=False`` encodes them as ordinary text instead)."""
        if not isinstance(text, str):
            hint = " Decode bytes first: data.decode('utf-8')." if isinstance(text, bytes) else ""
            raise TypeError(f"encode() expects a str, got {type(text).__name__}.{hint}")
        self._require_trained()
        if not allowed_special or self._special_pattern is None:
            return self._encode_ordinary(text)
        ids: list[int] = []
        # re.split with a capturing group alternates: ordinary, special, ordinary, ...
        for i, part in enumerate(self._special_pattern.split(text)):
            if i % 2:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self._encode_ordinary(part))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (a list of ints, or anything iterable of integers)."""
        self._require_trained()
        ids = self.check_ids(ids)
        pieces: list[str] = []
        run: list[int] = []
        for token_id in ids:
            if token_id in self._special_ids:
                if run:
                    pieces.append(self._decode_ordinary(run))
                    run = []
                pieces.append(self._special_ids[token_id])
            else:
                run.append(token_id)
        if run:
            pieces.append(self._decode_ordinary(run))
        return "".join(pieces)

    def check_ids(self, ids: Iterable[int]) -> list[int]:
        """``ids`` as a list of ints, or a ``TypeError``/``ValueError`` naming the bad one."""
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"decode() expects a sequence of int ids, got {type(ids).__name__}.")
        if hasattr(ids, "tolist"):  # numpy arrays and torch tensors
            ids = ids.tolist()
        try:
            ids = [operator.index(i) for i in ids]
        except TypeError:
            raise TypeError(
                "decode() expects integer ids (a list of int, a numpy array or a 1-D tensor); "
                f"got {ids!r}."
            ) from None
        size = self.vocab_size
        for position, token_id in enumerate(ids):
            if not 0 <= token_id < size:
                raise ValueError(
                    f"id {token_id} at position {position} is outside the vocabulary "
                    f"(valid ids are 0..{size - 1})."
                )
        return ids

    def __repr__(self) -> str:
        specials = f", special_tokens={list(self.special_tokens)}" if self.special_tokens else ""
        return f"{type(self).__name__}(vocab_size={self.vocab_size}{specials})"

    # ---- files -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the tokenizer as JSON (atomically: a temp file renamed into place)."""
        self._require_trained()
        path = Path(path)
        document = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "type": type(self).__name__,
            "special_tokens": self.special_tokens,
            "eos_token": self.eos_token,
            "state": self._state(),
        }
        return write_text_atomically(path, json.dumps(document, ensure_ascii=False))

    @classmethod
    def load(cls: type[T], path: str | os.PathLike[str]) -> T:
        """Read a file written by ``save``. ``Tokenizer.load`` returns whichever type was saved;
        ``BPETokenizer.load`` insists on a BPE file."""
        path = Path(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{path} is not a tokenizer file saved by llmcourse (not valid JSON: {error}). "
                "Re-create it with tokenizer.save(path)."
            ) from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"{path} is not a tokenizer file saved by llmcourse.")
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} has tokenizer format version {document.get('version')!r}; this "
                f"llmcourse reads version {FORMAT_VERSION}. Re-save it with this version."
            )
        kind = Tokenizer._registry.get(str(document.get("type")))
        if kind is None or not issubclass(kind, cls):
            raise ValueError(
                f"{path} holds a {document.get('type')!r} tokenizer, not a {cls.__name__}; "
                "load it with Tokenizer.load(path) to get whatever type it is."
            )
        try:
            tokenizer = kind._from_state(document["state"])
            specials = {str(k): int(v) for k, v in document["special_tokens"].items()}
            eos = document["eos_token"]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(
                f"{path} is damaged: its {kind.__name__} state is incomplete or malformed "
                f"({type(error).__name__}: {error}). Re-create it with tokenizer.save(path)."
            ) from None
        tokenizer.special_token_names = list(specials)
        tokenizer.special_tokens = specials
        tokenizer.eos_token = eos
        tokenizer._check_loaded(path)
        tokenizer._compile_special_pattern()
        return tokenizer

    def _check_loaded(self, path: Path) -> None:
        """Refuse a loaded file whose ids do not fit together (e.g. a truncated vocabulary)."""
        size = self.vocab_size
        bad = {name: i for name, i in self.special_tokens.items() if not 0 <= i < size}
        if bad:
            raise ValueError(
                f"{path} is damaged: special token ids {bad} lie outside 0..{size - 1}."
            )
        if self.eos_token is not None and self.eos_token not in self.special_tokens:
            raise ValueError(f"{path} is damaged: eos_token {self.eos_token!r} is not special.")
