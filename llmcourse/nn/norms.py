"""Normalisation layers: LayerNorm (Ba et al. 2016) and RMSNorm (Zhang & Sennrich 2019).

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) · g + b
    RMSNorm(x)   = x / sqrt(mean(x²) + eps) · g

RMSNorm drops the mean subtraction and the bias: cheaper, and in practice as good. It is what
T5, LLaMA, Mistral and SmolLM2 use; GPT-2, BERT and JAIS keep LayerNorm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6
) -> torch.Tensor:
    """``x / sqrt(mean(x², last dim) + eps) · weight``, computed in float32 like LLaMA does."""
    x32 = x.float()
    normed = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return normed if weight is None else normed * weight


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain ``weight`` (``(d_model,)``, starts at 1)."""

    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., d_model)`` → same shape."""
        if x.dtype == torch.float32 == self.weight.dtype:
            # PyTorch's one-op version of the same formula (already float32): one dispatch
            # instead of eight, which a decoding step of small matrices notices.
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return rms_norm(x, self.weight, self.eps)


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PaLM drops it: Chowdhery et al. 2022, §2)."""

    def __init__(self, d_model: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., d_model)`` → same shape (PyTorch's fused kernel)."""
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


def make_norm(kind: str, d_model: int, eps: float, bias: bool) -> nn.Module:
    """The norm a config names: ``"layernorm"`` or ``"rmsnorm"``."""
    if kind == "layernorm":
        return LayerNorm(d_model, eps, bias)
    if kind == "rmsnorm":
        if bias:
            raise ValueError("RMSNorm has no bias; set norm_bias=False (or None).")
        return RMSNorm(d_model, eps)
    raise ValueError(f"Unknown norm {kind!r}; use 'layernorm' or 'rmsnorm'.")
