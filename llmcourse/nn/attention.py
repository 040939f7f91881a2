"""Scaled dot-product attention, written out and through PyTorch's fused kernel, and the
multi-head module built on it (MHA, grouped-query and multi-query attention).

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + B) V                 (Vaswani et al. 2017, eq. 1)

``B`` is an additive bias: ``-inf`` where the mask forbids a key, ALiBi's distance penalty
(Press et al. 2022) or T5's learned relative bias (Raffel et al. 2020). Dividing by √d_k keeps
the scores' variance near 1 when ``q`` and ``k`` have unit-variance entries: a dot product of
``d_k`` such terms has variance ``d_k``, and large scores would saturate the softmax.

Two paths give the same numbers: ``scaled_dot_product_attention`` is the explicit reference that
also returns the attention weights (for plots and the attention explorer);
``F.scaled_dot_product_attention`` is the fused fast path that never materialises them.

Shapes: queries ``(batch, n_head, q_len, head_dim)``, keys and values
``(batch, n_kv_head, k_len, head_dim)``; ``n_head`` must be a multiple of ``n_kv_head``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.nn.kv_cache import Cache
from llmcourse.nn.positional import apply_rope

AttentionImpl = Literal["sdpa", "explicit"]


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The explicit reference: returns ``(output, weights)``.

    ``q`` is ``(..., q_len, d_k)``, ``k`` and ``v`` are ``(..., k_len, d_k)`` with the same
    leading dims. ``mask`` is boolean (``True`` = may attend) or additive (added to the
    scores), broadcastable to ``(..., q_len, k_len)``. ``weights`` is ``(..., q_len, k_len)``
    and each row sums to 1. ``scale`` defaults to ``1/√d_k``.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., q_len, k_len)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    # Softmax in float32: in half precision exp() of large scores overflows.
    weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    impl: AttentionImpl = "sdpa",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention through either path; ``(output, weights or None)``.

    Keys and values may have fewer heads than queries (GQA/MQA): they are repeated to match.
    ``is_causal=True`` (with ``mask=None`` and square scores) lets the fused kernel skip building
    a mask at all.
    """
    if impl not in ("sdpa", "explicit"):
        raise ValueError(f"impl must be 'sdpa' or 'explicit', got {impl!r}.")
    n_rep = q.shape[-3] // k.shape[-3]
    if impl == "explicit":
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        if is_causal:
            from llmcourse.nn.masks import causal_mask

            mask = causal_mask(q.shape[-2], k.shape[-2], q.device)
        return scaled_dot_product_attention(q, k, v, mask, scale=scale, dropout_p=dropout_p)
    # enable_gqa lets the kernel read each key/value head for its whole group of query heads;
    # repeating them first would copy the whole cache at every decoding step (3-4x slower).
    out = F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=mask,
        dropout_p=dropout_p,
        is_causal=is_causal,
        scale=scale,
        enable_gqa=n_rep > 1,
    )
    return out, None


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """``(batch, n_kv_head, seq, d)`` → ``(batch, n_kv_head * n_rep, seq, d)``: each key/value
    head serves ``n_rep`` consecutive query heads (Ainslie et al. 2023)."""
    if n_rep == 1:
        return x
    batch, n_kv_head, seq, dim = x.shape
    return x[:, :, None].expand(batch, n_kv_head, n_rep, seq, dim).reshape(batch, -1, seq, dim)


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """``(batch, seq, n_head * head_dim)`` → ``(batch, n_head, seq, head_dim)``."""
    batch, seq, width = x.shape
    if width % n_head:
        raise ValueError(f"width {width} is not divisible by n_head={n_head}.")
    return x.view(batch, seq, n_head, width // n_head).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(batch, n_head, seq, head_dim)`` → ``(batch, seq, n_head * head_dim)``: the inverse of
    ``split_heads``."""
    batch, n_head, seq, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, seq, n_head * head_dim)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with ``n_kv_head`` key/value heads (Vaswani et al. 2017).

    ``n_kv_head == n_head``: multi-head; ``1``: multi-query (Shazeer 2019); in between:
    grouped-query (Ainslie et al. 2023). The projections are plain ``nn.Linear`` modules named
    ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj`` (quantization and LoRA swap them by name).
    ``attn_impl`` picks the fast (``"sdpa"``) or explicit path; asking for the weights always
    takes the explicit one.
    """

    def __init__(
        self,
        d_model: int,
        n_head: int,
        n_kv_head: int | None = None,
        head_dim: int | None = None,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        scale_scores: bool = True,
    ) -> None:
        super().__init__()
        n_kv_head = n_head if n_kv_head is None else n_kv_head
        if n_head % n_kv_head:
            raise ValueError(f"n_head={n_head} is not divisible by n_kv_head={n_kv_head}.")
        if head_dim is None:
            if d_model % n_head:
                raise ValueError(f"d_model={d_model} is not divisible by n_head={n_head}.")
            head_dim = d_model // n_head
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim
        self.dropout = dropout
        # T5 folds 1/√d_k into its initialisation and uses scale 1 (Raffel et al. 2020).
        self.scale = None if scale_scores else 1.0
        self.attn_impl: AttentionImpl = "sdpa"
        self.q_proj = nn.Linear(d_model, n_head * head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_head * head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_head * head_dim, bias=bias)
        self.o_proj = nn.Linear(n_head * head_dim, d_model, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        *,
        memory: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        kv_cache: Cache | None = None,
        layer_index: int = 0,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x``: ``(batch, q_len, d_model)`` → ``(batch, q_len, d_model)`` and the weights
        ``(batch, n_head, q_len, k_len)`` when ``output_attentions``.

        ``memory`` (``(batch, k_len, d_model)``): attend to it instead of ``x`` (cross-attention).
        ``rope``: ``(cos, sin)`` of shape ``(batch, q_len, head_dim)`` (or ``(batch, 1, q_len,
        head_dim)``, as ``DecoderLM`` passes them) rotate queries and keys.
        ``kv_cache``: keys/values of this call are added to ``kv_cache`` at ``layer_index``
        and attention runs over every position it returns (``mask`` must cover those).
        """
        source = x if memory is None else memory
        q = split_heads(self.q_proj(x), self.n_head)
        k = split_heads(self.k_proj(source), self.n_kv_head)
        v = split_heads(self.v_proj(source), self.n_kv_head)
        if rope is not None:
            cos, sin = rope
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(layer_index, k, v)
        impl = "explicit" if output_attentions else self.attn_impl
        dropout_p = self.dropout if self.training else 0.0
        out, weights = attend(
            q, k, v, mask, is_causal=is_causal, scale=self.scale, dropout_p=dropout_p, impl=impl
        )
        return self.o_proj(merge_heads(out)), weights
