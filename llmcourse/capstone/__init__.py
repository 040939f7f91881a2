"""The capstone: your own chat model end to end on a laptop.

``llmcourse capstone --size tiny|small|base`` trains a byte-level BPE tokenizer with chat
special tokens, pretrains a small ``DecoderLM`` on the training plays, fine-tunes it on chat
dialogues (Shakespeare instructions and arithmetic), runs GRPO on held-out-checked arithmetic
beside an equal-compute SFT baseline, evaluates every stage and writes a report card.

- ``config``: ``CapstoneConfig`` (the presets, every choice) and the stages' cache keys;
- ``chat``: the tokenizer, chat template, stop tokens, SFT mix and GRPO reward; ``ChatCodec``
  and ``load_chat_model`` for ``llmcourse serve --model FOLDER``;
- ``evaluate``: perplexity, arithmetic, multiple choice and sample replies after each stage;
- ``pipeline``: ``run_capstone``, the cached, resumable stages;
- ``report``: ``build_report``, ``report.md`` + ``report.json`` + plots;
- ``cli``: ``llmcourse capstone``.
"""

from llmcourse.capstone.config import CapstoneConfig

__all__ = ["CapstoneConfig"]
