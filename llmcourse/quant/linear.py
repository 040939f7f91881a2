"""Weight-only quantized linear layers that really hold fewer bytes, and read fewer per token.

- ``Int8Linear``: int8 weights with one fp32 scale per output channel: 1 byte per weight
  instead of 4 (fp32) or 2 (fp16).
- ``Int4Linear``: 4-bit weights, two per byte, with one fp16 scale per group of
  ``group_size`` inputs: ``4 + 16/group_size`` bits per weight (4.25 bits for groups of 64).
  ``symmetric=False`` adds an fp16 minimum per group (``4 + 32/group_size`` bits) and uses
  all 16 levels between the group's min and max, as llama.cpp's Q4_1 does.

Activations stay in floating point ("weight-only" quantization, W8A16 / W4A16): the saving
is memory and memory bandwidth, which is what limits decoding a token at a time. The weight is
kept as a buffer, not a parameter: these layers are for inference.

Each layer computes ``y = x Ŵᵀ + b`` one of two ways:

- **readable** (``dequantized_weight()`` then ``F.linear``): what lesson 10 builds. It reads the
  codes, writes a float copy of the whole weight and reads it again, so it is *slower* than the
  float layer it replaces;
- **packed** (``llmcourse.quant.kernels``): PyTorch's matmuls that read the int8 / int4 codes
  directly, so a decoding step reads 4x / ~7x fewer weight bytes than in fp32. Used where
  the device has them (checked at run time), in bfloat16 arithmetic; ``kernel=False`` keeps a
  layer on the readable path.

For ``Int4Linear`` on the packed path, ``packed`` holds the codes in the kernel's own layout
(``layout`` names it; ``codes()`` reads them back whatever it is) and a bfloat16 copy of the
scales in the kernel's ``(group, out, [scale, zero])`` form adds ``32/group_size`` bits per
weight. Moving the layer to another device type lays the codes out again for that device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.quant import kernels
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

# Above this many activation rows (a long prompt, not a decoding step) the int8 kernel loses to
# a float GEMM on the de-quantized weight on CPU: the GEMM's blocking reuses each weight
# across rows, and the weight is no longer the only cost.
INT8_KERNEL_MAX_ROWS = 32

_int8_mm = torch.ops.aten._weight_int8pack_mm  # looked up once: attribute access costs ~1 µs


class QuantizedLinear(nn.Module):
    """What every quantized layer shares: sizes, the bias, ``dequantized_weight()`` and the
    readable forward."""

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

    def forward_readable(self, x: torch.Tensor) -> torch.Tensor:
        """De-quantize the whole weight, then a float matmul: the teaching version."""
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantized_weight().to(x.dtype), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_readable(x)

    def _finish(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A packed kernel's ``(rows, out)`` result back in ``x``'s dtype and shape, plus bias."""
        y = flat.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Int8Linear(QuantizedLinear):
    """``y = x Ŵᵀ + b`` with ``Ŵ = q · s``: int8 ``q`` ``(out, in)``, per-row scales ``s``."""

    def __init__(self, linear: nn.Linear, *, kernel: bool = True) -> None:
        super().__init__(linear)
        q, scale = absmax_quantize(linear.weight.detach(), bits=8, dim=-1)
        self.register_buffer("weight_int8", q)
        self.register_buffer("scale", scale.squeeze(-1))  # (out,)
        self.kernel = kernel
        self._prepare_kernel()

    def _prepare_kernel(self) -> None:
        """The kernel takes the int8 weight as it is; it wants the scales in its dtype."""
        self.on_kernel = self.kernel and kernels.int8_kernel(self.weight_int8.device)
        kernel_scale = self.scale.to(kernels.COMPUTE_DTYPE) if self.on_kernel else None
        self.register_buffer("kernel_scale", kernel_scale, persistent=False)

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self._prepare_kernel()  # a new device may have (or lack) the kernel
        return self

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._prepare_kernel()  # the kernel's copy of the scales follows the loaded ones

    def dequantized_weight(self) -> torch.Tensor:
        return absmax_dequantize(self.weight_int8, self.scale[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // self.in_features
        if not self.on_kernel or rows > INT8_KERNEL_MAX_ROWS:
            return self.forward_readable(x)
        flat = x.reshape(rows, self.in_features).to(kernels.COMPUTE_DTYPE)
        return self._finish(_int8_mm(flat, self.weight_int8, self.kernel_scale), x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {'packed kernel' if self.on_kernel else 'readable'}"


class Int4Linear(QuantizedLinear):
    """Group-wise 4-bit weights: ``packed`` ``(out, in/2)`` uint8, ``scale`` (and with
    ``symmetric=False`` ``minimum``) ``(out, in/g)`` fp16.

    ``input_scale`` ``(in,)``: AWQ-style per-input-channel scales ``s`` (``quant.awq``); the
    layer stores ``Q(W·diag(s))`` and computes ``(x / s) · Q(W·diag(s))ᵀ``.
    """

    def __init__(
        self,
        linear: nn.Linear,
        group_size: int = 64,
        symmetric: bool = True,
        *,
        kernel: bool = True,
        input_scale: torch.Tensor | None = None,
    ) -> None:
        super().__init__(linear)
        self.group_size, self.symmetric, self.kernel = group_size, symmetric, kernel
        weight = linear.weight.detach()
        if input_scale is not None:
            # Activation-aware scaling (``llmcourse.quant.awq``): quantize W·diag(s), divide the
            # input by s at run time, so (x/s)·(W·diag(s))ᵀ = x·Wᵀ before rounding.
            if input_scale.shape != (self.in_features,):
                raise ValueError(
                    f"input_scale must have shape ({self.in_features},), got "
                    f"{tuple(input_scale.shape)}."
                )
            input_scale = input_scale.detach().float().to(weight.device)
            weight = weight * input_scale
        self.register_buffer("input_scale", input_scale)
        if symmetric:
            q, scale = group_quantize(weight, bits=4, group_size=group_size)
            codes, minimum = (q.to(torch.int16) + 8).to(torch.uint8), None  # -7..7 → 1..15
        else:
            codes, scale, minimum = group_minmax_quantize(weight, bits=4, group_size=group_size)
            minimum = minimum.to(torch.float16)
        self.register_buffer("scale", scale.to(torch.float16))
        self.register_buffer("minimum", minimum)
        self._lay_out(codes)

    def _lay_out(self, codes: torch.Tensor) -> None:
        """Store the codes ``(out, in)`` (0..15) for the kernel of their device, else as
        ``pack_int4`` nibbles, and build the kernel's scales."""
        layout = kernels.int4_layout(codes.device) if self.kernel else None
        fits = layout and kernels.int4_fits(
            self.out_features, self.in_features, self.group_size, layout
        )
        self.layout = layout if fits else "nibbles"
        if self.layout == "nibbles":
            packed = pack_int4((codes.to(torch.int16) - 8).to(torch.int8))
        else:
            packed = kernels.pack_int4_for_kernel(codes, self.layout)
        self.register_buffer("packed", packed)
        self._prepare_kernel_scales()

    def _prepare_kernel_scales(self) -> None:
        """``(in/g, out, 2)`` pairs with ``ŵ = (q - 8) · scale + zero``: zero is 0 for symmetric
        groups and ``minimum + 8 · scale`` for min-max ones (``ŵ = q · scale + minimum``)."""
        pairs = None
        if self.layout != "nibbles":
            scale = self.scale.float()
            zero = torch.zeros_like(scale) if self.minimum is None else self.minimum + 8 * scale
            pairs = torch.stack((scale, zero), -1).transpose(0, 1).contiguous()
            pairs = pairs.to(kernels.COMPUTE_DTYPE)
        self.register_buffer("kernel_scales", pairs, persistent=False)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._prepare_kernel_scales()  # the kernel's pairs follow the loaded scales

    def _apply(self, fn, recurse: bool = True):
        # A kernel layout belongs to one device type: read the codes back before moving and
        # lay them out again for wherever the layer lands.
        before = self.packed.device
        after = fn(torch.empty(0, dtype=torch.uint8, device=before)).device
        codes = self.codes() if after.type != before.type else None
        super()._apply(fn, recurse)
        if codes is not None:
            self._lay_out(fn(codes))
        else:
            self._prepare_kernel_scales()
        return self

    def codes(self) -> torch.Tensor:
        """The 4-bit codes ``(out, in)`` as uint8 0..15, whatever layout ``packed`` uses."""
        if self.layout == "nibbles":
            return (unpack_int4(self.packed).to(torch.int16) + 8).to(torch.uint8)
        return kernels.unpack_int4_from_kernel(
            self.packed, self.out_features, self.in_features, self.group_size
        )

    def dequantized_weight(self) -> torch.Tensor:
        q = self.codes().to(torch.int16) - 8  # -8..7, as pack_int4 stores them
        return self.weight_rows(q)

    def weight_rows(self, q: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Float weights of output rows ``rows`` (all when ``None``) from their codes ``q``
        ``(len(rows), in)`` in -8..7: what ``dequantized_weight()`` and ``Int4Embedding`` read."""
        scale = self.scale if rows is None else self.scale[rows]
        if self.minimum is None:
            weight = group_dequantize(q, scale.float())
        else:
            minimum = self.minimum if rows is None else self.minimum[rows]
            weight = group_minmax_dequantize(q + 8, scale, minimum)
        return weight if self.input_scale is None else weight / self.input_scale.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "nibbles":
            return self.forward_readable(x)
        flat = x.reshape(-1, self.in_features)
        if self.input_scale is not None:
            flat = flat / self.input_scale.to(flat.dtype)
        flat = flat.to(kernels.COMPUTE_DTYPE)
        return self._finish(
            kernels.int4_matmul(flat, self.packed, self.group_size, self.kernel_scales), x
        )

    def extra_repr(self) -> str:
        kind = "symmetric" if self.symmetric else "min-max"
        if self.input_scale is not None:
            kind += ", activation-aware scales"
        path = "readable" if self.layout == "nibbles" else f"packed kernel ({self.layout})"
        return f"{super().extra_repr()}, group_size={self.group_size}, {kind}, {path}"


class Int8Embedding(nn.Module):
    """Token embeddings read from the int8 output layer they are tied to.

    With tied embeddings (GPT-2, SmolLM2) row ``t`` of the output layer *is* token ``t``'s
    embedding. Once that layer is an ``Int8Linear`` (per-row scales), looking a token up is
    ``q[t] · s[t]``, so one int8 table serves both and the float table can go: 4x fewer bytes
    for the largest matrix of a small model. The table stays owned by ``head`` (this module
    has no buffers of its own), so moving the model moves it once.
    """

    def __init__(self, head: Int8Linear) -> None:
        super().__init__()
        if not isinstance(head, Int8Linear):
            raise TypeError(f"Int8Embedding reads an Int8Linear, got {type(head).__name__}.")
        object.__setattr__(self, "head", head)  # a reference, not a second child module
        self.num_embeddings, self.embedding_dim = head.out_features, head.in_features

    @property
    def weight(self) -> torch.Tensor:
        """The de-quantized table ``(vocab, d_model)`` (for inspection; lookups read rows)."""
        return self.head.dequantized_weight()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(input_ids, self.head.weight_int8).float()
        return rows * self.head.scale[input_ids].unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, tied to an Int8Linear head"


class Int4Embedding(nn.Module):
    """Token embeddings read from the int4 output layer they are tied to.

    Like ``Int8Embedding``, one set of 4-bit codes and scales serves both the lookup and the
    output layer, and the float table goes. The packed kernels' layout cannot be read one row at
    a time, so this module keeps the same codes a second time as ``pack_int4`` nibbles, a token's
    ``in/2`` bytes side by side (SmolLM2: 14 MiB, against 108 MiB for the float table); the scales
    (and minimums) are the head's own.
    """

    def __init__(self, head: Int4Linear) -> None:
        super().__init__()
        if not isinstance(head, Int4Linear):
            raise TypeError(f"Int4Embedding reads an Int4Linear, got {type(head).__name__}.")
        object.__setattr__(self, "head", head)  # a reference, not a second child module
        self.num_embeddings, self.embedding_dim = head.out_features, head.in_features
        codes = (head.codes().to(torch.int16) - 8).to(torch.int8)  # -8..7, as pack_int4 wants
        self.register_buffer("packed_rows", pack_int4(codes))

    @property
    def weight(self) -> torch.Tensor:
        """The de-quantized table ``(vocab, d_model)`` (for inspection; lookups read rows)."""
        return self.head.dequantized_weight()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.reshape(-1)
        q = unpack_int4(self.packed_rows[ids]).to(torch.int16)  # (tokens, d_model), -8..7
        return self.head.weight_rows(q, ids).view(*input_ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, tied to an Int4Linear head"
