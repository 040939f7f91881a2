"""Quantizing a whole model: swap its ``nn.Linear`` layers, measure size and error per layer.

``quantize(model, scheme)`` returns a copy whose linear layers are replaced:

| scheme | layer | bits per weight | activations |
|---|---|---|---|
| ``"int8"`` | ``Int8Linear`` | 8 (+ one fp32 scale per row) | float |
| ``"int4"`` | ``Int4Linear`` | 4 + 16/``group_size`` (+16/``group_size`` asymmetric) | float |
| ``"w8a8"`` | ``LLMInt8Linear(threshold=None)`` | 8 | int8, per token, at run time |
| ``"llm.int8"`` | ``LLMInt8Linear(threshold=6.0)`` | 8 | int8, outlier columns in float |

Embeddings and norms stay in float. The output layer (``lm_head``) is skipped by default:
it is the layer most sensitive to error, and in SmolLM2 it *is* the embedding matrix (tied), so
quantizing it would store a second copy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from llmcourse.quant.functional import sqnr
from llmcourse.quant.linear import Int4Linear, Int8Linear, QuantizedLinear
from llmcourse.quant.llm_int8 import LLMInt8Linear
from llmcourse.utils.checks import check_bool, check_int, check_number, check_type

Scheme = Literal["int8", "int4", "w8a8", "llm.int8"]
SCHEMES = ("int8", "int4", "w8a8", "llm.int8")


def _make_layer(linear: nn.Linear, scheme: Scheme, group_size: int, threshold, symmetric):
    if scheme == "int8":
        return Int8Linear(linear)
    if scheme == "int4":
        return Int4Linear(linear, group_size, symmetric)
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
    inplace: bool = False,
) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself when ``inplace``) with quantized linear layers.

    ``group_size`` and ``symmetric`` (absmax, or min-max per group) are used by ``"int4"``;
    ``threshold`` by ``"llm.int8"``. Layers whose
    qualified name ends with an entry of ``skip`` keep their float weights. Every layer is
    checked before any is replaced, so a bad ``group_size`` leaves the model untouched.
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
    if scheme == "int4":
        for name, module in targets:
            if module.in_features % group_size:
                raise ValueError(
                    f"Layer {name!r} has in_features={module.in_features}, which "
                    f"group_size={group_size} does not divide. Choose a group size that divides "
                    "every layer's input width (a power of two such as 32 or 64 usually does)."
                )
    result = model if inplace else copy.deepcopy(model)
    for name, _ in targets:
        parent_name, _, child = name.rpartition(".")
        parent = result.get_submodule(parent_name) if parent_name else result
        layer = _make_layer(getattr(parent, child), scheme, group_size, threshold, symmetric)
        setattr(parent, child, layer)
    return result


def model_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer, counting shared (tied) tensors once."""
    seen, total = set(), 0
    for tensor in (*model.parameters(), *model.buffers()):
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
