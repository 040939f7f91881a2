"""Plots of positional encodings: sinusoidal clocks, RoPE's decay with distance, ALiBi's lines.

Each function draws on ``ax`` (a new figure when ``None``) and returns the axes; the numbers
come from ``llmcourse.nn.positional``, so the plots show exactly what the models use.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes

from llmcourse.nn.positional import alibi_slopes, apply_rope, rope_cos_sin, sinusoidal_encoding


def _axes(ax: Axes | None, size: tuple[float, float] = (6, 3.5)) -> Axes:
    return plt.subplots(figsize=size)[1] if ax is None else ax


def plot_sinusoidal(n_positions: int = 128, d_model: int = 64, ax: Axes | None = None) -> Axes:
    """Heatmap of ``sinusoidal_encoding``: fast clocks on the left, slow ones on the right."""
    ax = _axes(ax)
    image = ax.imshow(
        sinusoidal_encoding(n_positions, d_model).numpy(),
        aspect="auto",
        cmap="RdBu",
        vmin=-1,
        vmax=1,
    )
    ax.grid(False)  # a themed grid (llmcourse.viz.set_theme) would stripe the image
    ax.figure.colorbar(image, ax=ax, label="value")
    ax.set_title(f"Sinusoidal position encodings (d_model = {d_model})")
    ax.set_xlabel("channel (pairs: sin, cos)")
    ax.set_ylabel("position (tokens)")
    return ax


def rope_scores(
    distances: torch.Tensor, head_dim: int = 64, theta: float = 10000.0
) -> torch.Tensor:
    """``q · k`` after RoPE for ``q = k = (1, …, 1)`` at each relative distance, / head_dim.

    Equals ``mean_i cos(distance · θ^(-2i/head_dim))``: 1 at distance 0 and decaying (with
    ripples) as tokens move apart — RoPE's "long-term decay" (Su et al. 2021, §3.4.3).
    """
    ones = torch.ones(1, 1, 1, head_dim)
    cos0, sin0 = rope_cos_sin(torch.zeros(1), head_dim, theta)
    query = apply_rope(ones, cos0, sin0)
    cos, sin = rope_cos_sin(distances.float(), head_dim, theta)
    keys = apply_rope(ones.expand(1, 1, len(distances), head_dim), cos, sin)
    return (keys * query).sum(-1).flatten() / head_dim


def plot_rope_decay(
    max_distance: int = 512,
    head_dim: int = 64,
    thetas: tuple[float, ...] = (10000.0, 500000.0),
    ax: Axes | None = None,
) -> Axes:
    """How RoPE's score between identical vectors falls with distance, for several ``θ``."""
    ax = _axes(ax)
    distances = torch.arange(max_distance + 1)
    for theta in thetas:
        ax.plot(distances, rope_scores(distances, head_dim, theta), label=f"θ = {theta:,.0f}")
    ax.set_title(f"RoPE: similarity of identical q and k vs distance (head_dim = {head_dim})")
    ax.set_xlabel("relative distance (tokens)")
    ax.set_ylabel("q·k / head_dim")
    ax.legend()
    return ax


def plot_alibi(n_head: int = 8, max_distance: int = 32, ax: Axes | None = None) -> Axes:
    """ALiBi's penalty ``-m_h · distance`` for each head's slope ``m_h`` (Press et al. 2022)."""
    ax = _axes(ax)
    distances = torch.arange(max_distance + 1)
    for head, slope in enumerate(alibi_slopes(n_head).tolist()):
        ax.plot(distances, -slope * distances, label=f"head {head}: m = 1/{1 / slope:g}")
    ax.set_title(f"ALiBi bias added to attention scores ({n_head} heads)")
    ax.set_xlabel("distance to the key (tokens)")
    ax.set_ylabel("bias (added to the logit)")
    ax.legend(fontsize=7, ncol=2)
    return ax
