"""Activation-aware scaling for 4-bit weights (AWQ; Lin et al. 2024, "AWQ: Activation-aware
Weight Quantization for LLM Compression and Acceleration").

Rounding a weight to 4 bits costs the output ``|x_j| · |w_ij - ŵ_ij|``: an error in a weight
that meets a large input matters more. Inputs of LLM layers are far from uniform: a few
channels carry much larger activations than the rest. AWQ scales each input channel's weights
*up* by ``s_j`` before quantizing and the input *down* by the same factor at run time:

    y = x Wᵀ = (x / s) (W · diag(s))ᵀ  ≈  (x / s) Q(W · diag(s))ᵀ

A channel with ``s_j > 1`` takes a larger share of its group's range, so its relative rounding
error shrinks (the group's scale grows less than ``s_j`` when the channel is not the group's
largest), at the price of the other channels'. The scales come from calibration data:
``s = mean|x|^α``, normalised to a geometric mean of about 1, with ``α ∈ [0, 1]`` chosen per
layer to minimise the output error ``‖x Wᵀ - (x/s) Q(W·diag(s))ᵀ‖²`` on the calibration inputs
(the paper's search, §3.3, done per layer here rather than per block). ``α = 0`` is plain
round-to-nearest, so on the calibration data the search can only help.

The division by ``s`` is one element-wise multiply per layer input (``Int4Linear``'s
``input_scale``); the paper folds it into the preceding norm or linear layer instead.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from llmcourse.quant.functional import (
    group_dequantize,
    group_minmax_dequantize,
    group_minmax_quantize,
    group_quantize,
)


def fake_quantize_int4(weight: torch.Tensor, group_size: int, symmetric: bool) -> torch.Tensor:
    """``weight`` ``(out, in)`` rounded to the 4-bit group grid and back, in float32."""
    if symmetric:
        q, scale = group_quantize(weight, bits=4, group_size=group_size)
        return group_dequantize(q, scale.half().float())  # fp16 scales, as Int4Linear stores
    q, scale, minimum = group_minmax_quantize(weight, bits=4, group_size=group_size)
    return group_minmax_dequantize(q, scale.half(), minimum.half())


@torch.inference_mode()
def layer_inputs(
    model: nn.Module,
    calibration_ids: torch.Tensor,
    names: Iterable[str],
    max_rows: int = 256,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """The inputs ``(rows, in)`` each named ``nn.Linear`` sees when ``model`` reads
    ``calibration_ids`` ``(batch, seq)``: at most ``max_rows`` token rows, drawn at random."""
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            captured[name] = args[0].detach().reshape(-1, args[0].shape[-1]).float()

        return record

    handles = [modules[name].register_forward_hook(hook(name)) for name in names]
    try:
        model(calibration_ids)
    finally:
        for handle in handles:
            handle.remove()
    generator = torch.Generator().manual_seed(seed)
    result = {}
    for name, rows in captured.items():
        if rows.shape[0] > max_rows:
            pick = torch.randperm(rows.shape[0], generator=generator)[:max_rows]
            rows = rows[pick.to(rows.device)]
        result[name] = rows
    return result


@torch.inference_mode()
def search_scale(
    weight: torch.Tensor,
    inputs: torch.Tensor,
    group_size: int = 64,
    symmetric: bool = True,
    grid: int = 20,
) -> tuple[torch.Tensor, float]:
    """The per-input-channel scale ``s`` ``(in,)`` and its ``α`` that minimise the output
    error of 4-bit ``weight`` ``(out, in)`` on ``inputs`` ``(rows, in)``, over
    ``α ∈ {0, 1/grid, ..., 1}``. ``α = 0`` gives ``s = 1`` (round-to-nearest)."""
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be a positive int, got {grid!r}.")
    weight, inputs = weight.float(), inputs.float()
    exact = inputs @ weight.t()
    magnitude = inputs.abs().mean(0).clamp(min=1e-5)
    best = (float("inf"), torch.ones_like(magnitude), 0.0)
    for step in range(grid + 1):
        alpha = step / grid
        scale = magnitude**alpha
        scale = scale / (scale.max() * scale.min()).sqrt()  # geometric middle at 1
        approx = (inputs / scale) @ fake_quantize_int4(weight * scale, group_size, symmetric).t()
        error = float((approx - exact).pow(2).mean())
        if error < best[0]:
            best = (error, scale, alpha)
    return best[1], best[2]


def awq_scales(
    model: nn.Module,
    calibration_ids: torch.Tensor,
    names: Iterable[str],
    group_size: int = 64,
    symmetric: bool = True,
    grid: int = 20,
) -> dict[str, torch.Tensor]:
    """``{layer name: s}`` for each named ``nn.Linear`` of ``model``, searched on the inputs
    it sees while reading ``calibration_ids`` ``(batch, seq)`` (a few hundred tokens of text
    like the text the model will see)."""
    if not isinstance(calibration_ids, torch.Tensor) or calibration_ids.dim() != 2:
        raise ValueError(
            "calibration_ids must be a (batch, seq) tensor of token ids, got "
            f"{getattr(calibration_ids, 'shape', type(calibration_ids).__name__)}."
        )
    names = list(names)
    modules = dict(model.named_modules())
    inputs = layer_inputs(model, calibration_ids, names)
    return {
        name: search_scale(modules[name].weight, inputs[name], group_size, symmetric, grid)[0]
        for name in names
    }
