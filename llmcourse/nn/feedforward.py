"""The position-wise feed-forward network: plain MLPs and gated linear units.

    MLP(x)    = W_down · act(W_up x + b_up) + b_down           act = GELU (GPT-2, BERT) or ReLU (T5)
    SwiGLU(x) = W_down · (SiLU(W_gate x) ⊙ W_up x)             (Shazeer 2020; LLaMA, Mistral, JAIS)
    GeGLU(x)  = W_down · (GELU(W_gate x) ⊙ W_up x)             (Shazeer 2020; T5 v1.1, Gemma)

A gated MLP has three matrices instead of two, so at equal parameter count its hidden width is
2/3 of a plain MLP's: LLaMA uses d_ff = 8/3 · d_model (rounded), Touvron et al. 2023, §2.
Layers are ``nn.Linear`` named ``up_proj``, ``gate_proj``, ``down_proj``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "relu": F.relu,
    "silu": F.silu,
}


def swiglu(
    x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor
) -> torch.Tensor:
    """SwiGLU with bias-free weights in ``nn.Linear`` layout: ``w_gate``/``w_up`` are
    ``(d_ff, d_model)``, ``w_down`` is ``(d_model, d_ff)``; ``x`` is ``(..., d_model)``."""
    return F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


class MLP(nn.Module):
    """Two layers with an activation between: ``(..., d_model)`` → ``(..., d_model)``."""

    def __init__(
        self, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = True, dropout=0.0
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; use one of {list(ACTIVATIONS)}.")
        self.activation = ACTIVATIONS[activation]
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.activation(self.up_proj(x))
        return self.down_proj(self.dropout(hidden) if self.training else hidden)


class GatedMLP(nn.Module):
    """SwiGLU (``activation="silu"``) or GeGLU (``"gelu"``): ``(..., d_model)`` → same."""

    def __init__(
        self, d_model: int, d_ff: int, activation: str = "silu", bias: bool = False, dropout=0.0
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; use one of {list(ACTIVATIONS)}.")
        self.activation = ACTIVATIONS[activation]
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.activation(self.gate_proj(x)) * self.up_proj(x)
        return self.down_proj(self.dropout(hidden) if self.training else hidden)


def make_mlp(kind: str, d_model: int, d_ff: int, bias: bool, dropout: float = 0.0) -> nn.Module:
    """The feed-forward block a config names: gelu, gelu_tanh, relu, swiglu or geglu."""
    if kind == "swiglu":
        return GatedMLP(d_model, d_ff, "silu", bias, dropout)
    if kind == "geglu":
        return GatedMLP(d_model, d_ff, "gelu", bias, dropout)
    return MLP(d_model, d_ff, kind, bias, dropout)
