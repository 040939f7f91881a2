"""PyTorch's packed weight-only matmuls, found and checked at run time.

Decoding one token multiplies a single activation row by every weight matrix, so its time is
the time to *read* the weights: about ``bytes per token / memory bandwidth``. A weight-only
layer is faster only when its matmul reads the small integers directly; de-quantizing the whole
weight first (the readable path in ``llmcourse.quant.linear``) reads the codes, writes a float
copy and reads that again, which is slower than the float layer it replaces.

PyTorch ships such matmuls as private ATen operators (torchao builds on the same ones):

| op (``torch.ops.aten.``) | weight | device |
|---|---|---|
| ``_weight_int8pack_mm(x, q, s)`` | int8 ``(out, in)``, a scale per row | CPU, CUDA, MPS |
| ``_weight_int4pack_mm_for_cpu(x, w, g, sz)`` | codes re-laid by ``..._for_cpu`` | CPU |
| ``_weight_int4pack_mm(x, w, g, sz)`` | codes re-laid by ``_convert_weight_to_int4pack`` | CUDA |

(the CPU layout comes from ``_convert_weight_to_int4pack_for_cpu``).

The int4 ops compute ``ŵ = (q - 8) · scale + zero`` per group of ``g`` inputs, with
``sz[group, out] = (scale, zero)``. They are fast for **bfloat16** activations (on CPU their
float32 path is scalar code, several times slower than a float32 ``F.linear``), so the packed
path rounds activations to bfloat16 (8 significant bits: a relative error of at most 2⁻⁹, far
below a 4-bit weight's) and returns results in the caller's dtype.

Private operators can change between PyTorch releases, so each one is tried once per device
type on a small layer and compared with the readable computation; if it is missing, fails or
disagrees, the layers fall back to the readable path.
"""

from __future__ import annotations

import functools

import torch

COMPUTE_DTYPE = torch.bfloat16  # the activation dtype the packed kernels are fast for
INT4_GROUP_SIZES = (32, 64, 128, 256)  # the group sizes the int4 kernels accept


def int4_layout(device: torch.device) -> str | None:
    """The packed int4 layout the device's kernel reads (``"cpu"``, ``"cuda"``), or ``None``."""
    kind = torch.device(device).type
    return kind if kind in ("cpu", "cuda") and _works(kind, "int4") else None


def int8_kernel(device: torch.device) -> bool:
    """Whether ``_weight_int8pack_mm`` runs (and agrees with the readable product) here."""
    return _works(torch.device(device).type, "int8")


def int4_fits(out_features: int, in_features: int, group_size: int, layout: str) -> bool:
    """The int4 kernels' shape rules: a supported group size; on CPU ``out`` divisible by 16,
    on CUDA ``out`` by 8 and ``in`` by 32 (two 16-wide k-tiles)."""
    if group_size not in INT4_GROUP_SIZES or in_features % group_size:
        return False
    if layout == "cpu":
        return out_features % 16 == 0
    return out_features % 8 == 0 and in_features % 32 == 0


def _inner_k_tiles(in_features: int) -> int:
    """The CUDA layout's k-tiles per block: the largest of 8, 4, 2 with ``in % (16·tiles) = 0``."""
    return next(t for t in (8, 4, 2) if in_features % (16 * t) == 0)


def pack_int4_for_kernel(codes: torch.Tensor, layout: str) -> torch.Tensor:
    """Lay unsigned 4-bit codes ``(out, in)`` (values 0..15) out the way ``layout``'s kernel
    reads them. The result is opaque: read codes back with ``unpack_int4_from_kernel``."""
    if layout == "cpu":
        return torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32), 1)
    pairs = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)  # CUDA: even k high nibble
    return torch.ops.aten._convert_weight_to_int4pack(pairs, _inner_k_tiles(codes.shape[1]))


def int4_matmul(
    x: torch.Tensor, packed: torch.Tensor, group_size: int, scale_and_zero: torch.Tensor
) -> torch.Tensor:
    """``x (rows, in) @ ŵᵀ`` with ``ŵ = (q - 8) · scale + zero``; ``x`` and ``scale_and_zero``
    ``(in/g, out, 2)`` in ``COMPUTE_DTYPE``; the layout follows ``x``'s device."""
    if x.device.type == "cpu":
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, group_size, scale_and_zero)
    return torch.ops.aten._weight_int4pack_mm(x, packed, group_size, scale_and_zero)


def unpack_int4_from_kernel(
    packed: torch.Tensor, out_features: int, in_features: int, group_size: int
) -> torch.Tensor:
    """The codes ``(out, in)`` (0..15, uint8) back from a kernel layout, whatever it is.

    Multiplying the identity matrix by the layer with unit scales and zero offsets gives
    ``q - 8`` for every weight: integers in -8..7 and sums with a single non-zero term, which
    bfloat16 holds exactly. Costs one matmul with ``in`` rows; used for inspection only.
    """
    groups = in_features // group_size
    unit = torch.zeros(groups, out_features, 2, dtype=COMPUTE_DTYPE, device=packed.device)
    unit[..., 0] = 1.0
    eye = torch.eye(in_features, dtype=COMPUTE_DTYPE, device=packed.device)
    centred = int4_matmul(eye, packed, group_size, unit)  # (in, out)
    return (centred.t().float() + 8).round().to(torch.uint8)


@functools.cache
def _works(device_type: str, kind: str) -> bool:
    """Try one kernel on a small layer of ``device_type`` and compare with the readable math."""
    if device_type == "cuda" and not torch.cuda.is_available():
        return False
    try:
        with torch.inference_mode():
            return _agrees(torch.device(device_type), kind)
    except (RuntimeError, NotImplementedError, AttributeError, TypeError, ValueError):
        return False


def _agrees(device: torch.device, kind: str) -> bool:
    generator = torch.Generator().manual_seed(0)
    out_features, in_features, group = 64, 128, 32
    x = torch.randn(3, in_features, generator=generator).to(device, COMPUTE_DTYPE)
    if kind == "int8":
        q = torch.randint(-127, 128, (out_features, in_features), generator=generator)
        q = q.to(device, torch.int8)
        scale = (torch.rand(out_features, generator=generator) / 100).to(device, COMPUTE_DTYPE)
        got = torch.ops.aten._weight_int8pack_mm(x, q, scale)
        weight = q.float() * scale.float()[:, None]
    else:
        codes = torch.randint(0, 16, (out_features, in_features), generator=generator)
        codes = codes.to(device, torch.uint8)
        groups = in_features // group
        scale_and_zero = torch.stack(
            (torch.rand(groups, out_features) / 10, torch.randn(groups, out_features) / 10), -1
        ).to(device, COMPUTE_DTYPE)
        packed = pack_int4_for_kernel(codes, device.type)
        got = int4_matmul(x, packed, group, scale_and_zero)
        sz = scale_and_zero.float().transpose(0, 1)  # (out, groups, 2)
        grouped = (codes.float() - 8).reshape(out_features, groups, group)
        weight = (grouped * sz[..., :1] + sz[..., 1:]).reshape(out_features, in_features)
        read_back = unpack_int4_from_kernel(packed, out_features, in_features, group)
        if not torch.equal(read_back, codes):
            return False
    expected = x.float() @ weight.t()
    tolerance = 0.02 * float(expected.abs().max()) + 1e-3  # bfloat16 output rounding
    return bool((got.float() - expected).abs().max() <= tolerance)
