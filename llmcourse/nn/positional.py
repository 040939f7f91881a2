"""How a Transformer knows word order: five ways to put positions into attention.

Attention itself is permutation-invariant, so position must enter somewhere:

| scheme | where | paper |
|---|---|---|
| sinusoidal | added to the embeddings, fixed | Vaswani et al. 2017, §3.5 |
| learned | added to the embeddings, one vector per position | Radford et al. 2018 (GPT-1), BERT |
| RoPE | rotates q and k; scores depend on ``i - j`` only | Su et al. 2021 (LLaMA, SmolLM2) |
| ALiBi | a per-head penalty ``-m·|i - j|`` on the scores | Press et al. 2022 (BLOOM, JAIS) |
| T5 relative bias | a learned per-head bias per distance bucket | Raffel et al. 2020 |
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_encoding(n_positions: int, d_model: int) -> torch.Tensor:
    """``(n_positions, d_model)``: ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(…)``.

    Each pair of channels is a clock with its own wavelength (2π … 10000·2π), so a shift by
    ``k`` positions is a fixed rotation of every pair (Vaswani et al. 2017, §3.5).
    """
    if d_model % 2:
        raise ValueError(f"sinusoidal encodings pair up channels; d_model={d_model} must be even.")
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * -math.log(1e4) / d_model
    )
    encoding = torch.zeros(n_positions, d_model)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)
    return encoding


class SinusoidalPositionalEmbedding(nn.Module):
    """Adds nothing learnable: looks up rows of ``sinusoidal_encoding`` by position."""

    def __init__(self, n_positions: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_encoding(n_positions, d_model), persistent=False)

    def forward(
        self, position_ids: torch.Tensor, *, max_position: int | None = None
    ) -> torch.Tensor:
        """``(batch, seq)`` positions → ``(batch, seq, d_model)``; ``max_position``: see
        ``LearnedPositionalEmbedding.forward``."""
        _check_length(position_ids, self.table.shape[0], "sinusoidal", max_position)
        return self.table[position_ids]


class LearnedPositionalEmbedding(nn.Embedding):
    """One trained vector per position (GPT-2, BERT): cannot go past ``n_positions``."""

    def forward(
        self, position_ids: torch.Tensor, *, max_position: int | None = None
    ) -> torch.Tensor:
        """``(batch, seq)`` positions → ``(batch, seq, d_model)``.

        ``max_position``: the largest position, when the caller already knows it; otherwise
        it is read from ``position_ids`` (a host sync on an accelerator).
        """
        _check_length(position_ids, self.num_embeddings, "learned", max_position)
        return super().forward(position_ids)


def absolute_position_embedding(kind: str, n_positions: int, d_model: int) -> nn.Module | None:
    """The position table *added* to the token embeddings: ``"learned"`` or ``"sinusoidal"``.

    ``None`` for the schemes that act inside attention instead (RoPE, ALiBi, relative bias).
    """
    if kind == "learned":
        return LearnedPositionalEmbedding(n_positions, d_model)
    if kind == "sinusoidal":
        return SinusoidalPositionalEmbedding(n_positions, d_model)
    return None


def _check_length(
    position_ids: torch.Tensor, n_positions: int, kind: str, max_position: int | None = None
) -> None:
    if max_position is None and position_ids.numel():
        max_position = int(position_ids.max())
    if max_position is not None and max_position >= n_positions:
        raise ValueError(
            f"Position {max_position} is past this model's context of {n_positions} "
            f"positions ({kind} position embeddings have no vector for it). Shorten the input to "
            f"at most {n_positions} tokens (e.g. input_ids[:, -{n_positions}:]) or build the model "
            "with a larger context_length."
        )


# ---------------------------------------------------------------------------------------------
# Rotary position embedding (RoPE)
# ---------------------------------------------------------------------------------------------


def rope_cos_sin(
    position_ids: torch.Tensor, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of the rotation angles, each ``(*position_ids.shape, head_dim)``.

    Channel pair ``i`` (channels ``i`` and ``i + head_dim/2``: the "rotate-half" layout of
    Hugging Face's LLaMA) turns by angle ``p · θ^(-2i/head_dim)`` at position ``p``. Weights
    trained with neighbouring pairs ``2i, 2i + 1`` (Meta's LLaMA release, GPT-J) load after
    ``llmcourse.models.hf.convert_rope_layout`` reorders their query and key rows.
    """
    if head_dim % 2:
        raise ValueError(f"RoPE rotates pairs of channels; head_dim={head_dim} must be even.")
    inverse_frequency = 1.0 / theta ** (
        torch.arange(0, head_dim, 2, dtype=torch.float32, device=position_ids.device) / head_dim
    )
    angles = position_ids.float().unsqueeze(-1) * inverse_frequency  # (..., head_dim / 2)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] → [-x2, x1]`` on the last dim: multiplying by ``i`` for each channel pair."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``(batch, heads, seq, head_dim)`` by the angles of ``rope_cos_sin``.

    ``x·cos + rotate_half(x)·sin`` is the 2-D rotation ``[[cos, -sin], [sin, cos]]`` of each
    channel pair. Rotating both ``q`` (at position ``m``) and ``k`` (at ``n``) makes ``q·k``
    depend on ``m - n`` only (Su et al. 2021, eq. 16). ``cos``/``sin`` are
    ``(batch, seq, head_dim)`` or ``(seq, head_dim)``.
    """
    if cos.dim() == 3:  # (batch, seq, head_dim): broadcast over heads
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    if cos.dtype != x.dtype:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """Holds RoPE's base ``θ`` and gives ``(cos, sin)`` for a batch of positions.

    θ = 10,000 in LLaMA 1/2 and Mistral, 500,000 in LLaMA 3, 100,000 in SmolLM2-135M.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.head_dim, self.theta = head_dim, theta

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rope_cos_sin(position_ids, self.head_dim, self.theta)


