"""Weight-only quantized linear layers that really hold fewer bytes.

- ``Int8Linear``: int8 weights with one fp32 scale per output channel: 1 byte per weight
  instead of 4 (fp32) or 2 (fp16).
- ``Int4Linear``: 4-bit weights, two per byte, with one fp16 scale per group of
  ``group_size`` inputs: ``4 + 16/group_size`` bits per weight (4.25 bits for groups of 64).
  ``symmetric=False`` adds an fp16 minimum per group (``4 + 32/group_size`` bits) and uses
  all 16 levels between the group's min and max, as llama.cpp's Q4_1 does.

Activations stay in floating point ("weight-only" quantization, W8A16 / W4A16): the saving
is memory and memory bandwidth, which is what limits decoding a token at a time. The weight is
kept as a buffer, not a parameter: these layers are for inference.

Each forward here de-quantizes the weight and runs a float matmul: simple and exact to read,
but it adds work, so on a CPU these layers are smaller, not faster. The speed-up needs fused
kernels that multiply straight from the packed integers (e.g. Marlin or llama.cpp's), which
read 4-8x fewer bytes per token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.quant.functional import (
    absmax_dequantize,
    absmax_quantize,
    group_dequantize,
    group_minmax_dequantize,
    group_minmax_quantize,
    group_quantize,
    pack_int4,
    unpack_int4,
)


class QuantizedLinear(nn.Module):
    """What every quantized layer shares: sizes, the bias, and ``dequantized_weight()``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"Expected an nn.Linear, got {type(linear).__name__}.")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)

    def dequantized_weight(self) -> torch.Tensor:
        """The weight the layer effectively multiplies by, ``(out, in)`` float32."""
        raise NotImplementedError(f"{type(self).__name__} must define dequantized_weight().")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantized_weight().to(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Int8Linear(QuantizedLinear):
    """``y = x Ŵᵀ + b`` with ``Ŵ = q · s``: int8 ``q`` ``(out, in)``, per-row scales ``s``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear)
        q, scale = absmax_quantize(linear.weight.detach(), bits=8, dim=-1)
        self.register_buffer("weight_int8", q)
        self.register_buffer("scale", scale.squeeze(-1))  # (out,)

    def dequantized_weight(self) -> torch.Tensor:
        return absmax_dequantize(self.weight_int8, self.scale[:, None])


class Int4Linear(QuantizedLinear):
    """Group-wise 4-bit weights: ``packed`` ``(out, in/2)`` uint8, ``scale`` (and with
    ``symmetric=False`` ``minimum``) ``(out, in/g)`` fp16."""

    def __init__(self, linear: nn.Linear, group_size: int = 64, symmetric: bool = True) -> None:
        super().__init__(linear)
        self.group_size, self.symmetric = group_size, symmetric
        weight = linear.weight.detach()
        if symmetric:
            q, scale = group_quantize(weight, bits=4, group_size=group_size)
            minimum = None
        else:
            levels, scale, minimum = group_minmax_quantize(weight, bits=4, group_size=group_size)
            q = levels.to(torch.int8) - 8  # 0..15 → -8..7, the range pack_int4 stores
            minimum = minimum.to(torch.float16)
        self.register_buffer("packed", pack_int4(q))
        self.register_buffer("scale", scale.to(torch.float16))
        self.register_buffer("minimum", minimum)

    def dequantized_weight(self) -> torch.Tensor:
        q = unpack_int4(self.packed)
        if self.minimum is None:
            return group_dequantize(q, self.scale.float())
        return group_minmax_dequantize(q + 8, self.scale, self.minimum)

    def extra_repr(self) -> str:
        kind = "symmetric" if self.symmetric else "min-max"
        return f"{super().extra_repr()}, group_size={self.group_size}, {kind}"
