"""``DecoderLM``: one decoder-only language model class for GPT-2, LLaMA, Mistral, JAIS, SmolLM2.

    P(x) = Π_t P(x_t | x_<t),   logits_t = W_out · N(h_L,t),   h_0 = E[x] (+ positions)

The config picks every architectural difference: learned positions and LayerNorm + GELU
(GPT-2); RoPE, RMSNorm, SwiGLU and grouped-query attention (LLaMA 2/3, SmolLM2); a sliding
window (Mistral); ALiBi with SwiGLU (JAIS); parallel blocks (PaLM); mixture of experts
(Mixtral). Sub-modules: ``embed_tokens``, ``embed_positions`` (learned or sinusoidal only),
``blocks[i]`` (``TransformerBlock``), ``final_norm``, ``lm_head`` (its weight *is*
``embed_tokens.weight`` when ``tie_embeddings``).
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.config import ModelConfig, check_model_config
from llmcourse.models.base import LanguageModel, ModelOutput, check_input_ids
from llmcourse.nn.blocks import TransformerBlock
from llmcourse.nn.kv_cache import Cache
from llmcourse.nn.norms import make_norm
from llmcourse.nn.positional import (
    RelativePositionBias,
    RotaryEmbedding,
)


class DecoderLM(LanguageModel):
    """A causal (left-to-right) Transformer language model built from a ``ModelConfig``.

    ``forward(input_ids, *, attention_mask=None, position_ids=None, kv_cache=None,
    output_attentions=False)`` returns a ``ModelOutput`` with ``logits`` ``(batch, seq,
    vocab)``. See ``forward`` for padding and caching.
    """

    def __init__(self, config: ModelConfig) -> None:
        check_model_config(config)
        if config.architecture != "decoder":
            raise ValueError(
                f"DecoderLM builds decoder-only models, but config.architecture is "
                f"{config.architecture!r}; use EncoderLM or Seq2SeqLM."
            )
        super().__init__(config)
        self.add_embeddings()
        if config.position == "rope":
            self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta)
        elif config.position == "relative":
            self.relative_bias = RelativePositionBias(
                config.n_head,
                config.relative_buckets,
                config.relative_max_distance,
                bidirectional=False,
            )
        self.dropout = nn.Dropout(config.dropout) if config.dropout else nn.Identity()
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layer))
        # Post-norm layers end on a norm already; pre-norm stacks need one before the head.
        if config.norm_placement == "pre":
            self.final_norm = make_norm(
                config.norm, config.d_model, config.norm_eps, config.norm_bias
            )
        else:
            self.final_norm = nn.Identity()
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.init_weights()
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        kv_cache: Cache | None = None,
        output_attentions: bool = False,
    ) -> ModelOutput:
        """Next-token logits for ``input_ids`` ``(batch, seq)``.

        ``attention_mask`` ``(batch, past + seq)``: 1 for real tokens, 0 for padding (left
        padding works: positions then count real tokens only). ``position_ids``
        ``(batch, seq)`` overrides that. ``kv_cache`` (an ``llmcourse.nn.Cache``, e.g.
        ``KVCache()``): keys and values are added to it and attention also covers what it held
        before; pass only the new tokens. Ids fed into a non-empty cache are not range-checked
        (decoding feeds back the model's own tokens; checking would stall an accelerator every
        step). ``output_attentions`` returns each layer's weights (explicit path).
        """
        past = kv_cache.seq_len if kv_cache is not None else 0
        check_input_ids(input_ids, self.config.vocab_size, values=past == 0)
        seq = input_ids.shape[1]
        # A cache that forgets (sliding window) returns fewer keys than past + seq: the last ones.
        keys = (kv_cache.stored_len if kv_cache is not None else 0) + seq
        device = input_ids.device
        if attention_mask is not None and attention_mask.shape[-1] != past + seq:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[-1]} positions but the cache holds "
                f"{past} and {seq} are new; pass the mask for cached + new tokens."
            )
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -seq:]
            else:
                position_ids = torch.arange(past, past + seq, device=device).unsqueeze(0)
            largest_position = past + seq - 1  # known here: no need to read it back
        else:
            largest_position = None
        x = self.dropout(self.embed(input_ids, position_ids, largest_position))
        rope = None
        if self.config.position == "rope":
            # (batch, 1, seq, head_dim) in x's dtype, once for every layer's queries and keys
            rope = tuple(t.unsqueeze(1).to(x.dtype) for t in self.rotary(position_ids))
        bias = self.relative_bias(seq, keys) if self.config.position == "relative" else None
        mask, is_causal = self.attention_inputs(
            seq,
            keys,
            causal=True,
            attention_mask=None if attention_mask is None else attention_mask[:, -keys:],
            bias=bias,
            dtype=x.dtype,
            device=device,
        )
        attentions, aux_losses = [], []
        for index, block in enumerate(self.blocks):
            x, weights, aux = self.run_block(
                block,
                x,
                mask=mask,
                is_causal=is_causal,
                rope=rope,
                kv_cache=kv_cache,
                layer_index=index,
                output_attentions=output_attentions,
            )
            if output_attentions:
                attentions.append(weights)
            if aux is not None:
                aux_losses.append(aux)
        x = self.final_norm(x)
        return ModelOutput(
            logits=self.lm_head(x),
            hidden_states=x,
            kv_cache=kv_cache,
            attentions=tuple(attentions) if output_attentions else None,
            aux_loss=torch.stack(aux_losses).sum() if aux_losses else None,
        )
