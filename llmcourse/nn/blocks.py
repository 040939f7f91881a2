"""One Transformer layer: attention and a feed-forward network, each on the residual stream.

    pre-norm  (GPT-2, LLaMA):  x = x + Attn(N(x));          x = x + MLP(N(x))
    post-norm (BERT, 2017):    x = N(x + Attn(x));          x = N(x + MLP(x))
    parallel  (GPT-J, PaLM):   x = x + Attn(N(x)) + MLP(N(x))   (one norm; Chowdhery et al. 2022)

Pre-norm keeps an un-normalised path from the embeddings to the output, which is why deep
pre-norm stacks train without learning-rate warm-up tricks (Xiong et al. 2020). A decoder layer
of an encoder-decoder adds cross-attention to the encoder's output between the two.

Sub-modules: ``attn_norm``, ``attn``, (``cross_norm``, ``cross_attn``), ``mlp_norm``, ``mlp``.
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.config import ModelConfig
from llmcourse.nn.attention import MultiHeadAttention
from llmcourse.nn.feedforward import make_mlp
from llmcourse.nn.moe import MixtureOfExperts
from llmcourse.nn.norms import make_norm


def _attention(config: ModelConfig) -> MultiHeadAttention:
    return MultiHeadAttention(
        config.d_model,
        config.n_head,
        config.n_kv_head,
        config.head_dim,
        bias=config.bias,
        dropout=config.dropout,
        scale_scores=config.scale_attention,
    )


class TransformerBlock(nn.Module):
    """A layer built from ``config``; ``forward`` returns ``(x, attention weights, aux loss)``.

    The weights are ``(batch, n_head, q_len, k_len)`` when ``output_attentions`` (else ``None``);
    the aux loss is the mixture-of-experts balancing loss (``None`` for a dense MLP).
    """

    def __init__(self, config: ModelConfig, *, cross_attention: bool = False) -> None:
        super().__init__()
        norm_bias = config.norm_bias

        def norm() -> nn.Module:
            return make_norm(config.norm, config.d_model, config.norm_eps, norm_bias)

        self.post_norm = config.norm_placement == "post"
        self.parallel = config.parallel_block
        if self.parallel and (self.post_norm or cross_attention):
            raise ValueError(
                "Parallel blocks are pre-norm decoder layers; set parallel_block=False."
            )
        self.attn_norm = norm()
        self.attn = _attention(config)
        if cross_attention:
            self.cross_norm = norm()
            self.cross_attn = _attention(config)
        if not self.parallel:
            self.mlp_norm = norm()
        if config.n_expert:
            self.mlp = MixtureOfExperts(
                config.d_model,
                config.d_ff,
                config.n_expert,
                config.n_expert_active,
                config.mlp,
                config.bias,
            )
        else:
            self.mlp = make_mlp(config.mlp, config.d_model, config.d_ff, config.bias)
        self.dropout = nn.Dropout(config.dropout) if config.dropout else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        kv_cache=None,
        layer_index: int = 0,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``x``: ``(batch, seq, d_model)``; ``memory``: the encoder output for cross-attention."""
        attend = {
            "mask": mask,
            "is_causal": is_causal,
            "rope": rope,
            "kv_cache": kv_cache,
            "layer_index": layer_index,
            "output_attentions": output_attentions,
        }
        if self.parallel:
            h = self.attn_norm(x)
            attn_out, weights = self.attn(h, **attend)
            mlp_out, aux = self._mlp(h)
            return x + self._drop(attn_out) + self._drop(mlp_out), weights, aux
        if self.post_norm:
            attn_out, weights = self.attn(x, **attend)
            x = self.attn_norm(x + self._drop(attn_out))
            if memory is not None:
                cross_out, _ = self.cross_attn(x, memory=memory, mask=memory_mask)
                x = self.cross_norm(x + self._drop(cross_out))
            mlp_out, aux = self._mlp(x)
            return self.mlp_norm(x + self._drop(mlp_out)), weights, aux
        attn_out, weights = self.attn(self.attn_norm(x), **attend)
        x = x + self._drop(attn_out)
        if memory is not None:
            cross_out, _ = self.cross_attn(self.cross_norm(x), memory=memory, mask=memory_mask)
            x = x + self._drop(cross_out)
        mlp_out, aux = self._mlp(self.mlp_norm(x))
        return x + self._drop(mlp_out), weights, aux

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        # Dropout is the identity outside training: skip the module call (a few microseconds,
        # ~60 times per decoded token).
        return self.dropout(x) if self.training else x

    def _mlp(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(self.mlp, MixtureOfExperts):
            return self.mlp(x)
        return self.mlp(x), None
