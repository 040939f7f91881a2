"""``generate``: autoregressive decoding with sampling, stop tokens, batching and a KV cache.

    x_{t+1} ~ softmax(process(logits(x_1..x_t)))     (greedy: x_{t+1} = argmax logits)

``stream`` yields one token per row at every step (show text as it appears); ``generate``
collects them into ``(batch, prompt + new)``. Both run ``prefill`` once and then
``decode_step`` per token (``llmcourse.infer.decoding``), under ``torch.inference_mode()`` so
no autograd bookkeeping slows the loop.

Batches of different-length prompts are **left-padded** (``attention_mask`` 0 on the left):
every row's last prompt token then sits in the same column, and each step appends one column.
A row that emits a stop token is finished: it gets ``pad_token_id`` from then on, and decoding
ends when every row has finished or ``max_new_tokens`` have been produced.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from llmcourse.infer.decoding import CacheKind, check_prompt, decode_step, prefill
from llmcourse.infer.sampling import check_sampling_args, next_token


def _stop_ids(stop_tokens: int | Sequence[int] | None, device: torch.device) -> torch.Tensor:
    if stop_tokens is None:
        return torch.empty(0, dtype=torch.long, device=device)
    ids = [stop_tokens] if isinstance(stop_tokens, int) else list(stop_tokens)
    if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise TypeError(f"stop_tokens must be token ids (ints), got {stop_tokens!r}.")
    return torch.tensor(ids, dtype=torch.long, device=device)


def stream(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    *,
    repetition_penalty: float = 1.0,
    stop_tokens: int | Sequence[int] | None = None,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    cache: CacheKind = "dynamic",
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, ``(batch,)``, one step at a time.

    Arguments are those of ``generate`` (checked now, before the first token is asked for).
    Finished rows yield ``pad_token_id``.
    """
    check_prompt(model, input_ids, max_new_tokens, attention_mask)
    check_sampling_args(temperature, top_k, top_p, repetition_penalty)
    stops = _stop_ids(stop_tokens, input_ids.device)
    if pad_token_id is None:
        pad_token_id = int(stops[0]) if len(stops) else 0
    sampling = {
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "repetition_penalty": repetition_penalty,
        "generator": generator,
    }
    prompt = (input_ids, attention_mask, cache if use_cache else None)
    return _decode(model, prompt, max_new_tokens, stops, pad_token_id, sampling)


def _decode(model, prompt, max_new_tokens, stops, pad_token_id, sampling) -> Iterator[torch.Tensor]:
    input_ids, attention_mask, cache = prompt
    with torch.inference_mode():
        if max_new_tokens == 0:
            return
        max_len = input_ids.shape[1] + max_new_tokens
        state = prefill(
            model,
            input_ids,
            attention_mask,
            cache=cache,
            max_len=max_len,
        )
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for step in range(max_new_tokens):
            previous = state.tokens if sampling["repetition_penalty"] != 1.0 else None
            token = next_token(state.logits, previous, **sampling)
            token = token.masked_fill(finished, pad_token_id)
            yield token
            if len(stops):
                finished |= torch.isin(token, stops)
                if bool(finished.all()):
                    return
            if step + 1 < max_new_tokens:  # the last token needs no forward pass after it
                state = decode_step(model, state, token)


def generate(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    *,
    repetition_penalty: float = 1.0,
    stop_tokens: int | Sequence[int] | None = None,
    attention_mask: torch.Tensor | None = None,
    pad_token_id: int | None = None,
    cache: CacheKind = "dynamic",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Continue ``input_ids`` ``(batch, seq)`` by up to ``max_new_tokens`` tokens.

    Returns ``(batch, seq + n)`` with ``n <= max_new_tokens`` (fewer when every row stopped).

    - ``temperature=0``: greedy; otherwise sample from ``softmax(logits / temperature)``
      restricted by ``top_k`` and ``top_p``; ``repetition_penalty > 1`` discourages repeats.
    - ``use_cache``: keep keys/values (``cache="dynamic"`` grows, ``"static"`` is
      preallocated); ``False`` recomputes the whole sequence each step (same tokens, slower).
    - ``stop_tokens``: ids that end a row (included in the output; e.g. the EOS id).
    - ``attention_mask``: ``(batch, seq)``, 0 for left padding; ``pad_token_id`` fills
      finished rows (default: the first stop token, else 0).
    - ``generator``: a seeded ``torch.Generator`` for reproducible sampling.
    """
    tokens = list(
        stream(
            model,
            input_ids,
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            use_cache,
            repetition_penalty=repetition_penalty,
            stop_tokens=stop_tokens,
            attention_mask=attention_mask,
            pad_token_id=pad_token_id,
            cache=cache,
            generator=generator,
        )
    )
    if not tokens:
        return input_ids.clone()
    return torch.cat((input_ids, torch.stack(tokens, dim=1).to(input_ids.dtype)), dim=1)
