"""Key/value caches: generation without recomputing the past.

At step ``t`` a decoder needs the keys and values of all earlier positions, which never change.
Keeping them turns each new token's cost from ``O(t)`` projections into ``O(1)``; attention over
the cache is still ``O(t)``. A cache stores ``n_kv_head`` heads per layer (not the repeated
query-head count): grouped-query attention shrinks it by ``n_head / n_kv_head``
(Ainslie et al. 2023), e.g. 3x for SmolLM2 and 4x for LLaMA-3-8B.

``Cache`` is the interface everything else uses (models, ``generate``, beam search, speculative
decoding, the server); nothing outside a cache class reads its tensors. Three implement it:

- ``KVCache``: per-layer lists that grow by concatenation (the one lesson 10 builds);
- ``SlidingWindowKVCache``: the same, but it forgets positions that have left a sliding
  attention window (Mistral's "rolling buffer", Jiang et al. 2023, §2), so its memory stops
  growing at the window;
- ``llmcourse.infer.StaticKVCache``: one buffer per layer allocated up front, written in place.

Shapes: keys and values are ``(batch, n_kv_head, positions, head_dim)``. Positions are columns
shared by the whole batch; a batch of prompts of different lengths is left-padded and the
padding masked by the model (``attention_mask``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol, Self, runtime_checkable

import torch
import torch.nn.functional as F


@runtime_checkable
class Cache(Protocol):
    """What a model and a decoding loop need from a key/value cache.

    A model reads ``seq_len`` and ``stored_len`` once per forward, before its layers run, then
    each attention layer calls ``update``. Decoding loops reshape the batch between steps with
    the other methods, all in place except ``cat``.
    """

    @property
    def seq_len(self) -> int:
        """Positions fed so far: the position of the next token."""
        ...

    @property
    def stored_len(self) -> int:
        """Positions whose keys/values are held: ``seq_len``, or fewer for a cache that forgets
        (``update`` returns ``stored_len + new`` positions, the *last* ones)."""
        ...

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored keys and values."""
        ...

    def update(
        self, layer_index: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``k, v`` ``(batch, n_kv_head, new, head_dim)`` to layer ``layer_index`` and return
        what attention needs, ``(batch, n_kv_head, stored_len + new, head_dim)``."""
        ...

    def crop(self, seq_len: int) -> None:
        """Forget positions from ``seq_len`` on (speculative decoding rolls back this way)."""
        ...

    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep batch rows ``rows`` (a 1-D index, in that order; repeats allowed): beam search
        reorders hypotheses, a server drops finished requests."""
        ...

    def pad_left(self, n: int) -> None:
        """Insert ``n`` empty positions before the first (the model must mask them)."""
        ...

    def trim_left(self, n: int) -> None:
        """Forget the first ``n`` positions; later positions move down by ``n``."""
        ...

    @classmethod
    def cat(cls, caches: Sequence[Self]) -> Self:
        """One batch from caches of the same length (pad the shorter ones first)."""
        ...


class KVCache:
    """Per-layer lists of keys and values that grow by concatenation (a "dynamic" cache).

    Start generation with an empty ``KVCache()``, pass it as ``kv_cache=`` to every forward,
    and feed only the new tokens after the first call. ``keys[i]`` and ``values[i]`` are
    layer ``i``'s tensors (lesson 10 writes ``update`` against them).
    """

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def update(
        self, layer_index: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's keys/values of one layer; return all of them for that layer."""
        if layer_index == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        elif layer_index < len(self.keys):
            self.keys[layer_index] = torch.cat((self.keys[layer_index], k), dim=-2)
            self.values[layer_index] = torch.cat((self.values[layer_index], v), dim=-2)
        else:
            raise ValueError(
                f"Layer {layer_index} updated before layer {len(self.keys)}: layers must fill "
                "the cache in order, starting from an empty cache."
            )
        return self.keys[layer_index], self.values[layer_index]

    @property
    def seq_len(self) -> int:
        """Positions stored (in layer 0); 0 for an empty cache."""
        return int(self.keys[0].shape[-2]) if self.keys else 0

    @property
    def stored_len(self) -> int:
        """Every position fed is kept: the same as ``seq_len``."""
        return int(self.keys[0].shape[-2]) if self.keys else 0

    @property
    def nbytes(self) -> int:
        """Bytes held by all stored keys and values."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def __len__(self) -> int:
        return len(self.keys)

    def crop(self, seq_len: int) -> None:
        """Forget everything after the first ``seq_len`` positions."""
        if not 0 <= seq_len <= self.seq_len:
            raise ValueError(f"crop: seq_len must be in 0..{self.seq_len}, got {seq_len}.")
        keep = seq_len - (self.seq_len - self.stored_len)  # stored positions that stay
        self.keys = [k[..., :keep, :] for k in self.keys]
        self.values = [v[..., :keep, :] for v in self.values]

    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep batch rows ``rows``, in that order."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]

    def pad_left(self, n: int) -> None:
        """Prepend ``n`` zero positions (masked by the model's ``attention_mask``)."""
        check_position_count(n, "pad_left")
        self.keys = [F.pad(k, (0, 0, n, 0)) for k in self.keys]
        self.values = [F.pad(v, (0, 0, n, 0)) for v in self.values]

    def trim_left(self, n: int) -> None:
        """Forget the first ``n`` positions."""
        check_position_count(n, "trim_left", self.seq_len)
        self.keys = [k[..., n:, :] for k in self.keys]
        self.values = [v[..., n:, :] for v in self.values]

    @classmethod
    def cat(cls, caches: Sequence[Self]) -> Self:
        """Stack the rows of ``caches`` (same class, length and layers) into one batch."""
        if not caches:
            raise ValueError("cat needs at least one cache.")
        classes = [type(c).__name__ for c in caches]
        if len(set(classes)) > 1:
            raise TypeError(f"cat joins caches of one class, got {classes}.")
        lengths = {(c.seq_len, c.stored_len, len(c)) for c in caches}
        if len(lengths) > 1:
            raise ValueError(
                f"cat needs caches of equal length and layer count, got (seq_len, stored_len, "
                f"layers) {sorted(lengths)}; pad_left the shorter ones first."
            )
        merged = copy.copy(caches[0])  # same settings (a subclass's window) as the first
        merged.keys = [torch.cat(layer) for layer in zip(*(c.keys for c in caches), strict=True)]
        merged.values = [
            torch.cat(layer) for layer in zip(*(c.values for c in caches), strict=True)
        ]
        return merged


class SlidingWindowKVCache(KVCache):
    """A ``KVCache`` for sliding-window attention: it keeps the last ``window - 1`` positions.

    With a window of ``W`` a token at position ``p`` attends to positions ``p - W + 1 .. p``
    only (Jiang et al. 2023, Mistral 7B, §2), so between calls the cache needs the last
    ``W - 1`` positions and the new token brings the ``W``-th. Anything older is dropped: memory
    stops growing at the window, which is what lets Mistral run long sequences with a cache of
    ``W`` = 4096 positions. ``seq_len`` still counts every position fed (RoPE needs absolute
    positions); ``stored_len`` is what is held.

    ``rollback`` keeps that many extra positions so ``crop`` can undo up to ``rollback``
    positions exactly (speculative decoding passes its number of draft tokens). Between calls
    it holds at most ``window - 1 + rollback`` positions per layer; during a call, those plus the
    new ones.
    """

    def __init__(self, window: int, rollback: int = 0) -> None:
        super().__init__()
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive number of positions, got {window!r}.")
        if isinstance(rollback, bool) or not isinstance(rollback, int) or rollback < 0:
            raise ValueError(f"rollback must be an int >= 0, got {rollback!r}.")
        self.window, self.rollback = window, rollback
        self.capacity = window - 1 + rollback
        self.offset = 0  # positions dropped from the front so far

    def update(
        self, layer_index: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append, return everything (this call's queries need it), then keep only the last
        ``capacity`` positions."""
        keys, values = super().update(layer_index, k, v)
        excess = keys.shape[-2] - self.capacity
        if excess > 0:
            self.keys[layer_index] = keys[..., excess:, :]
            self.values[layer_index] = values[..., excess:, :]
            if layer_index == 0:  # seq_len reads layer 0, so the offset moves with it
                self.offset += excess
        return keys, values

    @property
    def seq_len(self) -> int:
        """Positions fed so far, including the ones dropped."""
        return self.offset + self.stored_len

    def crop(self, seq_len: int) -> None:
        """Forget positions from ``seq_len`` on; exact only while the window before
        ``seq_len`` is still held (at most ``rollback`` positions back after a full window)."""
        needed = min(seq_len, self.window - 1)  # positions the next token must still see
        if 0 <= seq_len <= self.seq_len and seq_len - self.offset < needed:
            raise ValueError(
                f"This sliding-window cache holds positions {self.offset}..{self.seq_len - 1}; "
                f"rolling back to {seq_len} needs the {needed} before it. Create it with "
                f"rollback >= {self.seq_len - seq_len}."
            )
        super().crop(seq_len)

    def pad_left(self, n: int) -> None:
        """Prepend ``n`` positions; any beyond the capacity are dropped at once."""
        super().pad_left(n)
        excess = self.stored_len - self.capacity
        if excess > 0:
            super().trim_left(excess)
            self.offset += excess

    def trim_left(self, n: int) -> None:
        """Forget the first ``n`` positions (dropped ones first)."""
        check_position_count(n, "trim_left", self.seq_len)
        dropped = min(n, self.offset)
        self.offset -= dropped
        super().trim_left(n - dropped)


def check_position_count(n: int, what: str, at_most: int | None = None) -> None:
    """Raise ``ValueError`` unless ``n`` is an int in ``0..at_most`` (a count of positions)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{what}: n must be an int >= 0, got {n!r}.")
    if at_most is not None and n > at_most:
        raise ValueError(f"{what}: n={n} exceeds the {at_most} positions available.")
