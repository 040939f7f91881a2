"""Quantizing a whole model: swap its ``nn.Linear`` layers, measure size and error per layer.

``quantize(model, scheme)`` returns a copy whose linear layers are replaced:

| scheme | layer | bits per weight | activations |
|---|---|---|---|
| ``"int8"`` | ``Int8Linear`` | 8 (+ one fp32 scale per row) | float |
| ``"int4"`` | ``Int4Linear`` | 4 + 16/``group_size`` (+16/``group_size`` asymmetric) | float |
| ``"w8a8"`` | ``LLMInt8Linear(threshold=None)`` | 8 | int8, per token, at run time |
| ``"llm.int8"`` | ``LLMInt8Linear(threshold=6.0)`` | 8 | int8, outlier columns in float |

Embeddings and norms stay in float. The output layer (``lm_head``) is skipped by default:
it is the layer most sensitive to error. But it is also the largest: SmolLM2's head is 28M of
its 135M parameters, a fifth of the bytes a decoding step reads in float, and a third of them
once the blocks are int8, so it caps the speed-up. ``skip=()`` quantizes it too; when the head
is tied to the embeddings and becomes ``Int8Linear``, the embedding lookup reads the same int8
table (``Int8Embedding``) and the float table is dropped; an ``Int4Linear`` head lends its
scales to ``Int4Embedding``, which keeps the same 4-bit codes row by row for lookups.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from llmcourse.quant.awq import awq_scales
from llmcourse.quant.functional import sqnr
from llmcourse.quant.linear import (
    Int4Embedding,
    Int4Linear,
    Int8Embedding,
    Int8Linear,
    QuantizedLinear,
)
from llmcourse.quant.llm_int8 import LLMInt8Linear
from llmcourse.utils.checks import check_bool, check_int, check_number, check_type

Scheme = Literal["int8", "int4", "w8a8", "llm.int8"]
SCHEMES = ("int8", "int4", "w8a8", "llm.int8")


def _make_layer(
    linear: nn.Linear,
    scheme: Scheme,
    group_size: int,
    threshold,
    symmetric,
    kernel: bool,
    input_scale: torch.Tensor | None,
):
    if scheme == "int8":
        return Int8Linear(linear, kernel=kernel)
    if scheme == "int4":
        return Int4Linear(linear, group_size, symmetric, kernel=kernel, input_scale=input_scale)
    if scheme == "w8a8":
        return LLMInt8Linear(linear, threshold=None)
    return LLMInt8Linear(linear, threshold=threshold)


def quantize(
    model: nn.Module,
    scheme: Scheme = "int8",
    group_size: int = 64,
    *,
    skip: Iterable[str] = ("lm_head",),
    threshold: float = 6.0,
    symmetric: bool = True,
    kernel: bool = True,
    calibration: torch.Tensor | None = None,
    inplace: bool = False,
) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself when ``inplace``) with quantized linear layers.

    ``group_size`` and ``symmetric`` (absmax, or min-max per group) are used by ``"int4"``;
    ``threshold`` by ``"llm.int8"``; ``kernel=False`` keeps ``"int8"``/``"int4"`` layers on the
    readable de-quantize-then-matmul path instead of PyTorch's packed kernels. With
    ``calibration`` token ids ``(batch, seq)``, ``"int4"`` layers use AWQ-style activation-aware
    scales searched on the inputs the model sees reading them (``llmcourse.quant.awq``).
    Layers whose qualified name ends with an entry of ``skip`` keep their float weights. Every
    layer is checked before any is replaced, so a bad ``group_size`` leaves the model untouched.
    """
    if isinstance(model, nn.Linear):
        raise TypeError(
            "quantize(model) swaps the nn.Linear layers inside a model; it was given an "
            f"nn.Linear itself ({model}). Wrap it (quantize(nn.Sequential(layer))) or build the "
            "layer directly: Int8Linear(layer), Int4Linear(layer, group_size=...)."
        )
    check_type("model", model, nn.Module, "an nn.Module containing nn.Linear layers")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}.")
    check_int("group_size", group_size, 1)
    check_number("threshold", threshold, 0, low_open=True)
    check_bool("symmetric", symmetric)
    check_bool("inplace", inplace)
    skip = (skip,) if isinstance(skip, str) else tuple(skip)  # one name, not its letters
    if not all(isinstance(name, str) for name in skip):
        raise TypeError(f"skip must be layer names (strings), got {skip!r}.")
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and not name.endswith(skip)
    ]
    if not targets:
        raise ValueError("The model has no nn.Linear layers to quantize (are they all skipped?).")
    if calibration is not None and scheme != "int4":
        raise ValueError(
            f"calibration (activation-aware scales) applies to scheme='int4', got {scheme!r}."
        )
    if scheme == "int4":
        for name, module in targets:
            if module.in_features % group_size:
                raise ValueError(
                    f"Layer {name!r} has in_features={module.in_features}, which "
                    f"group_size={group_size} does not divide. Choose a group size that divides "
                    "every layer's input width (a power of two such as 32 or 64 usually does)."
                )
    scales = {}
    if calibration is not None:
        names = [name for name, _ in targets]
        scales = awq_scales(model, calibration, names, group_size, symmetric)
    result = model if inplace else copy.deepcopy(model)
    for name, _ in targets:
        parent_name, _, child = name.rpartition(".")
        parent = result.get_submodule(parent_name) if parent_name else result
        linear = getattr(parent, child)
        layer = _make_layer(
            linear, scheme, group_size, threshold, symmetric, kernel, scales.get(name)
        )
        setattr(parent, child, layer)
        _share_tied_embedding(result, linear, layer)
    return result


