"""``EncoderLM``: a bidirectional Transformer encoder with BERT's masked-LM head.

    h_0 = LayerNorm(E_token[x] + E_position[p] + E_segment[s])    (Devlin et al. 2019, Fig. 2)
    logits = W_E · LayerNorm(GELU(W h_L + b)) + b_vocab            (the MLM head, tied to W_E)

Every token attends to every other (no causal mask), so each position sees both sides of its
context: good for understanding (classification, retrieval, tagging), not for generating text.
Sub-modules: ``embed_tokens``, ``embed_positions``, ``embed_token_types``, ``embed_norm``,
``blocks[i]``, and ``mlm_head`` (``dense``, ``norm``, ``decoder``) when ``config.mlm_head``.
``config.mlm_head=False`` gives a bare encoder, e.g. MiniLM's ``BertModel`` (whose pooler, used
only for BERT's next-sentence task, is left out).
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.config import ModelConfig, check_model_config
from llmcourse.models.base import LanguageModel, ModelOutput, check_input_ids
from llmcourse.nn.blocks import TransformerBlock
from llmcourse.nn.feedforward import ACTIVATIONS
from llmcourse.nn.norms import make_norm


class MaskedLMHead(nn.Module):
    """``(batch, seq, d_model)`` → ``(batch, seq, vocab)``: dense, GELU, norm, tied decoder."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.activation = ACTIVATIONS.get(config.mlp, ACTIVATIONS["gelu"])
        self.norm = make_norm(config.norm, config.d_model, config.norm_eps, config.norm_bias)
        self.decoder = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.activation(self.dense(x))))


class EncoderLM(LanguageModel):
    """BERT-style encoder: ``forward(input_ids, *, attention_mask=None, token_type_ids=None,
    position_ids=None, output_attentions=False)`` → ``ModelOutput`` with ``hidden_states``
    ``(batch, seq, d_model)`` and MLM ``logits`` ``(batch, seq, vocab)`` (``None`` without a
    head)."""

    def __init__(self, config: ModelConfig) -> None:
        check_model_config(config)
        if config.architecture != "encoder":
            raise ValueError(
                f"EncoderLM builds encoder-only models, but config.architecture is "
                f"{config.architecture!r}; use DecoderLM or Seq2SeqLM."
            )
        if config.position in ("rope", "relative"):
            raise ValueError(
                f"EncoderLM supports learned, sinusoidal, alibi or no positions, not "
                f"{config.position!r}."
            )
        super().__init__(config)
        norm_args = (config.norm, config.d_model, config.norm_eps, config.norm_bias)
        self.add_embeddings()
        if config.type_vocab_size:
            self.embed_token_types = nn.Embedding(config.type_vocab_size, config.d_model)
        self.embed_norm = make_norm(*norm_args) if config.embedding_norm else nn.Identity()
        self.dropout = nn.Dropout(config.dropout) if config.dropout else nn.Identity()
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layer))
        self.final_norm = make_norm(*norm_args) if config.norm_placement == "pre" else nn.Identity()
        if config.mlm_head:
            self.mlm_head = MaskedLMHead(config)
        self.init_weights()
        if config.mlm_head and config.tie_embeddings:
            self.mlm_head.decoder.weight = self.embed_tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> ModelOutput:
        """``attention_mask`` ``(batch, seq)``: 1 for real tokens, 0 for padding (any side)."""
        check_input_ids(input_ids, self.config.vocab_size)
        seq = input_ids.shape[1]
        if position_ids is None:
            position_ids = torch.arange(seq, device=input_ids.device).unsqueeze(0)
        x = self.embed(input_ids, position_ids)
        if self.config.type_vocab_size:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.embed_token_types(token_type_ids)
        x = self.dropout(self.embed_norm(x))
        mask, _ = self.attention_inputs(
            seq, seq, causal=False, attention_mask=attention_mask, dtype=x.dtype, device=x.device
        )
        attentions = []
        for block in self.blocks:
            x, weights, _ = self.run_block(block, x, mask=mask, output_attentions=output_attentions)
            attentions.append(weights)
        x = self.final_norm(x)
        return ModelOutput(
            logits=self.mlm_head(x) if self.config.mlm_head else None,
            hidden_states=x,
            attentions=tuple(attentions) if output_attentions else None,
        )
