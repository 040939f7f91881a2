"""Quantizing tensors to a few bits: absmax and zero-point, per tensor, channel or group.

Storing a weight in ``b`` bits means picking a step ``s`` (the scale) and keeping integers:

    absmax (symmetric):   s = max|x| / (2^(b-1) - 1),   q = round(x / s),        x̂ = s · q
    zero-point (affine):  s = (max x - min x) / (2^b - 1),  z = round(-min x / s),
                          q = clamp(round(x / s) + z, 0, 2^b - 1),                x̂ = s · (q - z)

(Jacob et al. 2018; Dettmers et al. 2022, §2). Absmax wastes part of the range when ``x`` is
lopsided; zero-point uses all of it at the cost of storing ``z``. The error of each element is
at most ``s / 2``, so a smaller ``s`` means less noise: one outlier in a tensor inflates ``s``
for everyone. Finer **granularity** shrinks that damage: one scale per tensor, per output
channel (row of a weight), or per group of ``group_size`` consecutive inputs of a row
(GPTQ and AWQ use groups of 128; Frantar et al. 2023, Lin et al. 2024).

Quality is measured by the signal-to-quantization-noise ratio

    SQNR = 10 · log10( Σ x² / Σ (x - x̂)² )  dB

Each extra bit adds about 6.02 dB for a uniformly spread signal.
"""

from __future__ import annotations

import torch


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer from 2 to 8, got {bits!r}.")


def _amax(x: torch.Tensor, dim: int | None) -> torch.Tensor:
    if dim is None:
        return x.abs().amax()
    return x.abs().amax(dim=dim, keepdim=True)


