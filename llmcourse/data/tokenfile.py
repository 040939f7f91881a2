"""Token files: a whole tokenised corpus as one memory-mapped array with a small JSON header.

Training reads random windows from a corpus far larger than memory, so tokens are stored as a
flat array of fixed-width integers and mapped into memory (``numpy.memmap``): the operating
system pages in only what is read, and every process sharing the file shares the pages.
nanoGPT's ``train.bin`` is the same idea without a header; we add one so a file says what it
holds and a truncated file is caught instead of silently read short.

Layout (little-endian):

    bytes 0-7        b"LLMCTOK1" (magic)
    bytes 8-1023     JSON header, padded with spaces: dtype, vocab_size, n_tokens,
                     n_documents, eos_id, metadata
    bytes 1024-      n_tokens tokens, uint16 when vocab_size ≤ 65,536 (2 bytes per token),
                     else uint32

Files are written to a temporary name and renamed, so a crash never leaves a half-written file
under the final name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmcourse.data.packing import check_eos

MAGIC = b"LLMCTOK1"
HEADER_BYTES = 1024


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned integer type that holds ids 0 … vocab_size − 1."""
    if not isinstance(vocab_size, int) or vocab_size <= 0:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}.")
    if vocab_size <= 2**16:
        return np.dtype("<u2")
    if vocab_size <= 2**32:
        return np.dtype("<u4")
    raise ValueError(f"vocab_size {vocab_size} does not fit in 32-bit token ids.")


def write_token_file(
    path: str | os.PathLike[str],
    token_lists: Iterable[Sequence[int]],
    vocab_size: int,
    eos_id: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> TokenFile:
    """Write documents' token ids (``eos_id`` appended after each, if given) to ``path``.

    Streams: one document in memory at a time. Raises ``ValueError`` for an id outside
    ``[0, vocab_size)``, naming the document.
    """
    dtype = token_dtype(vocab_size)
    if eos_id is not None:
        check_eos(eos_id)
        if eos_id >= vocab_size:
            raise ValueError(f"eos_id {eos_id} is outside the vocabulary of size {vocab_size}.")
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n_tokens = n_documents = 0
    try:
        with open(temporary, "wb") as file:
            file.write(b"\0" * HEADER_BYTES)  # placeholder: the header needs the final counts
            for n_documents, ids in enumerate(token_lists, 1):
                array = np.asarray(list(ids) + ([] if eos_id is None else [eos_id]), np.int64)
                if array.size and (array.min() < 0 or array.max() >= vocab_size):
                    bad = array[(array < 0) | (array >= vocab_size)][0]
                    raise ValueError(
                        f"Document {n_documents - 1} has token id {bad}, outside "
                        f"[0, {vocab_size}); is vocab_size right for this tokenizer?"
                    )
                file.write(array.astype(dtype).tobytes())
                n_tokens += array.size
            header = {
                "format": "llmcourse-tokens",
                "version": 1,
                "dtype": dtype.name,
                "vocab_size": vocab_size,
                "n_tokens": n_tokens,
                "n_documents": n_documents,
                "eos_id": eos_id,
                "metadata": metadata or {},
            }
            file.seek(0)
            file.write(_encode_header(header))
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return TokenFile(path)


def _encode_header(header: dict[str, Any]) -> bytes:
    body = json.dumps(header, sort_keys=True).encode("utf-8")
    room = HEADER_BYTES - len(MAGIC)
    if len(body) > room:
        raise ValueError(
            f"The token file header is {len(body)} bytes, more than the {room} available; "
            "keep metadata small (a tokenizer name, a source, a split)."
        )
    return MAGIC + body.ljust(room, b" ")


class TokenFile:
    """A token file opened read-only: ``tokens`` is a memory-mapped array of shape (n_tokens,)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as file:
            raw = file.read(HEADER_BYTES)
        if len(raw) < HEADER_BYTES or not raw.startswith(MAGIC):
            raise ValueError(
                f"{self.path} is not an llmcourse token file (no {MAGIC!r} header); "
                "write one with llmcourse.data.tokenfile.write_token_file."
            )
        try:
            self.header: dict[str, Any] = json.loads(raw[len(MAGIC) :].decode("utf-8"))
            dtype = np.dtype(self.header["dtype"]).newbyteorder("<")
            n_tokens = int(self.header["n_tokens"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{self.path}: the header is damaged ({error}).") from None
        if dtype != token_dtype(int(self.header["vocab_size"])):
            raise ValueError(
                f"{self.path}: dtype {dtype.name} does not match vocab_size "
                f"{self.header['vocab_size']}; the file was not written by write_token_file."
            )
        expected = HEADER_BYTES + n_tokens * dtype.itemsize
        actual = self.path.stat().st_size
        if actual != expected:
            raise ValueError(
                f"{self.path}: the header promises {n_tokens:,} {dtype.name} tokens "
                f"({expected:,} bytes with the header) but the file has {actual:,} bytes; it "
                "was truncated or appended to. Write it again with write_token_file."
            )
        self.dtype = dtype
        self.tokens = (
            np.memmap(self.path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(n_tokens,))
            if n_tokens
            else np.empty(0, dtype)
        )

    @property
    def vocab_size(self) -> int:
        return int(self.header["vocab_size"])

    @property
    def eos_id(self) -> int | None:
        return self.header["eos_id"]

    @property
    def n_documents(self) -> int:
        return int(self.header["n_documents"])

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.header["metadata"])

    def __len__(self) -> int:
        return len(self.tokens)

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers receive a pickled dataset: send the path, not the mapped pages.
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return (
            f"TokenFile({str(self.path)!r}, n_tokens={len(self):,}, dtype={self.dtype.name}, "
            f"vocab_size={self.vocab_size:,}, n_documents={self.n_documents:,})"
        )
