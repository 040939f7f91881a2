"""llmcourse: the package behind an interactive course on large language models.

Arrows point down only (nothing imports upward):

- ``cli``, ``doctor``, ``serve``, ``capstone``: the ``llmcourse`` command (doctor, lab, data,
  grade, progress, bench, serve, capstone), the OpenAI-compatible server with its chat page, and
  the capstone pipeline (tokenizer → pretraining → SFT → GRPO → report card);
- ``grading``: exercise tests, ``check()`` and the grader; ``viz``: plots and explorers;
- ``train``, ``infer``, ``quant``, ``ethics``, ``rag``: training and its objectives,
  generation and KV caches, quantization, bias probes, retrieval-augmented answers;
- ``models``: ``DecoderLM``, ``EncoderLM``, ``Seq2SeqLM``, published configs (``zoo``),
  ``counting`` and ``transformers`` interop (``hf``); ``nn``: their building blocks;
- ``tokenizers``, ``data``, ``scaling``, ``eval``, ``embeddings``, ``ngram``, ``pretrained``:
  each stands on ``config`` and ``utils`` alone;
- ``config`` (``ModelConfig``), ``utils`` (devices, seeds, paths, checkpoints, logs), ``source``
  (``show(obj)``: the package's source in a lesson).

Subpackages are imported on demand (``from llmcourse.models import DecoderLM``), so
``import llmcourse`` stays fast and imports no torch.
"""

from llmcourse.source import show

__version__ = "0.1.0"
__all__ = ["__version__", "show"]