# ---------------------------------------------------------------------------------------------
# ALiBi
# ---------------------------------------------------------------------------------------------


def alibi_slopes(n_head: int) -> torch.Tensor:
    """``(n_head,)`` slopes ``m_h``: the geometric sequence ``2^(-8h/n)``, ``h = 1..n``.

    For a head count that is not a power of two, take the slopes of the closest smaller power
    of two and fill up with every other slope of twice that many (Press et al. 2022, §3).
    """
    if n_head <= 0:
        raise ValueError(f"n_head must be positive, got {n_head}.")

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    closest = 2 ** math.floor(math.log2(n_head))
    slopes = power_of_two(closest)
    slopes += power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(slopes)


def alibi_bias(
    n_head: int, q_len: int, k_len: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """``(n_head, q_len, k_len)`` additive scores ``-m_h · |i - j|`` (queries end-aligned).

    Query ``i`` sits at absolute position ``k_len - q_len + i`` (after cached keys). Added to
    every layer's attention scores in place of position embeddings; under a causal mask only
    keys ``j ≤ i`` remain, where the bias is ``-m_h · (i - j)`` (Press et al. 2022, §3).
    """
    k_len = q_len if k_len is None else k_len
    query = torch.arange(k_len - q_len, k_len, device=device).unsqueeze(1)
    key = torch.arange(k_len, device=device).unsqueeze(0)
    distance = (query - key).abs().float()
    return -alibi_slopes(n_head).to(device)[:, None, None] * distance


# ---------------------------------------------------------------------------------------------
# T5 relative position bias
# ---------------------------------------------------------------------------------------------


def relative_position_bucket(
    relative_position: torch.Tensor,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """Map ``key - query`` distances to bucket ids (Raffel et al. 2020, §2.1).

    Half the buckets hold exact small distances; the rest cover distances up to
    ``max_distance`` on a log scale, and anything further shares the last bucket. A
    bidirectional (encoder) bias gives past and future separate halves of the buckets; a causal
    (decoder) one only sees the past.
    """
    bucket = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket += (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    exact = num_buckets // 2
    is_small = distance < exact
    # Float log of 0 is -inf; those entries are "small" and replaced by torch.where.
    log_ratio = torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact)
    large = exact + (log_ratio * (num_buckets - exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return bucket + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
    """T5's learned bias: one scalar per (bucket, head), shared by every layer of a stack."""

    def __init__(
        self,
        n_head: int,
        num_buckets: int = 32,
        max_distance: int = 128,
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.bidirectional = bidirectional
        self.relative_attention_bias = nn.Embedding(num_buckets, n_head)

    def forward(self, q_len: int, k_len: int | None = None) -> torch.Tensor:
        """``(1, n_head, q_len, k_len)`` additive scores (queries end-aligned with keys)."""
        k_len = q_len if k_len is None else k_len
        device = self.relative_attention_bias.weight.device
        query = torch.arange(k_len - q_len, k_len, device=device).unsqueeze(1)
        key = torch.arange(k_len, device=device).unsqueeze(0)
        buckets = relative_position_bucket(
            key - query,
            bidirectional=self.bidirectional,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)