def absmax_quantize(
    x: torch.Tensor, bits: int = 8, dim: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric quantization: ``(q, scale)`` with ``q`` int8 in ``[-(2^(b-1)-1), 2^(b-1)-1]``.

    ``dim=None``: one scale for the tensor (a 0-d ``scale``); ``dim=-1`` on a weight
    ``(out, in)``: one per output channel (``scale`` is ``(out, 1)``). ``x ≈ q * scale``.
    """
    _check_bits(bits)
    q_max = 2 ** (bits - 1) - 1
    scale = _amax(x.float(), dim) / q_max
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # an all-zero slice: any s
    q = torch.clamp(torch.round(x.float() / scale), -q_max, q_max).to(torch.int8)
    return q, scale


def absmax_dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q * scale`` in float32 (``scale`` broadcasts: 0-d, per channel or per group)."""
    return q.float() * scale


def zeropoint_quantize(
    x: torch.Tensor, bits: int = 8, dim: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Affine quantization: ``(q, scale, zero_point)``, ``q`` uint8 in ``[0, 2^b - 1]``.

    The range ``[min x, max x]`` is stretched to include 0, so 0 is exact (padding and ReLU
    zeros stay zero). ``x ≈ (q - zero_point) * scale``.
    """
    _check_bits(bits)
    q_max = 2**bits - 1
    x = x.float()
    low = x.amin() if dim is None else x.amin(dim=dim, keepdim=True)
    high = x.amax() if dim is None else x.amax(dim=dim, keepdim=True)
    low, high = low.clamp(max=0), high.clamp(min=0)
    scale = (high - low) / q_max
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    zero_point = torch.clamp(torch.round(-low / scale), 0, q_max)
    q = torch.clamp(torch.round(x / scale) + zero_point, 0, q_max).to(torch.uint8)
    return q, scale, zero_point


def zeropoint_dequantize(
    q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor
) -> torch.Tensor:
    """``(q - zero_point) * scale`` in float32."""
    return (q.float() - zero_point) * scale


def _grouped(w: torch.Tensor, group_size: int) -> torch.Tensor:
    if w.dim() != 2:
        raise ValueError(f"Group-wise quantization takes a 2-D weight (out, in), got {w.dim()}-D.")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}.")
    out_features, in_features = w.shape
    if in_features % group_size:
        raise ValueError(
            f"in_features={in_features} is not divisible by group_size={group_size}; choose a "
            f"group size that divides it (e.g. {_divisor_hint(in_features, group_size)})."
        )
    return w.reshape(out_features, in_features // group_size, group_size)


def _divisor_hint(n: int, near: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - near), d))


def group_quantize(
    w: torch.Tensor, bits: int = 4, group_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax per group of ``group_size`` inputs: ``q`` ``(out, in)`` int8, ``scale``
    ``(out, in // group_size)``."""
    grouped = _grouped(w, group_size)
    q, scale = absmax_quantize(grouped, bits, dim=-1)
    return q.reshape(w.shape), scale.squeeze(-1)


def group_dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Inverse of ``group_quantize``: the group size is ``in // scale.shape[-1]``."""
    out_features, in_features = q.shape
    grouped = q.float().reshape(out_features, scale.shape[-1], -1)
    return (grouped * scale.float().unsqueeze(-1)).reshape(out_features, in_features)


def group_minmax_quantize(
    w: torch.Tensor, bits: int = 4, group_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Affine per group with a float offset (llama.cpp's Q4_1 layout): each group's
    ``[min, max]`` is split into ``2^b - 1`` steps and ``x ≈ q · scale + minimum``.

    Returns ``q`` ``(out, in)`` uint8 in ``[0, 2^b - 1]``, ``scale`` and ``minimum``
    ``(out, in // group_size)``. Unlike ``zeropoint_quantize`` the range need not contain 0,
    so a group of all-positive weights uses every level.
    """
    _check_bits(bits)
    grouped = _grouped(w, group_size).float()
    low, high = grouped.amin(dim=-1, keepdim=True), grouped.amax(dim=-1, keepdim=True)
    q_max = 2**bits - 1
    scale = (high - low) / q_max
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round((grouped - low) / scale), 0, q_max).to(torch.uint8)
    return q.reshape(w.shape), scale.squeeze(-1), low.squeeze(-1)


def group_minmax_dequantize(
    q: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor
) -> torch.Tensor:
    """Inverse of ``group_minmax_quantize``."""
    out_features, in_features = q.shape
    grouped = q.float().reshape(out_features, scale.shape[-1], -1)
    values = grouped * scale.float().unsqueeze(-1) + minimum.float().unsqueeze(-1)
    return values.reshape(out_features, in_features)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two signed 4-bit values per byte: ``(..., 2n)`` int8 in ``[-8, 7]`` → ``(..., n)`` uint8.

    Each value is offset by 8 into ``[0, 15]``; element ``2i`` fills the low nibble and
    ``2i + 1`` the high one.
    """
    if q.shape[-1] % 2:
        raise ValueError(f"pack_int4 needs an even last dimension, got {q.shape[-1]}.")
    if q.numel() and (int(q.min()) < -8 or int(q.max()) > 7):
        raise ValueError("pack_int4 takes values in [-8, 7].")
    offset = (q.to(torch.int16) + 8).to(torch.uint8)
    return offset[..., 0::2] | (offset[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of ``pack_int4``: ``(..., n)`` uint8 → ``(..., 2n)`` int8."""
    low = (packed & 0x0F).to(torch.int8) - 8
    high = (packed >> 4).to(torch.int8) - 8
    return torch.stack((low, high), dim=-1).flatten(-2)


def sqnr(ref: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10 log10(Σ ref² / Σ (ref - approx)²)``.

    ``inf`` when ``approx`` equals ``ref`` exactly.
    """
    for name, value in (("ref", ref), ("approx", approx)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"sqnr's {name} must be a tensor, got {type(value).__name__}.")
    if ref.shape != approx.shape:
        raise ValueError(
            f"sqnr needs equal shapes, got {tuple(ref.shape)} and {tuple(approx.shape)}."
        )
    ref, approx = ref.detach().double(), approx.detach().double()
    noise = (ref - approx).pow(2).sum()
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(ref.pow(2).sum() / noise))
