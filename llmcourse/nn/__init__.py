"""Transformer building blocks: attention and masks, positions, norms, MLPs, blocks, MoE, KV cache.

- ``attention``: scaled dot-product attention (explicit and fused), ``MultiHeadAttention``
  (MHA, GQA, MQA); ``masks``: causal, padding, prefix-LM and sliding-window masks;
- ``positional``: sinusoidal, learned, RoPE, ALiBi and T5's relative bias;
- ``norms`` (LayerNorm, RMSNorm), ``feedforward`` (GELU MLP, SwiGLU/GeGLU), ``moe`` (top-k
  mixture of experts), ``blocks`` (``TransformerBlock``: pre-, post-norm, parallel);
- ``kv_cache``: ``KVCache``, the keys and values a decoder keeps between steps.

Everything here is plain PyTorch (``nn.Module`` and functions on tensors); ``llmcourse.models``
assembles these pieces into GPT-, LLaMA-, BERT- and T5-style models from a ``ModelConfig``.
"""

from llmcourse.nn.attention import (
    MultiHeadAttention,
    attend,
    merge_heads,
    repeat_kv,
    scaled_dot_product_attention,
    split_heads,
)
from llmcourse.nn.blocks import TransformerBlock
from llmcourse.nn.feedforward import MLP, GatedMLP, swiglu
from llmcourse.nn.kv_cache import Cache, KVCache, SlidingWindowKVCache
from llmcourse.nn.masks import (
    causal_mask,
    combine_masks,
    padding_mask,
    prefix_lm_mask,
    sliding_window_mask,
)
from llmcourse.nn.moe import MixtureOfExperts, load_balancing_loss
from llmcourse.nn.norms import LayerNorm, RMSNorm, rms_norm
from llmcourse.nn.positional import (
    LearnedPositionalEmbedding,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionalEmbedding,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    relative_position_bucket,
    rope_cos_sin,
    sinusoidal_encoding,
)

__all__ = [
    "MLP",
    "Cache",
    "GatedMLP",
    "KVCache",
    "LayerNorm",
    "LearnedPositionalEmbedding",
    "MixtureOfExperts",
    "MultiHeadAttention",
    "RMSNorm",
    "RelativePositionBias",
    "RotaryEmbedding",
    "SinusoidalPositionalEmbedding",
    "SlidingWindowKVCache",
    "TransformerBlock",
    "alibi_bias",
    "alibi_slopes",
    "apply_rope",
    "attend",
    "causal_mask",
    "combine_masks",
    "load_balancing_loss",
    "merge_heads",
    "padding_mask",
    "prefix_lm_mask",
    "relative_position_bucket",
    "repeat_kv",
    "rms_norm",
    "rope_cos_sin",
    "scaled_dot_product_attention",
    "sinusoidal_encoding",
    "sliding_window_mask",
    "split_heads",
    "swiglu",
]
