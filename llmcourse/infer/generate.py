"""``generate``: autoregressive decoding with sampling, stop tokens, batching and a KV cache.

    x_{t+1} ~ softmax(process(logits(x_1..x_t)))     (greedy: x_{t+1} = argmax logits)

``stream`` yields one token per row at every step (show text as it appears); ``generate``
collects them into ``(batch, prompt + new)``. Both run ``prefill`` once and then
``decode_step`` per token (``llmcourse.infer.decoding``), under ``torch.inference_mode()`` so
no autograd bookkeeping slows the loop. Their settings are one ``GenerationConfig``, given as
``config=`` or built from the keyword arguments.

Batches of different-length prompts are **left-padded** (``attention_mask`` 0 on the left):
every row's last prompt token then sits in the same column, and each step appends one column.
A row that emits a stop token is finished: it gets ``pad_token_id`` from then on, and decoding
ends when every row has finished or ``max_new_tokens`` have been produced.

Nothing in the loop reads a tensor back to the host, because on an accelerator that waits for
all queued work and leaves the device idle while Python prepares the next step. The prompt is
checked once; "has every row finished?" is read every step on the CPU (no device to wait for)
but only every ``STOP_CHECK_EVERY`` steps elsewhere, and the extra columns are cut afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from llmcourse.infer.config import CacheKind, GenerationConfig
from llmcourse.infer.decoding import check_prompt, decode_step, prefill
from llmcourse.infer.sampling import next_token

STOP_CHECK_EVERY = 8  # decode steps between reads of the finished flags on an accelerator

_KEYWORD_DEFAULTS = {
    "temperature": 1.0,
    "top_k": None,
    "top_p": None,
    "use_cache": True,
    "repetition_penalty": 1.0,
    "stop_tokens": None,
    "pad_token_id": None,
    "cache": "dynamic",
}


def stream(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int | None = None,
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
    config: GenerationConfig | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, ``(batch,)``, one step at a time.

    Arguments are those of ``generate`` (checked now, before the first token is asked for).
    Finished rows yield ``pad_token_id``; the stream ends once every row has finished (checked
    at every step: a stream's reader looks at every token anyway).
    """
    config = _resolve_config(config, max_new_tokens, locals())
    check_prompt(model, input_ids, config.max_new_tokens, attention_mask)
    return _steps(model, input_ids, attention_mask, config, generator, check_every=1)


def generate(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int | None = None,
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
    config: GenerationConfig | None = None,
) -> torch.Tensor:
    """Continue ``input_ids`` ``(batch, seq)`` by up to ``max_new_tokens`` tokens.

    Returns ``(batch, seq + n)`` with ``n <= max_new_tokens`` (fewer when every row stopped).

    - ``temperature=0``: greedy; otherwise sample from ``softmax(logits / temperature)``
      restricted by ``top_k`` and ``top_p``; ``repetition_penalty > 1`` discourages repeats.
    - ``use_cache``: keep keys/values (``cache="dynamic"`` grows, or keeps only the window of
      a sliding-window model; ``"static"`` is preallocated); ``False`` recomputes the whole
      sequence each step (same tokens, slower).
    - ``stop_tokens``: ids that end a row (included in the output; e.g. the EOS id).
    - ``attention_mask``: ``(batch, seq)``, 0 for left padding; ``pad_token_id`` fills
      finished rows (default: the first stop token, else 0).
    - ``generator``: a seeded ``torch.Generator`` for reproducible sampling.
    - ``config``: a ``GenerationConfig`` holding all the settings above, instead of the
      keywords (giving both is an error).
    """
    config = _resolve_config(config, max_new_tokens, locals())
    check_prompt(model, input_ids, config.max_new_tokens, attention_mask)
    every = _stop_check_every(input_ids.device)
    tokens = list(_steps(model, input_ids, attention_mask, config, generator, check_every=every))
    if not tokens:
        return input_ids.clone()
    new = torch.stack(tokens, dim=1).to(input_ids.dtype)
    if config.stop_tokens:
        new = new[:, : _steps_until_all_stopped(new, config.stop_tokens)]
    return torch.cat((input_ids, new), dim=1)


