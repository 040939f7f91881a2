"""Quantization: fewer bits per weight (and activation) for smaller, faster models.

- ``llmcourse.quant.functional``: absmax and zero-point quantization per tensor, channel or
  group; int4 packing; ``sqnr``;
- ``Int8Linear`` / ``Int4Linear`` (``linear``): weight-only layers that store 1 byte / half a
  byte per weight;
- ``LLMInt8Linear`` (``llm_int8``): int8 matmuls with dynamic activation quantization and
  LLM.int8()'s outlier decomposition (Dettmers et al. 2022);
- ``awq_scales`` (``awq``): activation-aware per-channel scales for 4-bit weights (Lin et al.
  2024), used by ``quantize(..., calibration=ids)``;
- ``quantize(model, scheme=..., group_size=...)``, ``model_bytes``, ``decode_weight_bytes``,
  ``weight_sqnr`` (``model``).
"""

from llmcourse.quant.awq import awq_scales
from llmcourse.quant.functional import (
    absmax_dequantize,
    absmax_quantize,
    group_dequantize,
    group_minmax_dequantize,
    group_minmax_quantize,
    group_quantize,
    pack_int4,
    sqnr,
    unpack_int4,
    zeropoint_dequantize,
    zeropoint_quantize,
)
from llmcourse.quant.linear import (
    Int4Embedding,
    Int4Linear,
    Int8Embedding,
    Int8Linear,
    QuantizedLinear,
)
from llmcourse.quant.llm_int8 import LLMInt8Linear, int8_matmul, quantize_activations
from llmcourse.quant.model import (
    SCHEMES,
    decode_weight_bytes,
    model_bytes,
    output_sqnr,
    quantize,
    weight_sqnr,
)

__all__ = [
    "SCHEMES",
    "Int4Embedding",
    "Int4Linear",
    "Int8Embedding",
    "Int8Linear",
    "LLMInt8Linear",
    "QuantizedLinear",
    "absmax_dequantize",
    "absmax_quantize",
    "awq_scales",
    "decode_weight_bytes",
    "group_dequantize",
    "group_minmax_dequantize",
    "group_minmax_quantize",
    "group_quantize",
    "int8_matmul",
    "model_bytes",
    "output_sqnr",
    "pack_int4",
    "quantize",
    "quantize_activations",
    "sqnr",
    "unpack_int4",
    "weight_sqnr",
    "zeropoint_dequantize",
    "zeropoint_quantize",
]
