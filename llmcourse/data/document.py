"""What flows through a data pipeline: documents in, documents (or counted drops) out.

A stage is a generator over documents. For every document it receives it yields exactly one
result: the document (possibly rewritten) or a ``Dropped`` record that says why it was removed.
That one-in-one-out contract is what lets ``Pipeline`` prove that nothing vanished uncounted:
``documents in = documents out + sum(dropped by reason)`` for every stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Document:
    """One unit of training text (a web page, a play, a manual page) with an id and metadata.

    ``meta`` carries what stages learn about the document (its language, its split, how many
    PII matches were scrubbed); stages return a new ``Document`` rather than mutate one.
    """

    text: str
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(
                f"Document.text must be str, got {type(self.text).__name__}; build documents "
                "from raw bytes with Document.from_bytes(data)."
            )

    @classmethod
    def from_bytes(cls, data: bytes, id: str = "", **meta: Any) -> Document:
        """Decode UTF-8 without ever failing: invalid bytes become U+FFFD.

        The number of replacement characters is kept in ``meta["invalid_bytes"]`` so that the
        normaliser can drop binary files with a reason instead of letting them through as noise.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"from_bytes expects bytes, got {type(data).__name__}.")
        text = bytes(data).decode("utf-8", errors="replace")
        invalid = text.count("\ufffd") - bytes(data).count("\ufffd".encode())
        return cls(text, id, {**meta, "invalid_bytes": invalid})

    def with_text(self, text: str, **meta: Any) -> Document:
        """A copy with new text and extra metadata."""
        return replace(self, text=text, meta={**self.meta, **meta})

    def with_meta(self, **meta: Any) -> Document:
        return replace(self, meta={**self.meta, **meta})

    @property
    def n_bytes(self) -> int:
        """Size of the text in UTF-8 bytes (what a disk or a tokenizer sees)."""
        return len(self.text.encode("utf-8", errors="surrogatepass"))


@dataclass(frozen=True)
class Dropped:
    """A document a stage removed: ``reason`` is a short category counted in reports
    (``"word_count"``, ``"near_duplicate"``), ``detail`` a human sentence about this document."""

    document: Document
    reason: str
    detail: str = ""


def as_document(item: Document | str | bytes, index: int) -> Document:
    """Accept a ``Document``, a string or raw bytes; bare items get the id ``doc-<index>``."""
    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(item, f"doc-{index}")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return Document.from_bytes(item, f"doc-{index}")
    raise TypeError(
        f"Item {index} is a {type(item).__name__}; a pipeline takes Document, str or bytes."
    )


def documents(source: Iterable[str | bytes | Document] | dict[str, str]) -> Iterator[Document]:
    """Documents from a ``{name: text}`` mapping (names become ids) or any iterable of texts."""
    if isinstance(source, dict):
        for index, (name, item) in enumerate(source.items()):
            document = as_document(item, index)
            yield document if isinstance(item, Document) else replace(document, id=str(name))
        return
    for index, item in enumerate(source):
        yield as_document(item, index)


class Stage:
    """Base class of pipeline stages: override ``process`` (one document in, one result out).

    Calling a stage on an iterable of documents is a generator of results, so stages chain
    lazily and hold one document at a time (deduplication stages also keep a fingerprint per
    distinct document, which they must). ``name`` labels the stage in reports.
    """

    name: str = "stage"

    def process(self, document: Document) -> Document | Dropped:
        raise NotImplementedError(f"{type(self).__name__} must define process(document).")

    def __call__(self, docs: Iterable[Document | str | bytes]) -> Iterator[Document | Dropped]:
        for index, item in enumerate(docs):
            yield self.process(as_document(item, index))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
