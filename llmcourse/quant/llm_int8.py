"""Int8 matmuls with dynamic activation quantization, and LLM.int8()'s outlier decomposition.

**Dynamic activation quantization (W8A8).** Weights are quantized once, per output channel;
activations are quantized at run time, one absmax scale per token (row), because their range
changes with every input. The product of two int8 matrices is accumulated exactly in int32 and
rescaled by the outer product of the scales (Dettmers et al. 2022, "vector-wise"
quantization, eq. 3):

    Y ≈ (s_x s_wᵀ) ⊙ (Q_x Q_wᵀ),     Q_x = round(X / s_x),  s_x = max_j |X_ij| / 127

**LLM.int8()** (Dettmers et al. 2022, §3.2). From about 6.7B parameters on, a few hidden
dimensions carry activations up to 20x larger than the rest, in every layer. One such
outlier in a row inflates that row's scale and erases the other values' precision. LLM.int8()
splits the matmul by input dimension: the columns where any ``|x| >= threshold`` (6.0 in the
paper) are multiplied in floating point, everything else in int8:

    Y = X_O W_Oᵀ (float)  +  dequant(Q_x Q_wᵀ)(other columns)

Here the float part uses the de-quantized int8 weight columns (as ``bitsandbytes`` does), so
the layer still stores only int8 weights; the precision comes from leaving the outlier
*activations* unquantized. ``threshold=None`` gives plain W8A8.
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.quant.functional import absmax_quantize
from llmcourse.quant.linear import QuantizedLinear

# Products of int8 values are at most 127² = 16,129 in size, so float32 (24-bit mantissa)
# adds up to 1,040 of them exactly: 1,040 · 16,129 < 2^24. Chunking the inner dimension keeps
# every partial sum exact while using the fast float matmul (CPU int8 GEMMs in PyTorch, such
# as torch._int_mm, are far slower here).
_EXACT_CHUNK = 1024


def int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact ``a @ bᵀ`` for int8 ``a`` ``(m, k)`` and ``b`` ``(n, k)``, as int32 ``(m, n)``."""
    if a.dtype != torch.int8 or b.dtype != torch.int8:
        raise TypeError(f"int8_matmul takes int8 tensors, got {a.dtype} and {b.dtype}.")
    total = None
    for start in range(0, a.shape[1], _EXACT_CHUNK):
        chunk = slice(start, start + _EXACT_CHUNK)
        part = (a[:, chunk].float() @ b[:, chunk].float().t()).to(torch.int32)
        total = part if total is None else total + part
    return total


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-token quantization: ``x`` ``(tokens, k)`` → int8 ``(tokens, k)`` and
    scales ``(tokens, 1)``, computed from this very input."""
    return absmax_quantize(x, bits=8, dim=-1)


class LLMInt8Linear(QuantizedLinear):
    """Int8 weights (per output channel) times dynamically quantized int8 activations, with
    activation outlier columns kept in float when ``threshold`` is set."""

    def __init__(self, linear: nn.Linear, threshold: float | None = 6.0) -> None:
        super().__init__(linear)
        if threshold is not None and threshold <= 0:
            raise ValueError(f"threshold must be positive or None, got {threshold}.")
        self.threshold = threshold
        q, scale = absmax_quantize(linear.weight.detach(), bits=8, dim=-1)
        self.register_buffer("weight_int8", q)  # (out, in)
        self.register_buffer("scale", scale)  # (out, 1)
        self.last_outlier_columns = 0  # how many input columns the last call kept in float

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, self.in_features).float()
        outliers = None
        if self.threshold is not None:
            outliers = (flat.abs() >= self.threshold).any(dim=0)  # (in,)
            self.last_outlier_columns = int(outliers.sum())
            if self.last_outlier_columns == 0:
                outliers = None
        regular = flat if outliers is None else flat.masked_fill(outliers, 0.0)
        q_x, s_x = quantize_activations(regular)
        y = int8_matmul(q_x, self.weight_int8).float() * (s_x * self.scale.t())
        if outliers is not None:
            y = y + flat[:, outliers] @ self.dequantized_weight()[:, outliers].t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, threshold={self.threshold}"
