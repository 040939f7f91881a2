"""A preallocated ("static") key/value cache: one buffer per layer, written in place.

The dynamic ``llmcourse.nn.KVCache`` grows by concatenation, which copies the whole cache at
every step (``O(t)`` bytes moved for token ``t``) and lets memory use creep up as the text
grows. A static cache allocates ``(batch, n_kv_head, max_len, head_dim)`` per layer once and
writes each step's keys and values into the next free slots, so memory is known before
generation starts (what a server needs to admit requests) and nothing is copied.

It implements the same small interface as ``KVCache`` (``seq_len``, ``update``, ``nbytes``,
``crop``, ``reorder``), so ``DecoderLM`` does not know which one it got. It is GQA-aware: it
stores ``n_kv_head`` heads, not ``n_head``, so its size is exactly
``llmcourse.models.counting.kv_cache_bytes(config, max_len, batch, dtype)``.
"""

from __future__ import annotations

import torch

from llmcourse.config import ModelConfig


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

    def reorder(self, beam_index: torch.Tensor) -> None:
        """Keep batch rows ``beam_index`` (same batch size: beam search reorders hypotheses)."""
        if beam_index.numel() != self.keys[0].shape[0]:
            raise ValueError("A static cache keeps its batch size; pass one index per row.")
        for buffers in (self.keys, self.values):
            for i, buffer in enumerate(buffers):
                buffers[i] = buffer.index_select(0, beam_index)
