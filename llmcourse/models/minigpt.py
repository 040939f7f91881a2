"""MiniGPT: a GPT-2-style decoder in one file, written to be read top to bottom.

    h_0 = E[x_t] + P[t];   h = h + Attn(LN(h));   h = h + MLP(LN(h));   logits = LN(h_L) · Eᵀ

Radford et al. 2019 (GPT-2): learned positions, pre-norm blocks, tanh-GELU, a final LayerNorm,
the output layer tied to the token embedding, N(0, 0.02) weights with the projections into the
residual stream scaled by 1/√(2·n_layer). No switches: one architecture, as on a whiteboard.
Lesson 03 reads it; lesson 04's ladder (``llmcourse.models.ablations``) builds it rung by rung.

- ``llmcourse.models.DecoderLM`` builds GPT-2, LLaMA, Mistral, ... from a ``ModelConfig`` and adds
  what real use needs (KV cache, padding, GQA, RoPE, checkpointing). On a GPT-2-shaped config
  (``MiniGPTConfig.to_model_config()``) it computes the same logits, with the *same parameter
  names*: ``MiniGPT.from_decoder_lm(model)`` and ``DecoderLM.load_state_dict(mini.state_dict())``
  copy weights either way (tests check the logits agree to 1e-5).
- The course's trained tiny GPT (``llmcourse.train.tiny_gpt``, preset ``shakespeare-char``) is a
  ``DecoderLM`` with LLaMA's choices (RoPE, RMSNorm, SwiGLU, no biases): not GPT-2-shaped, so
  MiniGPT does not load it; the ladder trains that block beside MiniGPT to compare the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.config import ModelConfig
from llmcourse.models.base import check_input_ids
from llmcourse.utils.checks import check_int


@dataclass(frozen=True)
class MiniGPTConfig:
    """The five numbers that shape a GPT-2 (defaults: GPT-2 small, 124M parameters)."""

    vocab_size: int = 50257
    context_length: int = 1024
    d_model: int = 768
    n_layer: int = 12
    n_head: int = 12

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            check_int(f"MiniGPTConfig.{name}", value, 1)
        if self.d_model % self.n_head:
            raise ValueError(
                f"MiniGPTConfig.d_model={self.d_model} is not divisible by n_head={self.n_head}: "
                "every head needs the same number of channels."
            )

    def to_model_config(self) -> ModelConfig:
        """The same architecture as a ``ModelConfig`` for ``DecoderLM`` (GPT-2 style)."""
        return ModelConfig(name="minigpt", mlp="gelu_tanh", **vars(self))


# What makes a ModelConfig GPT-2-shaped (sizes aside): compared by ``from_decoder_lm``.
_GPT2_SHAPE = (
    "architecture", "position", "norm", "norm_eps", "norm_bias", "norm_placement",
    "parallel_block", "mlp", "d_ff", "bias", "n_kv_head", "head_dim", "scale_attention",
    "sliding_window", "n_expert", "tie_embeddings", "embedding_norm", "type_vocab_size",
)  # fmt: skip


class GPTOutput(NamedTuple):
    """``logits, loss = model(idx, targets)``; ``loss`` is None without targets."""

    logits: torch.Tensor  # (batch, seq, vocab_size)
    loss: torch.Tensor | None


class CausalSelfAttention(nn.Module):
    """softmax(Q Kᵀ / √d_k + causal mask) V in ``n_head`` heads, then an output projection."""

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        d = config.d_model
        self.n_head = config.n_head
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d, d) for _ in range(3))
        self.o_proj = nn.Linear(d, d)  # writes into the residual stream
        allowed = torch.tril(torch.ones(config.context_length, config.context_length)).bool()
        self.register_buffer("causal", allowed, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, d = x.shape
        # (batch, seq, d) -> (batch, n_head, seq, head_dim): each head attends on its own slice.
        q, k, v = (
            proj(x).view(batch, seq, self.n_head, d // self.n_head).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (batch, n_head, seq, seq)
        scores = scores.masked_fill(~self.causal[:seq, :seq], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v  # F.scaled_dot_product_attention(is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(batch, seq, d))


class MLP(nn.Module):
    """Position-wise: d_model → 4·d_model → tanh-GELU → d_model."""

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        self.up_proj = nn.Linear(config.d_model, 4 * config.d_model)
        self.down_proj = nn.Linear(4 * config.d_model, config.d_model)  # into the residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.up_proj(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm: each sub-layer reads a normalised copy of the stream and adds its output."""

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class MiniGPT(nn.Module):
    """GPT-2: embeddings, ``n_layer`` blocks, a final LayerNorm and the tied output layer."""

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_positions = nn.Embedding(config.context_length, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.final_norm = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tied: one matrix reads and writes tokens
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for name, parameter in self.named_parameters():  # GPT-2's initialisation
            if name.endswith("bias"):
                nn.init.zeros_(parameter)
            elif "norm" not in name:  # LayerNorm gains stay at 1
                # Each block adds two outputs to the stream; shrinking them keeps its variance
                # from growing with depth (GPT-2, §2.3).
                residual = name.endswith(("o_proj.weight", "down_proj.weight"))
                nn.init.normal_(parameter, std=residual_std if residual else 0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> GPTOutput:
        """``idx`` ``(batch, seq)`` → logits ``(batch, seq, vocab)``, and the mean cross-entropy
        against ``targets`` ``(batch, seq)`` (the *next* token at each position; -100: skip)."""
        check_input_ids(idx, self.config.vocab_size, "idx")  # a clear error, not torch's IndexError
        seq = idx.shape[1]
        if seq > self.config.context_length:
            raise ValueError(
                f"idx has {seq} tokens, more than context_length={self.config.context_length}; "
                f"pass idx[:, -{self.config.context_length}:]."
            )
        positions = torch.arange(seq, device=idx.device)
        x = self.embed_tokens(idx) + self.embed_positions(positions)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.final_norm(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return GPTOutput(logits, loss)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` tokens to ``idx``, each sampled from softmax(logits / T)
        over the ``top_k`` likeliest (T = 0: greedy), seeing the last ``context_length``."""
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.config.context_length :]).logits[:, -1]
            if temperature == 0:
                next_id = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_id = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            idx = torch.cat([idx, next_id], dim=1)
        return idx

    @classmethod
    def from_decoder_lm(cls, model: nn.Module) -> MiniGPT:
        """A MiniGPT with the weights of a GPT-2-shaped ``DecoderLM`` (same parameter names)."""
        config: ModelConfig = model.config
        mini = MiniGPTConfig(**{f.name: getattr(config, f.name) for f in fields(MiniGPTConfig)})
        wanted = mini.to_model_config()
        differences = [
            f"{name}={getattr(config, name)!r} (MiniGPT: {getattr(wanted, name)!r})"
            for name in _GPT2_SHAPE
            if getattr(config, name) != getattr(wanted, name)
        ]
        if differences:
            raise ValueError(f"MiniGPT is GPT-2 only; this model has {', '.join(differences)}.")
        gpt = cls(mini)
        gpt.load_state_dict(model.state_dict())
        return gpt
