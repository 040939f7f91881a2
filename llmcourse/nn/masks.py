"""Attention masks: which key positions each query position may look at.

Every mask here is a boolean tensor where ``True`` means *may attend*. Shapes broadcast against
the attention scores ``(batch, heads, q_len, k_len)``: a mask shared by the whole batch is
``(q_len, k_len)``, a per-sequence mask ``(batch, 1, q_len, k_len)``.

Queries may come after cached keys (generation with a KV cache): then query ``i`` sits at
absolute position ``offset + i`` with ``offset = k_len - q_len``, and every mask below lines the
queries up with the *end* of the keys.

| mask | who may attend to whom | used by |
|---|---|---|
| causal | key position ≤ query position | GPT, LLaMA (Radford et al. 2018) |
| padding | every real (non-pad) key | BERT, batched generation |
| prefix-LM | the prefix both ways, the rest causally | T5's prefix LM, UniLM (Dong et al. 2019) |
| sliding window | the last ``window`` positions, causally | Mistral (Jiang et al. 2023) |
"""

from __future__ import annotations

import torch


def _positions(q_len: int, k_len: int, device: torch.device | None) -> tuple[torch.Tensor, ...]:
    """Absolute positions of queries ``(q_len, 1)`` and keys ``(1, k_len)``, end-aligned."""
    if q_len > k_len:
        raise ValueError(
            f"q_len={q_len} cannot exceed k_len={k_len}: queries are a suffix of keys."
        )
    query = torch.arange(k_len - q_len, k_len, device=device).unsqueeze(1)
    key = torch.arange(k_len, device=device).unsqueeze(0)
    return query, key


def causal_mask(q_len: int, k_len: int | None = None, device: torch.device | None = None):
    """``(q_len, k_len)``: query ``i`` sees keys ``0..i`` (lower-triangular when square)."""
    query, key = _positions(q_len, q_len if k_len is None else k_len, device)
    return key <= query


def sliding_window_mask(
    q_len: int, window: int, k_len: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """``(q_len, k_len)``: query ``i`` sees keys ``i - window + 1 .. i`` (Mistral's window ``W``).

    Information still travels further than ``window``: after ``L`` layers a token can be
    influenced by ``L · W`` positions back (Jiang et al. 2023, §2).
    """
    if window <= 0:
        raise ValueError(f"window must be a positive number of positions, got {window}.")
    query, key = _positions(q_len, q_len if k_len is None else k_len, device)
    return (key <= query) & (key > query - window)


def prefix_lm_mask(
    q_len: int,
    prefix_len: int | torch.Tensor,
    k_len: int | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Prefix LM: the first ``prefix_len`` positions attend to each other freely, the rest
    causally (Raffel et al. 2020, §3.2.1, Fig. 3; Dong et al. 2019, UniLM).

    One decoder-only stack thus reads its input (the prefix) bidirectionally, like an encoder,
    and still generates the continuation left to right. An int ``prefix_len`` gives one
    ``(q_len, k_len)`` mask; a tensor of per-sequence lengths ``(batch,)`` gives
    ``(batch, 1, q_len, k_len)``.
    """
    k_len = q_len if k_len is None else k_len
    if isinstance(prefix_len, torch.Tensor):
        lengths = prefix_len.reshape(-1, 1, 1)  # (batch, 1, 1)
        device = lengths.device if device is None else device
        out_of_range = bool(((lengths < 0) | (lengths > k_len)).any())
    else:
        lengths = prefix_len
        out_of_range = isinstance(prefix_len, bool) or not 0 <= prefix_len <= k_len
    if out_of_range:
        raise ValueError(
            f"prefix_len must lie in [0, k_len={k_len}] (a prefix inside the sequence), got "
            f"{prefix_len}."
        )
    query, key = _positions(q_len, k_len, device)
    mask = (key <= query) | (key < lengths)  # (q_len, k_len) or (batch, q_len, k_len)
    return mask.unsqueeze(1) if mask.dim() == 3 else mask


def padding_mask(attention_mask: torch.Tensor, q_len: int | None = None) -> torch.Tensor:
    """``(batch, 1, q_len, k_len)`` from a ``(batch, k_len)`` 0/1 mask (1 = real token).

    Every query may attend to every real key. ``q_len`` defaults to ``k_len``.
    """
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must be (batch, seq) with 1 for real tokens and 0 for padding; got "
            f"shape {tuple(attention_mask.shape)}."
        )
    keys = attention_mask.bool()[:, None, None, :]
    q_len = attention_mask.shape[1] if q_len is None else q_len
    return keys.expand(-1, 1, q_len, -1)


def combine_masks(
    q_len: int,
    k_len: int,
    *,
    causal: bool,
    attention_mask: torch.Tensor | None = None,
    sliding_window: int | None = None,
    prefix_len: int | None = None,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """The one boolean mask a forward pass needs, or ``None`` when nothing is masked.

    Returns ``(q_len, k_len)`` or ``(batch, 1, q_len, k_len)``. A model calls this once per
    forward and shares the result between layers. ``None`` lets the caller use the fastest path
    (no mask at all, or ``is_causal=True`` in ``F.scaled_dot_product_attention``).

    A query whose every key is masked (a left-pad position) would give softmax over nothing,
    i.e. NaN; such queries are allowed to see their own position, and their outputs are ignored.
    """
    mask = None
    if sliding_window is not None and causal:
        mask = sliding_window_mask(q_len, sliding_window, k_len, device)
    elif prefix_len is not None and causal:
        mask = prefix_lm_mask(q_len, prefix_len, k_len, device)
    elif causal:
        mask = causal_mask(q_len, k_len, device)
    if attention_mask is not None:
        if attention_mask.shape[-1] != k_len:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[-1]} positions but the keys are "
                f"{k_len} long; with a KV cache pass the mask for cached + new tokens."
            )
        pad = padding_mask(attention_mask, q_len)
        mask = pad if mask is None else pad & mask
        query, key = _positions(q_len, k_len, device)
        mask = mask | (key == query)
    return mask