def _share_tied_embedding(model: nn.Module, linear: nn.Linear, layer: nn.Module) -> None:
    """If ``linear`` shared its weight with an ``nn.Embedding`` (tied embeddings) and became
    an ``Int8Linear`` or ``Int4Linear``, let that embedding read the quantized table instead of
    its float copy."""
    if isinstance(layer, Int8Linear):
        embedding = Int8Embedding
    elif isinstance(layer, Int4Linear):
        embedding = Int4Embedding
    else:
        return
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Embedding) and module.weight is linear.weight:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, embedding(layer))


def model_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer, counting shared (tied) tensors once."""
    seen, total = set(), 0
    for tensor in (*model.parameters(), *model.buffers()):
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.numel())
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


def decode_weight_bytes(model: nn.Module) -> int:
    """Bytes a decoding step reads at least: every linear layer's weights and scales (float or
    quantized), each tensor once. Decoding one token multiplies one row by each of them, so
    ``tokens/s <= memory bandwidth / (this + the KV cache's bytes)``. Embedding tables are left
    out (a step reads one row), unless tied to the output layer, which reads them whole.
    """
    layers = [
        module
        for module in model.modules()
        if isinstance(module, (nn.Linear, QuantizedLinear, LLMInt8Linear))
    ]
    seen, total = set(), 0
    for layer in layers:
        for tensor in (*layer.parameters(), *layer.buffers()):
            key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.numel())
            if key not in seen:
                seen.add(key)
                total += tensor.numel() * tensor.element_size()
    return total


def weight_sqnr(original: nn.Module, quantized: nn.Module) -> dict[str, float]:
    """SQNR in dB of every quantized layer's effective weight against the original weight."""
    reference = dict(original.named_modules())
    report = {}
    for name, module in quantized.named_modules():
        if isinstance(module, QuantizedLinear):
            weight = reference[name].weight.detach()
            report[name] = sqnr(weight, module.dequantized_weight().to(weight.dtype))
    return report


@torch.inference_mode()
def output_sqnr(
    original: nn.Module, quantized: nn.Module, inputs: torch.Tensor, *, what: str = "logits"
) -> float:
    """SQNR of a model's outputs (``getattr(out, what)`` when the output is an object)."""

    def run(model: nn.Module) -> torch.Tensor:
        out = model(inputs)
        return out if isinstance(out, torch.Tensor) else getattr(out, what)

    return sqnr(run(original), run(quantized))
