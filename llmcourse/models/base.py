"""What every llmcourse model shares: outputs, initialisation, masks, checkpointing, save/load.

``DecoderLM``, ``EncoderLM`` and ``Seq2SeqLM`` subclass ``LanguageModel``, which gives them:

- ``add_embeddings()`` / ``embed(ids, position_ids)``: token plus absolute position embeddings;
- ``model.attn_impl = "sdpa" | "explicit"``: the attention path of every layer;
- ``model.gradient_checkpointing = True``: recompute each block in the backward pass with
  ``torch.utils.checkpoint.checkpoint(block, ..., use_reentrant=False)`` (memory for compute);
- ``model.save_pretrained(dir)`` / ``Cls.from_pretrained(dir)``: ``config.json`` plus
  ``model.safetensors`` written with ``llmcourse.utils.save_checkpoint``;
- GPT-2's initialisation: N(0, 0.02) weights, zero biases, unit norm gains, and residual output
  projections (``o_proj``, ``down_proj``) scaled by ``1/√(2·n_layer)`` so the residual stream's
  variance does not grow with depth (Radford et al. 2019, §2.3).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from llmcourse.config import ModelConfig
from llmcourse.nn.attention import AttentionImpl, MultiHeadAttention
from llmcourse.nn.masks import combine_masks
from llmcourse.nn.positional import absolute_position_embedding, alibi_bias
from llmcourse.utils.checkpoint import load_checkpoint, save_checkpoint

Model = TypeVar("Model", bound="LanguageModel")
_RESIDUAL_OUTPUTS = ("o_proj.weight", "down_proj.weight")


@dataclass
class ModelOutput:
    """What a forward pass returns.

    ``logits``: ``(batch, seq, vocab)`` (``None`` for a bare encoder); ``hidden_states``: the
    last layer's output ``(batch, seq, d_model)`` after the final norm; ``kv_cache``: the cache
    passed in, now holding this call's keys/values; ``attentions``: one
    ``(batch, n_head, q_len, k_len)`` tensor per layer when ``output_attentions=True``;
    ``aux_loss``: the summed mixture-of-experts balancing loss (``None`` for dense models);
    ``encoder_hidden_states``: the encoder's output (encoder-decoder models).
    """

    logits: torch.Tensor | None
    hidden_states: torch.Tensor | None = None
    kv_cache: Any = None
    attentions: tuple[torch.Tensor, ...] | None = None
    aux_loss: torch.Tensor | None = None
    encoder_hidden_states: torch.Tensor | None = None


def check_input_ids(
    input_ids: torch.Tensor, vocab_size: int, name: str = "input_ids", *, values: bool = True
) -> None:
    """Raise ``ValueError`` unless ``input_ids`` is a 2-D integer tensor of valid token ids.

    ``values=False`` checks the type and shape only: reading the ids' range back to the host
    waits for an accelerator to finish all queued work, which a decoding loop must not do at
    every step (it feeds back the model's own tokens, in range by construction).
    """
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of token ids, got {type(input_ids).__name__}; "
            "wrap lists with torch.tensor([[...]])."
        )
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise ValueError(
            f"{name} must hold integer token ids (torch.long), got dtype {input_ids.dtype}. "
            "Token ids index the embedding table: convert with input_ids.long(), or pass the "
            "tokenizer's output rather than embeddings."
        )
    if input_ids.dim() != 2:
        raise ValueError(
            f"{name} must be (batch, seq), got shape {tuple(input_ids.shape)}; add a batch "
            "dimension with input_ids.unsqueeze(0)."
        )
    if values and input_ids.numel():
        low, high = (int(v) for v in torch.aminmax(input_ids))
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"{name} holds ids outside 0..{vocab_size - 1} (min {low}, max {high}): the "
                "tokenizer and the model's vocab_size disagree."
            )


class LanguageModel(nn.Module):
    """Base class: owns ``config`` and the shared machinery listed in the module docstring."""

    config: ModelConfig

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"Expected a ModelConfig, got {type(config).__name__}.")
        self.config = config
        self.gradient_checkpointing = False

    # -- embeddings --------------------------------------------------------------------------
    def add_embeddings(self) -> None:
        """Create ``embed_tokens`` and, for learned or sinusoidal positions, ``embed_positions``."""
        config = self.config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        positions = absolute_position_embedding(
            config.position, config.context_length, config.d_model
        )
        if positions is not None:
            self.embed_positions = positions

    def embed(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        max_position: int | None = None,
    ) -> torch.Tensor:
        """Token embeddings plus absolute position embeddings where the config has them:
        ``(batch, seq)`` ids → ``(batch, seq, d_model)`` (no dropout or norm yet).

        ``max_position``: the largest of ``position_ids`` when the caller knows it without
        reading the tensor (it built the positions), so the range check needs no host sync.
        """
        x = self.embed_tokens(input_ids)
        if self.config.position in ("learned", "sinusoidal"):
            x = x + self.embed_positions(position_ids, max_position=max_position)
        return x

    # -- attention path --------------------------------------------------------------------
    @property
    def attn_impl(self) -> AttentionImpl:
        """``"sdpa"`` (fused, default) or ``"explicit"`` (the reference math) for all layers."""
        modules = [m for m in self.modules() if isinstance(m, MultiHeadAttention)]
        return modules[0].attn_impl if modules else "sdpa"

    @attn_impl.setter
    def attn_impl(self, impl: AttentionImpl) -> None:
        if impl not in ("sdpa", "explicit"):
            raise ValueError(f"attn_impl must be 'sdpa' or 'explicit', got {impl!r}.")
        for module in self.modules():
            if isinstance(module, MultiHeadAttention):
                module.attn_impl = impl

    # -- initialisation --------------------------------------------------------------------
    def init_weights(self) -> None:
        """GPT-2's scheme with scaled residual projections (see the module docstring)."""
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * max(self.config.n_layer, 1))
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, parameter in self.named_parameters():
            if name.endswith(_RESIDUAL_OUTPUTS):
                nn.init.normal_(parameter, mean=0.0, std=residual_std)

    # -- shared forward helpers --------------------------------------------------------------
    def attention_inputs(
        self,
        q_len: int,
        k_len: int,
        *,
        causal: bool,
        attention_mask: torch.Tensor | None,
        bias: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | None = None,
    ) -> tuple[torch.Tensor | None, bool]:
        """``(mask, is_causal)`` for every layer of one forward pass, built once.

        With nothing but causality to enforce, no mask is built: ``is_causal=True`` tells the
        fused kernel (square scores), and a single new token may see every cached one.
        ``bias`` (ALiBi, T5) is folded into an additive float mask.
        """
        window = self.config.sliding_window if causal else None
        if window is not None and window >= k_len:
            window = None  # every causal key is inside the window: plain causal attention
        if self.config.position == "alibi":
            bias = alibi_bias(self.config.n_head, q_len, k_len, device)
        square_or_single = q_len == k_len or q_len == 1
        if attention_mask is None and window is None and bias is None and square_or_single:
            return None, causal and q_len > 1
        mask = combine_masks(
            q_len,
            k_len,
            causal=causal,
            attention_mask=attention_mask,
            sliding_window=window,
            device=device,
        )
        if bias is None:
            return mask, False
        bias = bias.to(dtype)
        if mask is not None:
            bias = bias.masked_fill(~mask, float("-inf"))
        return bias, False

    def run_block(self, block: nn.Module, x: torch.Tensor, **kwargs: Any):
        """Call ``block``, through activation checkpointing when it is switched on."""
        if (
            self.gradient_checkpointing
            and self.training
            and torch.is_grad_enabled()
            and kwargs.get("kv_cache") is None  # a recomputed block would append to it twice
        ):
            return checkpoint(block, x, use_reentrant=False, **kwargs)
        return block(x, **kwargs)

    # -- save / load -----------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"model_class": type(self).__name__, "config": self.config.to_dict()}
        (directory / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        save_checkpoint(directory / "model.safetensors", {"model": self.state_dict()})
        return directory

    @classmethod
    def from_pretrained(
        cls: type[Model], directory: str | os.PathLike[str], map_location: str = "cpu"
    ) -> Model:
        """Rebuild a model saved with ``save_pretrained``."""
        directory = Path(directory)
        config_file = directory / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(
                f"No config.json in {directory}; save the model with model.save_pretrained(dir)."
            )
        meta = json.loads(config_file.read_text())
        if meta.get("model_class") != cls.__name__:
            raise ValueError(
                f"{directory} holds a {meta.get('model_class')}, not a {cls.__name__}; load it "
                f"with {meta.get('model_class')}.from_pretrained."
            )
        model = cls(ModelConfig.from_dict(meta["config"]))
        state = load_checkpoint(directory / "model.safetensors", map_location=map_location)
        model.load_state_dict(state["model"])
        return model.to(map_location)

    def num_parameters(self) -> int:
        """Parameters counted once each (tied weights count once)."""
        return sum(p.numel() for p in self.parameters())
