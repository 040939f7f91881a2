"""Train/validation split by document hash: reproducible, order-free and leakage-free.

Splitting by position ("the last 10% of the files") or by a random shuffle puts copies of one
document on both sides whenever the corpus holds duplicates, and the validation loss then
rewards memorisation. Assigning each document by a hash of its normalised text instead means:

- copies that are equal after normalisation always land in the same split;
- the assignment never changes when documents are added, removed or reordered, so a validation
  set stays valid as the corpus grows;
- no state is kept, so it streams.

    u(x) = BLAKE2b_seed(normalise(x)) / 2⁶⁴ ∈ [0, 1),   split(x) = "val" if u(x) < f else "train"

Near duplicates hash differently, so run ``NearDedup`` before splitting.
"""

from __future__ import annotations

import hashlib

from llmcourse.data.document import Document, Stage


def split_fraction(text: str, seed: int = 0) -> float:
    """A uniform number in [0, 1) that depends only on the normalised text and ``seed``."""
    canonical = " ".join(text.casefold().split()).encode("utf-8")
    key = seed.to_bytes(8, "little", signed=False)
    digest = hashlib.blake2b(canonical, digest_size=8, key=key).digest()
    return int.from_bytes(digest, "little") / 2**64


def assign_split(text: str, val_fraction: float = 0.1, seed: int = 0) -> str:
    """``"val"`` for about ``val_fraction`` of all texts, ``"train"`` for the rest."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}.")
    return "val" if split_fraction(text, seed) < val_fraction else "train"


class TrainValSplit(Stage):
    """Tag each document with ``meta["split"]`` (``"train"`` or ``"val"``); never drops."""

    name = "split"

    def __init__(self, val_fraction: float = 0.1, seed: int = 0) -> None:
        if not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}.")
        assign_split("", val_fraction, seed)  # validates val_fraction now
        self.val_fraction, self.seed = val_fraction, seed

    def process(self, document: Document) -> Document:
        return document.with_meta(split=assign_split(document.text, self.val_fraction, self.seed))