def _resolve_config(
    config: GenerationConfig | None, max_new_tokens: int | None, arguments: dict
) -> GenerationConfig:
    """The ``GenerationConfig`` of a ``generate``/``stream`` call: ``config`` itself, or one
    built from the keyword ``arguments`` (the caller's ``locals()``); a mix raises ``TypeError``."""
    keywords = {name: arguments[name] for name in _KEYWORD_DEFAULTS}
    if config is None:
        if max_new_tokens is None:
            raise TypeError(
                "Give max_new_tokens (e.g. generate(model, ids, 20)) or a "
                "config=GenerationConfig(max_new_tokens=...)."
            )
        return GenerationConfig(max_new_tokens=max_new_tokens, **keywords)
    if not isinstance(config, GenerationConfig):
        raise TypeError(
            f"config must be an llmcourse.infer.GenerationConfig, got {type(config).__name__}."
        )
    given = [name for name, value in keywords.items() if value != _KEYWORD_DEFAULTS[name]]
    if max_new_tokens is not None:
        given.insert(0, "max_new_tokens")
    if given:
        raise TypeError(
            f"Settings given both in config and as arguments ({', '.join(given)}): put them in "
            f"the config, e.g. config=config.replace({given[0]}=...)."
        )
    return config


def _stop_check_every(device: torch.device) -> int:
    """Steps between reads of the finished flags: reading a CPU tensor costs nothing, and
    stopping at once saves up to ``STOP_CHECK_EVERY - 1`` wasted steps there."""
    return 1 if device.type == "cpu" else STOP_CHECK_EVERY


def _steps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    config: GenerationConfig,
    generator: torch.Generator | None,
    check_every: int,
) -> Iterator[torch.Tensor]:
    """The decoding loop: one ``(batch,)`` token per step; reads the finished flags back to
    the host only every ``check_every`` steps."""
    with torch.inference_mode():
        if config.max_new_tokens == 0:
            return
        state = prefill(
            model,
            input_ids,
            attention_mask,
            cache=config.cache if config.use_cache else None,
            max_len=input_ids.shape[1] + config.max_new_tokens,
        )
        stops = torch.tensor(config.stop_tokens, dtype=torch.long, device=input_ids.device)
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        rows: list[list[int]] = [[] for _ in range(input_ids.shape[0])]  # for output_filter
        for step in range(config.max_new_tokens):
            previous = state.tokens if config.repetition_penalty != 1.0 else None
            token = next_token(
                state.logits,
                previous,
                temperature=config.temperature,
                top_k=config.top_k,
                top_p=config.top_p,
                repetition_penalty=config.repetition_penalty,
                generator=generator,
            )
            if config.stop_tokens or config.output_filter:
                token = token.masked_fill(finished, config.pad_id)
                if config.output_filter is not None:
                    token, finished = _filter_rows(config, rows, token, finished)
                finished |= torch.isin(token, stops)
            yield token
            stopping = config.stop_tokens or config.output_filter
            if stopping and (step + 1) % check_every == 0 and bool(finished.all()):
                return
            if step + 1 < config.max_new_tokens:  # the last token needs no forward after it
                state = decode_step(model, state, token)


def _filter_rows(
    config: GenerationConfig, rows: list[list[int]], token: torch.Tensor, finished: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``config.output_filter`` to the tokens so far of each row not finished before this
    step: a flagged row gets the pad id instead of its new token, and is finished."""
    assert config.output_filter is not None
    flagged = []
    for row, (ids, new, done) in enumerate(
        zip(rows, token.tolist(), finished.tolist(), strict=True)
    ):
        if done:
            continue
        ids.append(new)
        if config.output_filter(ids):
            flagged.append(row)
    if not flagged:
        return token, finished
    rows_flagged = torch.tensor(flagged, device=token.device)
    token = token.index_fill(0, rows_flagged, config.pad_id)
    return token, finished.index_fill(0, rows_flagged, True)


def _steps_until_all_stopped(new: torch.Tensor, stop_tokens: Sequence[int]) -> int:
    """How many columns of ``new`` ``(batch, n)`` to keep: up to the step at which the last row
    emitted a stop token, else all ``n`` (one read back to the host, once per call)."""
    stops = torch.tensor(stop_tokens, dtype=new.dtype, device=new.device)
    stopped = torch.isin(new, stops).int().cummax(dim=1).values.bool()  # row stopped by step t
    every_row = stopped.all(dim=0)  # (n,)
    first = every_row.int().argmax()
    return int(torch.where(every_row.any(), first + 1, new.shape[1]))
