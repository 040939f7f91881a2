"""Prefill and decode steps over a batch: the per-step API that ``generate`` and a server use.

Autoregressive generation has two phases (Pope et al. 2022, "Efficiently Scaling Transformer
Inference"):

1. **prefill**: run the whole prompt ``(batch, prompt_len)`` through the model once, filling
   the KV cache and giving the logits of the first new token;
2. **decode**: feed one token per sequence ``(batch, 1)``; each step reads the cache, appends
   one position to it and gives the next logits.

A ``DecodeState`` carries one batch between steps: its cache, its ``attention_mask`` (1 for
real tokens, 0 for left padding; ``None`` when no row is padded), every token so far, and the
latest next-token logits. A batching scheduler drives it like this::

    state = prefill(model, prompt_ids, attention_mask)      # (batch, vocab) in state.logits
    while running:
        tokens = next_token(state.logits, ...)              # pick one token per row
        state = decode_step(model, state, tokens)
        new = prefill(model, other_prompt)                  # a request arrives: prefill it...
        state = merge_states([state, new])                  # ...and it joins between steps
        state = select_rows(state, unfinished_rows)         # finished requests leave
        state = trim_left(state, unused_columns)            # padding no row needs any more

``merge_states`` left-pads the shorter caches with masked positions, so rows of different
lengths share one batched forward. Rows never see each other: padding keys are masked and
positions count real tokens only. ``use_cache=False`` (``cache=None``) recomputes the whole
sequence at every step: the baseline the cache is measured against. The cache is handled only
through ``llmcourse.nn.Cache``'s methods, so any cache class works here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmcourse.infer.config import CacheKind
from llmcourse.infer.static_cache import StaticKVCache
from llmcourse.models.base import check_input_ids
from llmcourse.nn.kv_cache import Cache, KVCache, SlidingWindowKVCache


@dataclass
class DecodeState:
    """One batch between decode steps (see the module docstring).

    ``tokens``: ``(batch, seq)`` prompt and generated ids (left padding included);
    ``attention_mask``: ``(batch, seq)`` or ``None``; ``logits``: ``(batch, vocab)`` for the
    next token; ``cache``: any ``llmcourse.nn.Cache``, or ``None`` (no caching).
    """

    tokens: torch.Tensor
    attention_mask: torch.Tensor | None
    logits: torch.Tensor
    cache: Cache | None = None

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def width(self) -> int:
        """Columns so far (prompt, left padding and generated tokens)."""
        return int(self.tokens.shape[1])


def make_cache(
    model: torch.nn.Module,
    kind: CacheKind | None,
    batch_size: int = 1,
    max_len: int | None = None,
    *,
    rollback: int = 0,
) -> Cache | None:
    """An empty cache of ``kind`` for ``model`` (``None``: no cache).

    ``"dynamic"`` is a ``KVCache``, or a ``SlidingWindowKVCache`` that keeps only the window
    when the model attends through one (``config.sliding_window``; ``rollback``: positions it
    must be able to ``crop`` back). ``"static"`` preallocates ``max_len`` positions (default:
    the context length) for ``batch_size`` rows.
    """
    if kind is None:
        return None
    if kind == "dynamic":
        window = model.config.sliding_window
        return KVCache() if window is None else SlidingWindowKVCache(window, rollback)
    if kind == "static":
        max_len = model.config.context_length if max_len is None else max_len
        weight = next(model.parameters())
        dtype = weight.dtype if weight.is_floating_point() else torch.float32
        return StaticKVCache(model.config, max_len, batch_size, dtype=dtype, device=weight.device)
    raise ValueError(f"cache must be 'dynamic', 'static' or None, got {kind!r}.")


def check_prompt(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    attention_mask: torch.Tensor | None = None,
) -> None:
    """Raise a clear error for ids, masks and lengths ``generate`` cannot serve."""
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise TypeError(
            "model must be an llmcourse language model (e.g. DecoderLM, load_smollm2()), got "
            f"{type(model).__name__}."
        )
    check_input_ids(input_ids, model.config.vocab_size)
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids is empty: give at least one prompt token (e.g. a BOS id).")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise TypeError(f"max_new_tokens must be an int, got {type(max_new_tokens).__name__}.")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}.")
    context = model.config.context_length
    if input_ids.shape[1] + max_new_tokens > context:
        raise ValueError(
            f"The prompt ({input_ids.shape[1]} tokens) plus max_new_tokens={max_new_tokens} "
            f"exceeds the model's context of {context} tokens; ask for at most "
            f"{max(context - input_ids.shape[1], 0)} new tokens or shorten the prompt."
        )
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask must have input_ids' shape {tuple(input_ids.shape)}, got "
            f"{tuple(attention_mask.shape)}."
        )
    if attention_mask is not None and bool((attention_mask[:, -1] == 0).any()):
        raise ValueError(
            "The last prompt position is padding in some row: pad on the left for generation "
            "(tokenizer.padding_side = 'left'), so every row ends with a real token."
        )


def _forward(model, tokens, attention_mask, cache) -> torch.Tensor:
    """Next-token logits ``(batch, vocab)`` after feeding ``tokens``."""
    return model(tokens, attention_mask=attention_mask, kv_cache=cache).logits[:, -1]


def prefill(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    cache: CacheKind | None = "dynamic",
    max_len: int | None = None,
) -> DecodeState:
    """Run the prompt ``(batch, seq)`` once; ``max_len`` sizes a static cache (default: the
    model's context length)."""
    if attention_mask is not None and bool(attention_mask.all()):
        attention_mask = None  # nothing is padded: let the model take its fast causal path
    kv = make_cache(model, cache, input_ids.shape[0], max_len)
    logits = _forward(model, input_ids, attention_mask, kv)
    return DecodeState(input_ids, attention_mask, logits, kv)


def decode_step(
    model: torch.nn.Module, state: DecodeState, next_tokens: torch.Tensor
) -> DecodeState:
    """Append ``next_tokens`` ``(batch,)`` and compute the following logits (updates ``state``)."""
    column = next_tokens.reshape(-1, 1).to(state.tokens.dtype)
    state.tokens = torch.cat((state.tokens, column), dim=1)
    if state.attention_mask is not None:
        ones = state.attention_mask.new_ones(state.batch_size, 1)
        state.attention_mask = torch.cat((state.attention_mask, ones), dim=1)
    fed = state.tokens if state.cache is None else column
    state.logits = _forward(model, fed, state.attention_mask, state.cache)
    return state


def merge_states(states: list[DecodeState], pad_token_id: int = 0) -> DecodeState:
    """One batch from several cached states: shorter rows are left-padded.

    Padded cache positions hold zeros and are masked out, so each row's next logits are the
    ones it would get alone (up to float rounding of a differently shaped matmul). The states
    are consumed: their caches are padded in place and joined with ``Cache.cat``.
    """
    if not states:
        raise ValueError("merge_states needs at least one state.")
    if len(states) == 1:
        return states[0]
    if any(s.cache is None for s in states):
        raise ValueError("merge_states joins cached states; prefill them with a cache.")
    width = max(s.width for s in states)
    tokens, masks = [], []
    for s in states:
        pad = width - s.width
        tokens.append(F.pad(s.tokens, (pad, 0), value=pad_token_id))
        mask = s.attention_mask if s.attention_mask is not None else torch.ones_like(s.tokens)
        masks.append(F.pad(mask, (pad, 0), value=0))
        s.cache.pad_left(pad)
    padded = any(s.attention_mask is not None or s.width < width for s in states)
    return DecodeState(
        tokens=torch.cat(tokens),
        attention_mask=torch.cat(masks) if padded else None,
        logits=torch.cat([s.logits for s in states]),
        cache=type(states[0].cache).cat([s.cache for s in states]),
    )


def select_rows(state: DecodeState, rows: torch.Tensor | list[int]) -> DecodeState:
    """Keep only ``rows`` of the batch (finished requests leave between steps)."""
    index = torch.as_tensor(rows, dtype=torch.long, device=state.tokens.device)
    if state.cache is not None:
        state.cache.select_rows(index)
    mask = None if state.attention_mask is None else state.attention_mask[index]
    return DecodeState(state.tokens[index], mask, state.logits[index], state.cache)


def trim_left(state: DecodeState, columns: int) -> DecodeState:
    """Drop the first ``columns`` columns of every row (updates ``state``).

    After rows leave, left padding that every remaining row has only costs time and memory;
    the caller knows how much (it knows each row's length) and cuts it here.
    """
    if columns:
        state.tokens = state.tokens[:, columns:]
        if state.attention_mask is not None:
            state.attention_mask = state.attention_mask[:, columns:]
        if state.cache is not None:
            state.cache.trim_left(columns)
    return state
