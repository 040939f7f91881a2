"""Serving a language model: decoding strategies, KV caches, speculative decoding.

- ``generate`` / ``stream``: greedy, temperature, top-k, top-p, repetition penalty, stop
  tokens, batched prompts with left padding, with or without a KV cache; their settings are a
  ``GenerationConfig``;
- ``prefill`` / ``decode_step`` / ``merge_states`` / ``select_rows`` / ``trim_left``: the
  per-step API a batching server drives (``llmcourse.infer.decoding``);
- ``StaticKVCache``: a preallocated cache; like ``llmcourse.nn.KVCache`` and
  ``SlidingWindowKVCache`` it implements ``llmcourse.nn.Cache``;
- ``beam_search`` with a length penalty; ``speculative_generate`` (Leviathan et al. 2023)
  with a draft model or ``PromptLookup`` (drafts copied from the text so far);
- the sampling filters themselves (``top_k_filter``, ``top_p_filter``, ...);
- ``logprobs``: token log-probabilities of a prompt and of sampled tokens (what ``echo`` and
  ``logprobs`` return); ``constrained`` and ``json_grammar``: constrained decoding, a grammar
  as a character-level state machine and the token mask it gives (JSON mode).
"""

from llmcourse.infer.config import GenerationConfig
from llmcourse.infer.decoding import (
    DecodeState,
    decode_step,
    make_cache,
    merge_states,
    prefill,
    select_rows,
    trim_left,
)
from llmcourse.infer.generate import generate, stream
from llmcourse.infer.prompt_lookup import PromptLookup
from llmcourse.infer.sampling import (
    apply_repetition_penalty,
    next_token,
    process_logits,
    top_k_filter,
    top_p_filter,
)
from llmcourse.infer.static_cache import StaticKVCache

__all__ = [
    "DecodeState",
    "GenerationConfig",
    "PromptLookup",
    "StaticKVCache",
    "apply_repetition_penalty",
    "decode_step",
    "generate",
    "make_cache",
    "merge_states",
    "next_token",
    "prefill",
    "process_logits",
    "select_rows",
    "stream",
    "top_k_filter",
    "top_p_filter",
    "trim_left",
]
