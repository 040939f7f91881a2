"""Parameters, FLOPs and memory of a Transformer, by arithmetic on its ``ModelConfig``.

Nothing here builds a model, so it answers for a 540B-parameter config in microseconds. The
parameter count is exact: it equals ``sum(p.numel() for p in model.parameters())`` of the
llmcourse model built from the same config (tests check this on the meta device for every zoo
config, and against ``transformers`` for GPT-2, BERT and T5).

Per layer, with ``d = d_model``, ``h = n_head``, ``g = n_kv_head``, ``k = head_dim``,
``f = d_ff``:

    attention   d·h·k (Q) + 2·d·g·k (K, V) + h·k·d (output)        (+ biases)
    MLP         2·d·f (GELU/ReLU)  or  3·d·f (SwiGLU/GeGLU)        (+ biases)
    norms       d per norm (+ d with a bias)

Training costs about ``6N + 12·L·h·k·T`` FLOPs per token: 2 per weight in the forward pass and 4
in the backward, plus the two attention matmuls (QKᵀ and AV) over a context of ``T`` tokens
(Kaplan et al. 2020, Table 1; Chowdhery et al. 2022, Appendix B).

Pure arithmetic: importing this module does not import torch (a dtype is a name such as
``"bfloat16"``, a byte count, or a torch dtype when you have one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from llmcourse import scaling
from llmcourse.config import ModelConfig, check_model_config
from llmcourse.utils.checks import check_int

if TYPE_CHECKING:
    import torch

#: A dtype by name (torch's: ``"float16"``, ``"bfloat16"``; ``"torch.float16"`` too), by bytes
#: per value (``2``, or ``0.5`` for 4-bit values), or a torch/numpy dtype.
DType = Union[str, int, float, "torch.dtype"]

#: Bytes per value of the dtypes torch names, so a name needs no torch import.
DTYPE_BYTES: dict[str, int] = {
    "float64": 8,
    "double": 8,
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "int64": 8,
    "long": 8,
    "int32": 4,
    "int": 4,
    "int16": 2,
    "short": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
}


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _norm(config: ModelConfig) -> int:
    return config.d_model * (2 if config.norm_bias else 1)


def attention_parameters(config: ModelConfig) -> int:
    """One attention module: the Q, K, V and output projections."""
    d, q_width = config.d_model, config.n_head * config.head_dim
    kv_width = config.n_kv_head * config.head_dim
    return (
        _linear(d, q_width, config.bias)
        + 2 * _linear(d, kv_width, config.bias)
        + _linear(q_width, d, config.bias)
    )


def mlp_parameters(config: ModelConfig, *, active: bool = False) -> int:
    """One feed-forward block; with experts, all of them (or the ``active`` top-k) + router."""
    d, f = config.d_model, config.d_ff
    dense = (2 if config.gated_mlp else 1) * _linear(d, f, config.bias) + _linear(f, d, config.bias)
    if not config.n_expert:
        return dense
    used = config.n_expert_active if active else config.n_expert
    return d * config.n_expert + used * dense  # the router has no bias


def layer_parameters(config: ModelConfig, *, cross_attention: bool = False, active=False) -> int:
    """One ``TransformerBlock``."""
    norms = 1 if config.parallel_block else 2
    total = attention_parameters(config) + mlp_parameters(config, active=active)
    if cross_attention:
        total += attention_parameters(config)
        norms += 1
    return total + norms * _norm(config)


def embedding_parameters(config: ModelConfig) -> int:
    """Token, learned-position and segment embedding tables (the output layer excluded)."""
    total = config.vocab_size * config.d_model
    if config.position == "learned":
        total += config.context_length * config.d_model
    if config.architecture == "encoder":
        total += config.type_vocab_size * config.d_model
    return total


def count_parameters(config: ModelConfig, *, active: bool = False) -> int:
    """Exact parameter count of the llmcourse model that ``config`` builds.

    Tied input/output embeddings count once. ``active=True`` counts, for a mixture of experts,
    only the ``n_expert_active`` experts a token uses (Mixtral 8x7B: 12.9B of 46.7B).
    """
    check_model_config(config)
    relative = config.relative_buckets * config.n_head if config.position == "relative" else 0
    final_norm = _norm(config) if config.norm_placement == "pre" else 0
    total = embedding_parameters(config)
    if config.architecture == "decoder":
        total += config.n_layer * layer_parameters(config, active=active)
        total += relative + final_norm
        if not config.tie_embeddings:
            total += config.vocab_size * config.d_model
    elif config.architecture == "encoder":
        total += config.n_layer * layer_parameters(config, active=active)
        total += final_norm + (_norm(config) if config.embedding_norm else 0)
        if config.mlm_head:
            total += _linear(config.d_model, config.d_model, True) + _norm(config)
            total += config.vocab_size  # the output bias
            if not config.tie_embeddings:
                total += config.vocab_size * config.d_model
    else:
        total += config.n_layer * layer_parameters(config, active=active)
        total += config.n_decoder_layer * layer_parameters(
            config, cross_attention=True, active=active
        )
        total += 2 * (relative + final_norm)
        if not config.tie_embeddings:
            total += config.vocab_size * config.d_model
    return total


def flops_per_token(
    config: ModelConfig,
    seq_len: int | None = None,
    *,
    training: bool = True,
    include_attention: bool = True,
) -> int:
    """Matmul FLOPs per token: ``6N + 12·L·h·k·T`` for training, ``2N + 4·L·h·k·T`` forward.

    ``N`` counts the weights a token is multiplied by: every parameter except the embedding
    lookups (which are not matmuls), plus the output layer (counted even when tied), with only
    the active experts of a mixture. ``T`` is ``seq_len`` (default: the context length). This is
    PaLM's "model FLOPs" for MFU (Chowdhery et al. 2022, App. B); norms and softmax are ignored.
    The formula is ``llmcourse.scaling.flops_per_token``; this finds ``N`` and the shape.
    """
    seq_len = config.context_length if seq_len is None else seq_len
    n = count_parameters(config, active=True) - embedding_parameters(config)
    has_output_layer = config.architecture != "encoder" or config.mlm_head
    if config.tie_embeddings and has_output_layer:
        n += config.vocab_size * config.d_model  # the tied output matmul still happens
    layers = config.n_layer + (
        config.n_decoder_layer if config.architecture == "encoder-decoder" else 0
    )
    shape = (layers, config.n_head, config.head_dim, seq_len) if include_attention else ()
    return round(scaling.flops_per_token(n, *shape, training=training))


def dtype_bytes(dtype: DType) -> int | float:
    """Bytes per value: ``"float16"``, ``"torch.float16"``, ``2`` or ``torch.float16`` → 2.

    A byte count passes through (``0.5`` for 4-bit values); a torch or numpy dtype gives its
    ``itemsize``. Names are looked up in ``DTYPE_BYTES``, so no torch import is needed.
    """
    if isinstance(dtype, bool):
        raise TypeError(f"dtype must be a name, a byte count or a torch dtype, got {dtype!r}.")
    if isinstance(dtype, (int, float)):
        if not dtype > 0:
            raise ValueError(f"A dtype given as bytes per value must be positive, got {dtype!r}.")
        return dtype
    if isinstance(dtype, str):
        size = DTYPE_BYTES.get(dtype.removeprefix("torch."))
        if size is None:
            raise ValueError(
                f"Unknown dtype {dtype!r}; use a torch dtype name ({', '.join(DTYPE_BYTES)}) or "
                "the bytes per value, e.g. 0.5 for 4-bit."
            )
        return size
    itemsize = getattr(dtype, "itemsize", None)  # torch.dtype and numpy.dtype both have it
    if isinstance(itemsize, int) and itemsize > 0:
        return itemsize
    raise TypeError(
        f"dtype must be a name such as 'float16', a byte count or a torch dtype, got {dtype!r}."
    )


def kv_cache_bytes(
    config: ModelConfig,
    seq_len: int,
    batch_size: int = 1,
    dtype: DType = "float16",
) -> int:
    """Bytes of a full KV cache: ``2 · L · n_kv_head · head_dim · seq_len · batch · bytes``.

    Keys and values (the 2) for every decoder layer; grouped-query attention stores only
    ``n_kv_head`` heads. LLaMA-2-7B in fp16 needs 0.5 MiB per token. (Mistral's rolling buffer
    would keep at most ``sliding_window`` positions; this counts a cache that keeps them all.)
    """
    check_model_config(config)
    if config.architecture == "encoder":
        raise ValueError("Encoder-only models generate nothing and keep no KV cache.")
    check_int("seq_len", seq_len, 0)
    check_int("batch_size", batch_size, 1)
    layers = config.n_decoder_layer if config.architecture == "encoder-decoder" else config.n_layer
    values = 2 * layers * config.n_kv_head * config.head_dim * seq_len * batch_size
    return math.ceil(values * dtype_bytes(dtype))


@dataclass(frozen=True)
class InferenceMemory:
    """Bytes needed to serve a model: its weights and its KV cache (activations are small)."""

    weights: int
    kv_cache: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache


def inference_memory(
    config: ModelConfig,
    seq_len: int,
    batch_size: int = 1,
    dtype: DType = "float16",
) -> InferenceMemory:
    """Weights (all parameters, in ``dtype``) plus a full KV cache for ``batch_size`` sequences."""
    weights = math.ceil(count_parameters(config) * dtype_bytes(dtype))
    cache = (
        0
        if config.architecture == "encoder"
        else kv_cache_bytes(config, seq_len, batch_size, dtype)
    )
    return InferenceMemory(weights, cache)
