"""Transformer language models built from a ``ModelConfig``, plus their published configs.

- ``MiniGPT`` (``llmcourse.models.minigpt``): GPT-2 in one readable file, equal to a GPT-2-shaped
  ``DecoderLM``;
- ``DecoderLM`` (GPT-2, LLaMA 1/2/3, Mistral, Mixtral, PaLM, JAIS, SmolLM2), ``EncoderLM``
  (BERT, MiniLM), ``Seq2SeqLM`` (T5), on ``LanguageModel`` (``base``); ``KVCache``;
- ``llmcourse.models.zoo``: published configs and model cards (``get_config``, ``get_card``);
- ``llmcourse.models.counting``: parameters, FLOPs and memory by arithmetic;
- ``llmcourse.models.hf``: conversion to and from Hugging Face ``transformers``, and the course's
  two real models (``load_smollm2``, ``load_minilm``).

The model classes are imported on first use (PEP 562), so ``llmcourse.models.counting`` and
``zoo`` import without torch: ``from llmcourse.models import DecoderLM`` works as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmcourse.utils.lazy import lazy_exports

if TYPE_CHECKING:
    from llmcourse.models.base import LanguageModel, ModelOutput
    from llmcourse.models.decoder import DecoderLM
    from llmcourse.models.encoder import EncoderLM
    from llmcourse.models.minigpt import MiniGPT, MiniGPTConfig
    from llmcourse.models.seq2seq import Seq2SeqLM
    from llmcourse.nn.kv_cache import KVCache

_EXPORTS = {
    "DecoderLM": "decoder",
    "EncoderLM": "encoder",
    "KVCache": "llmcourse.nn.kv_cache",
    "LanguageModel": "base",
    "MiniGPT": "minigpt",
    "MiniGPTConfig": "minigpt",
    "ModelOutput": "base",
    "Seq2SeqLM": "seq2seq",
}

__all__ = [
    "DecoderLM",
    "EncoderLM",
    "KVCache",
    "LanguageModel",
    "MiniGPT",
    "MiniGPTConfig",
    "ModelOutput",
    "Seq2SeqLM",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
