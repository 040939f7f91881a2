"""A growing key/value cache: generation without recomputing the past.

At step ``t`` a decoder needs the keys and values of all earlier positions, which never change.
Keeping them turns each new token's cost from ``O(t)`` projections into ``O(1)``; attention over
the cache is still ``O(t)``. A cache stores ``n_kv_head`` heads per layer (not the repeated
query-head count): grouped-query attention shrinks it by ``n_head / n_kv_head``
(Ainslie et al. 2023), e.g. 3x for SmolLM2 and 4x for LLaMA-3-8B.

The interface a model relies on (a static, preallocated cache can implement the same):

- ``seq_len``: positions already stored; the model reads it once, before its layers run, to
  place new tokens (``position = seq_len + i``) and to build masks;
- ``update(layer_index, k, v) -> (k_all, v_all)``: append ``k, v``
  ``(batch, n_kv_head, new, head_dim)`` to layer ``layer_index`` and return everything stored
  for that layer, ``(batch, n_kv_head, seq_len + new, head_dim)``;
- ``nbytes``: memory held by the stored tensors.
"""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer lists of keys and values that grow by concatenation (a "dynamic" cache).

    Start generation with an empty ``KVCache()``, pass it as ``kv_cache=`` to every forward,
    and feed only the new tokens after the first call.
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
    def nbytes(self) -> int:
        """Bytes held by all stored keys and values."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def __len__(self) -> int:
        return len(self.keys)

    def crop(self, seq_len: int) -> None:
        """Forget everything after the first ``seq_len`` positions (speculative decoding rolls
        back rejected tokens this way)."""
        self.keys = [k[..., :seq_len, :] for k in self.keys]
        self.values = [v[..., :seq_len, :] for v in self.values]

    def reorder(self, beam_index: torch.Tensor) -> None:
        """Keep batch rows ``beam_index`` (beam search picks which hypotheses survive)."""
        self.keys = [k.index_select(0, beam_index) for k in self.keys]
        self.values = [v.index_select(0, beam_index) for v in self.values]
