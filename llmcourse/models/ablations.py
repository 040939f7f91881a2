"""The ablation ladder: MiniGPT built up one idea at a time, each rung a small diff of the last.

The order is the one of Karpathy's "Let's build GPT" (2023), so every rung answers a question
the previous one raises:

| rung | what it adds |
|---|---|
| ``Bigram`` | the next token's logits from the current token alone (embed, read out) |
| ``OneHead`` | position embeddings, and one causal attention head over the past |
| ``MultiHead`` | ``n_head`` heads, each on ``d_model / n_head`` channels |
| ``WithMLP`` | ``n_layer`` layers of attention → MLP (computation per token, and depth) |
| ``WithResidual`` | each sub-layer adds its output to the stream: x + f(x) (He et al. 2016) |
| ``WithLayerNorm`` | LayerNorm before each sub-layer and the readout: pre-norm (Ba et al. 2016) |
| ``MiniGPT`` | tied input/output embeddings and GPT-2's scaled residual initialisation |

Every rung takes a ``MiniGPTConfig``, starts from the same N(0, 0.02) initialisation (so each
predicts nearly uniformly at first and pays ln(vocab) nats per token) and returns MiniGPT's
``GPTOutput(logits, loss)``, so the same ``Trainer`` trains them all. The pieces are MiniGPT's
own ``CausalSelfAttention``, ``MLP`` and ``Block``: what differs between rungs is only how they
are wired. ``llmcourse.train.ladder`` trains the ladder and writes its results table.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.models.minigpt import MLP, Block, CausalSelfAttention, GPTOutput, MiniGPTConfig


def _output(logits: torch.Tensor, targets: torch.Tensor | None) -> GPTOutput:
    loss = None
    if targets is not None:
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    return GPTOutput(logits, loss)


def _init_weights(module: nn.Module) -> None:
    """N(0, 0.02) weights and zero biases (GPT-2's base initialisation, without its scaling)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class Bigram(nn.Module):
    """Rung 1: embed the current token and read the next one's logits straight out of it.

    No context at all: a bigram model (factored through ``d_model`` channels, as the later rungs
    are, rather than a full vocab × vocab table, which AdamW learns far more slowly at the same
    learning rate).
    """

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(_init_weights)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> GPTOutput:
        return _output(self.lm_head(self.embed_tokens(idx)), targets)


class OneHead(nn.Module):
    """Rung 2: the bigram plus position embeddings and, between embedding and readout, one
    causal attention head as wide as ``d_model``: each position now sees the past.

    The later rungs only replace ``make_layers`` (and, from ``WithLayerNorm``, ``final_norm``).
    """

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_positions = nn.Embedding(config.context_length, config.d_model)
        self.layers = nn.ModuleList(self.make_layers(config))
        self.final_norm = self.make_final_norm(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(_init_weights)

    def make_layers(self, config: MiniGPTConfig) -> list[nn.Module]:
        return [CausalSelfAttention(dataclasses.replace(config, n_head=1))]

    def make_final_norm(self, config: MiniGPTConfig) -> nn.Module:
        return nn.Identity()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> GPTOutput:
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.embed_tokens(idx) + self.embed_positions(positions)
        for layer in self.layers:
            x = layer(x)
        return _output(self.lm_head(self.final_norm(x)), targets)


class MultiHead(OneHead):
    """Rung 3: ``n_head`` heads, each attending on its own ``d_model / n_head`` channels."""

    def make_layers(self, config: MiniGPTConfig) -> list[nn.Module]:
        return [CausalSelfAttention(config)]


class AttentionThenMLP(nn.Module):
    """One layer without a residual path or a norm: ``x → MLP(Attn(x))``."""

    def __init__(self, config: MiniGPTConfig) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


class ResidualLayer(AttentionThenMLP):
    """The same layer on a residual stream: each sub-layer *adds* its output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class WithMLP(OneHead):
    """Rung 4: ``n_layer`` layers of attention (gathers from other positions) then an MLP
    (computes on each position)."""

    def make_layers(self, config: MiniGPTConfig) -> list[nn.Module]:
        return [AttentionThenMLP(config) for _ in range(config.n_layer)]


class WithResidual(OneHead):
    """Rung 5: the same layers, each adding to a residual stream (x + f(x))."""

    def make_layers(self, config: MiniGPTConfig) -> list[nn.Module]:
        return [ResidualLayer(config) for _ in range(config.n_layer)]


class WithLayerNorm(OneHead):
    """Rung 6: pre-norm — MiniGPT's ``Block`` (LayerNorm before each sub-layer) and a final
    LayerNorm before the readout. MiniGPT differs only by tying ``lm_head`` to the token
    embedding and by GPT-2's 1/√(2·n_layer) scaling of the residual projections."""

    def make_layers(self, config: MiniGPTConfig) -> list[nn.Module]:
        return [Block(config) for _ in range(config.n_layer)]

    def make_final_norm(self, config: MiniGPTConfig) -> nn.Module:
        return nn.LayerNorm(config.d_model)
