"""A capstone-style model folder in seconds, for the chat page's tests: a random 2-layer
``DecoderLM`` with a tokenizer trained on a few lines, saved as ``llmcourse capstone`` saves
its final model (``model.safetensors`` + ``tokenizer.json``). Its replies are gibberish; what
the tests check is the serving path: template, stop tokens, streaming, the page."""

from __future__ import annotations

from pathlib import Path

import torch

from llmcourse.capstone.chat import new_tokenizer
from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.utils.checkpoint import save_checkpoint

TEXT = "Now is the winter of our discontent made glorious summer. 3+4=7 12+30=42\n" * 40


def make_model_folder(folder: Path, context_length: int = 96, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = new_tokenizer().train(TEXT, vocab_size=300)
    tokenizer.save(folder / "tokenizer.json")
    torch.manual_seed(seed)
    config = ModelConfig(
        name="capstone-test", vocab_size=tokenizer.vocab_size, context_length=context_length,
        d_model=32, n_layer=2, n_head=4, position="rope", norm="rmsnorm", mlp="swiglu", bias=False,
    )  # fmt: skip
    model = DecoderLM(config)
    extra = {"model_class": "DecoderLM", "model_config": config.to_dict()}
    save_checkpoint(folder / "model.safetensors", {"model": model.state_dict(), "extra": extra})
    return folder
