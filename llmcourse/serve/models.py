"""What ``llmcourse serve`` serves: SmolLM2 (optionally quantized) or a tiny random model.

``"smollm2"`` is SmolLM2-135M-Instruct as a ``DecoderLM`` (``models.hf.load_smollm2``).
``"tiny"`` is a 2-layer random ``DecoderLM`` with SmolLM2's tokenizer: its text is gibberish,
but it loads in a second and exercises every part of the server, so tests and load tests of the
serving machinery use it. ``HFTextCodec`` adapts a ``transformers`` tokenizer to the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

MODELS = ("smollm2", "tiny")


class HFTextCodec:
    """Encode, decode and chat-format with a ``transformers`` tokenizer.

    Special tokens are never added on encode (the chat template writes them) and are skipped
    on decode; ``stop_ids`` are the end-of-turn and end-of-text ids the model emits.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        ids = {tokenizer.eos_token_id}
        for token in ("<|im_end|>", "<|endoftext|>"):
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
                ids.add(token_id)
        self.stop_ids = frozenset(i for i in ids if i is not None)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The model's chat template applied to ``messages``, ending where the reply starts."""
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )


def tiny_model(vocab_size: int, seed: int = 0) -> torch.nn.Module:
    """A 2-layer, 64-wide LLaMA-style ``DecoderLM`` with random weights (seeded)."""
    from llmcourse.models import DecoderLM
    from llmcourse.models.zoo import get_config

    config = get_config("smollm2-135m").replace(
        name="tiny-random",
        vocab_size=vocab_size,
        context_length=2048,
        d_model=64,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        head_dim=None,
        d_ff=128,
    )
    torch.manual_seed(seed)
    return DecoderLM(config).eval()


def load_served_model(
    name: str = "smollm2",
    quantize: str | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.nn.Module, HFTextCodec]:
    """``(model, codec)`` for ``name`` in ``MODELS``; ``quantize``: a ``quant.quantize`` scheme.

    The model goes to ``device`` (default: ``llmcourse.utils.device()``: ``$LLMCOURSE_DEVICE``,
    else cuda > mps > cpu); it is quantized first, on the CPU where it was loaded.
    """
    from llmcourse.models.hf import load_smollm2
    from llmcourse.pretrained import smollm2_tokenizer
    from llmcourse.utils.devices import device as pick_device

    if name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}.")
    model, tokenizer = load_smollm2() if name == "smollm2" else (None, smollm2_tokenizer())
    if model is None:
        model = tiny_model(len(tokenizer))
    if quantize is not None:
        from llmcourse.quant import quantize as quantize_model

        model = quantize_model(model, scheme=quantize)
    return model.to(pick_device(device)).eval(), HFTextCodec(tokenizer)
