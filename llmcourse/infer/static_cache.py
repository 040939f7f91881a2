"""A preallocated ("static") key/value cache: one buffer per layer, written in place.

The dynamic ``llmcourse.nn.KVCache`` grows by concatenation, which copies the whole cache at
every step (``O(t)`` bytes moved for token ``t``) and lets memory use creep up as the text
grows. A static cache allocates ``(batch, n_kv_head, max_len, head_dim)`` per layer once and
writes each step's keys and values into the next free slots, so memory is known before
generation starts (what a server needs to admit requests) and nothing is copied. Fixed shapes
are also what ``torch.compile`` and CUDA graphs want.

It implements ``llmcourse.nn.Cache`` like ``KVCache``, so ``DecoderLM`` does not know which one
it got. It is GQA-aware: it stores ``n_kv_head`` heads, not ``n_head``, so its size is exactly
``llmcourse.models.counting.kv_cache_bytes(config, max_len, batch, dtype)``. A sliding-window
model may use it too (the model masks what is outside the window); it then holds ``max_len``
positions, not the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import torch

from llmcourse.config import ModelConfig
from llmcourse.nn.kv_cache import check_position_count


class StaticKVCache:
    """Keys and values for up to ``max_len`` positions of ``batch_size`` sequences.

    ``update(layer_index, k, v)`` writes ``k, v`` ``(batch, n_kv_head, new, head_dim)`` at
    positions ``seq_len .. seq_len + new - 1`` of that layer and returns views of everything
    written so far, ``(batch, n_kv_head, seq_len + new, head_dim)``. Layers are filled in order;
    ``seq_len`` advances when the last layer has been written.
    """

    def __init__(
        self,
        config: ModelConfig,
        max_len: int,
        batch_size: int = 1,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        if max_len <= 0 or batch_size <= 0:
            raise ValueError(f"Need max_len > 0 and batch_size > 0, got {max_len}, {batch_size}.")
        if max_len > config.context_length:
            raise ValueError(
                f"max_len={max_len} exceeds the model's context length {config.context_length}."
            )
        shape = (batch_size, config.n_kv_head, max_len, config.head_dim)
        self.n_layer = config.n_layer
        self.max_len = max_len
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(self.n_layer)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(self.n_layer)]
        self._length = 0

    @property
    def seq_len(self) -> int:
        """Positions written in every layer so far."""
        return self._length

    @property
    def stored_len(self) -> int:
        """Every position written is kept: the same as ``seq_len``."""
        return self._length

    def update(
        self, layer_index: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write this step's keys/values of one layer; return views of all of them."""
        start, new = self._length, k.shape[-2]
        end = start + new
        if end > self.max_len:
            raise ValueError(
                f"The static cache holds {self.max_len} positions; writing {new} more after "
                f"{start} overflows it. Allocate it with a larger max_len."
            )
        self.keys[layer_index][:, :, start:end] = k
        self.values[layer_index][:, :, start:end] = v
        if layer_index == self.n_layer - 1:
            self._length = end
        return self.keys[layer_index][:, :, :end], self.values[layer_index][:, :, :end]

    @property
    def nbytes(self) -> int:
        """Bytes allocated (the whole buffer, used or not): what a server must reserve."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def __len__(self) -> int:
        return self.n_layer

    def crop(self, seq_len: int) -> None:
        """Forget positions from ``seq_len`` on (nothing is freed; they will be overwritten)."""
        if not 0 <= seq_len <= self._length:
            raise ValueError(f"crop: seq_len must be in 0..{self._length}, got {seq_len}.")
        self._length = seq_len

    def select_rows(self, rows: torch.Tensor) -> None:
        """Keep batch rows ``rows``, in that order (new buffers of ``len(rows)`` rows)."""
        for buffers in (self.keys, self.values):
            for i, buffer in enumerate(buffers):
                buffers[i] = buffer.index_select(0, rows)

    def pad_left(self, n: int) -> None:
        """Shift the written positions right by ``n`` and zero the ``n`` freed at the front."""
        check_position_count(n, "pad_left", self.max_len - self._length)
        end = self._length
        for buffer in (*self.keys, *self.values):
            buffer[:, :, n : n + end] = buffer[:, :, :end].clone()  # overlapping copy
            buffer[:, :, :n] = 0
        self._length += n

    def trim_left(self, n: int) -> None:
        """Shift the written positions left by ``n``, forgetting the first ``n``."""
        check_position_count(n, "trim_left", self._length)
        end = self._length
        for buffer in (*self.keys, *self.values):
            buffer[:, :, : end - n] = buffer[:, :, n:end].clone()
        self._length -= n

    @classmethod
    def cat(cls, caches: Sequence[Self]) -> Self:
        """Stack the rows of equally long static caches into one (``max_len`` of the first)."""
        if not caches:
            raise ValueError("cat needs at least one cache.")
        shapes = {(c._length, c.max_len, c.n_layer) for c in caches}
        if len(shapes) > 1:
            raise ValueError(
                f"cat needs static caches of equal length, max_len and layers, got "
                f"{sorted(shapes)}; pad_left the shorter ones first."
            )
        merged = cls.__new__(cls)
        merged.n_layer, merged.max_len, merged._length = (
            caches[0].n_layer,
            caches[0].max_len,
            caches[0]._length,
        )
        merged.keys = [torch.cat(layer) for layer in zip(*(c.keys for c in caches), strict=True)]
        merged.values = [
            torch.cat(layer) for layer in zip(*(c.values for c in caches), strict=True)
        ]
        return merged
