"""``Seq2SeqLM``: an encoder-decoder Transformer in the style of T5 (Raffel et al. 2020).

    memory = Encoder(x)                                 bidirectional self-attention
    P(y) = Π_t P(y_t | y_<t, memory)                    causal self-attention + cross-attention

The decoder's cross-attention takes queries from the decoder and keys/values from ``memory``,
so every output token can look at the whole input: the natural fit for translation and
summarisation. T5 shares one embedding between encoder, decoder and output layer, uses a learned
relative position bias (computed once per stack and added in every layer), RMSNorm without
bias, no biases in linear layers, and scales the final hidden state by ``d_model^-0.5`` before
the tied output layer. Sub-modules: ``embed_tokens``, ``encoder`` and ``decoder`` (each with
``blocks``, ``relative_bias``, ``final_norm``), ``lm_head``.
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.config import ModelConfig, check_model_config
from llmcourse.models.base import LanguageModel, ModelOutput, check_input_ids
from llmcourse.nn.blocks import TransformerBlock
from llmcourse.nn.norms import make_norm
from llmcourse.nn.positional import RelativePositionBias


class Stack(nn.Module):
    """The layers of the encoder or of the decoder, with their position bias and final norm."""

    def __init__(self, config: ModelConfig, n_layer: int, *, decoder: bool) -> None:
        super().__init__()
        if config.position == "relative":
            self.relative_bias = RelativePositionBias(
                config.n_head,
                config.relative_buckets,
                config.relative_max_distance,
                bidirectional=not decoder,
            )
        self.blocks = nn.ModuleList(
            TransformerBlock(config, cross_attention=decoder) for _ in range(n_layer)
        )
        if config.norm_placement == "pre":
            self.final_norm = make_norm(
                config.norm, config.d_model, config.norm_eps, config.norm_bias
            )
        else:
            self.final_norm = nn.Identity()


class Seq2SeqLM(LanguageModel):
    """Encoder-decoder model: ``forward(input_ids, decoder_input_ids, *, attention_mask=None,
    decoder_attention_mask=None, encoder_hidden_states=None, kv_cache=None,
    output_attentions=False)`` → ``ModelOutput`` with decoder ``logits``
    ``(batch, target_seq, vocab)`` and ``encoder_hidden_states`` ``(batch, source_seq, d_model)``.
    """

    def __init__(self, config: ModelConfig) -> None:
        check_model_config(config)
        if config.architecture != "encoder-decoder":
            raise ValueError(
                f"Seq2SeqLM builds encoder-decoder models, but config.architecture is "
                f"{config.architecture!r}; use DecoderLM or EncoderLM."
            )
        if config.position in ("rope", "alibi"):
            raise ValueError(
                f"Seq2SeqLM supports relative, learned, sinusoidal or no positions, not "
                f"{config.position!r}."
            )
        super().__init__(config)
        self.add_embeddings()
        self.dropout = nn.Dropout(config.dropout) if config.dropout else nn.Identity()
        self.encoder = Stack(config, config.n_layer, decoder=False)
        self.decoder = Stack(config, config.n_decoder_layer, decoder=True)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.init_weights()
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The encoder's output ``(batch, source_seq, d_model)``."""
        check_input_ids(input_ids, self.config.vocab_size)
        seq = input_ids.shape[1]
        x = self.dropout(
            self.embed(input_ids, torch.arange(seq, device=input_ids.device).unsqueeze(0))
        )
        bias = self.encoder.relative_bias(seq, seq) if self.config.position == "relative" else None
        mask, _ = self.attention_inputs(
            seq,
            seq,
            causal=False,
            attention_mask=attention_mask,
            bias=bias,
            dtype=x.dtype,
            device=input_ids.device,
        )
        for block in self.encoder.blocks:
            x, _, _ = self.run_block(block, x, mask=mask)
        return self.encoder.final_norm(x)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        decoder_input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        kv_cache=None,
        output_attentions: bool = False,
    ) -> ModelOutput:
        """Logits for ``decoder_input_ids`` given the source ``input_ids``.

        Pass ``encoder_hidden_states`` (from ``encode``) to skip the encoder, e.g. at every
        generation step; ``kv_cache`` caches the decoder's self-attention like ``DecoderLM``.
        ``attention_mask`` marks real source tokens and also masks cross-attention.
        """
        if encoder_hidden_states is None:
            if input_ids is None:
                raise ValueError("Pass input_ids or encoder_hidden_states.")
            encoder_hidden_states = self.encode(input_ids, attention_mask)
        check_input_ids(decoder_input_ids, self.config.vocab_size, "decoder_input_ids")
        seq = decoder_input_ids.shape[1]
        past = kv_cache.seq_len if kv_cache is not None else 0
        device = decoder_input_ids.device
        positions = torch.arange(past, past + seq, device=device).unsqueeze(0)
        x = self.dropout(self.embed(decoder_input_ids, positions))
        relative = self.config.position == "relative"
        bias = self.decoder.relative_bias(seq, past + seq) if relative else None
        mask, is_causal = self.attention_inputs(
            seq,
            past + seq,
            causal=True,
            attention_mask=decoder_attention_mask,
            bias=bias,
            dtype=x.dtype,
            device=device,
        )
        memory_mask = None
        if attention_mask is not None:
            memory_mask = attention_mask.bool()[:, None, None, :]  # (batch, 1, 1, source_seq)
        attentions = []
        for index, block in enumerate(self.decoder.blocks):
            x, weights, _ = self.run_block(
                block,
                x,
                mask=mask,
                is_causal=is_causal,
                kv_cache=kv_cache,
                layer_index=index,
                memory=encoder_hidden_states,
                memory_mask=memory_mask,
                output_attentions=output_attentions,
            )
            attentions.append(weights)
        x = self.decoder.final_norm(x)
        # T5 rescales before the tied output layer (its embeddings are not scaled on input).
        scaled = x * self.config.d_model**-0.5 if self.config.tie_embeddings else x
        return ModelOutput(
            logits=self.lm_head(scaled),
            hidden_states=x,
            kv_cache=kv_cache,
            attentions=tuple(attentions) if output_attentions else None,
            encoder_hidden_states=encoder_hidden_states,
        )
