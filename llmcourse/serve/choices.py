"""Requests with several choices, scores or a grammar: what evaluation tools and RL rollouts send.

lm-evaluation-harness ranks multiple-choice answers by sending a batch of token-id prompts with
``echo=True``, ``logprobs=1`` and ``max_tokens`` 0 or 1, and reads back each prompt token's
log-probability; an RL rollout asks for ``n`` samples of one prompt and their log-probabilities;
a tool that wants structured output asks for ``response_format`` JSON. This module serves those:

- every (prompt, choice) pair becomes one job on the ``BatchingEngine``, so a batch of prompts
  is prefilled and decoded together; choice ``i`` of ``n`` samples with its own seed
  (``choice_seed``), so a request with a ``seed`` is reproducible and its choices differ;
- ``echo`` puts the prompt in front of the text and, with ``logprobs``, its tokens' scores
  (the first token's is ``null``: nothing comes before it);
- replies follow OpenAI's shapes: completions' ``logprobs`` is ``{tokens, token_logprobs,
  top_logprobs, text_offset}``, chat's is ``{content: [{token, logprob, bytes, top_logprobs}]}``.

Scores are the model's own log-probabilities (before temperature, top-p or a grammar). Streaming
is not offered with these fields (a 400 says so).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from llmcourse.infer.constrained import JSONGrammar
from llmcourse.infer.logprobs import TokenLogprob
from llmcourse.serve.engine import GenerationRequest, SamplingParams, StreamEvent
from llmcourse.serve.glue import FINISH_REASONS, Backend
from llmcourse.serve.schemas import APIError, reply_head, usage

_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: spreads consecutive choices' seeds apart


def choice_seed(seed: int | None, index: int) -> int | None:
    """The seed of choice ``index``: ``seed`` itself for the first (so ``n=1`` is unchanged),
    a well-separated one for the others; ``None`` stays ``None`` (unseeded)."""
    if seed is None or index == 0:
        return seed
    return (seed + index * _GOLDEN) % 2**64


def needs_choices(body: Any, chat: bool) -> bool:
    """True when ``body`` asks for more than one plain text choice (this module serves it)."""
    if chat:
        json_mode = body.response_format is not None and body.response_format.type != "text"
        special = body.n > 1 or body.logprobs or json_mode
    else:
        special = (
            body.n > 1 or body.echo or body.logprobs is not None or len(body.prompts()) > 1
            or not isinstance(body.prompts()[0], str)
        )  # fmt: skip
    if special and body.stream:
        raise APIError(
            400,
            "stream=true is not offered with n > 1, several prompts, echo, logprobs or "
            "response_format; set stream to false.",
            param="stream",
        )
    return bool(special)


def _check_limits(backend: Backend, body: Any, n_prompts: int, k: int | None) -> None:
    settings = backend.settings
    if body.n > settings.max_n:
        raise APIError(
            400, f"n={body.n} is over this server's limit of {settings.max_n}.", param="n"
        )
    if n_prompts * body.n > settings.max_choices:
        raise APIError(
            400,
            f"{n_prompts} prompts x n={body.n} is {n_prompts * body.n} choices; this server "
            f"takes at most {settings.max_choices} per request. Send fewer at a time.",
            param="prompt",
        )
    if k is not None and k > settings.max_logprobs:
        raise APIError(
            400,
            f"logprobs={k} alternatives is over this server's limit of {settings.max_logprobs}.",
            param="top_logprobs" if hasattr(body, "top_logprobs") else "logprobs",
        )


def _prompt_ids(backend: Backend, prompt: str | list[int]) -> list[int]:
    if isinstance(prompt, str):
        return backend.codec.encode(prompt)
    vocab = backend.engine.model.config.vocab_size
    bad = [t for t in prompt if not 0 <= t < vocab]
    if bad:
        raise APIError(
            400, f"Token id {bad[0]} is outside the vocabulary [0, {vocab}).", param="prompt"
        )
    return list(prompt)


def _grammar(backend: Backend, body: Any, max_tokens: int) -> JSONGrammar | None:
    form = body.response_format
    if form is None or form.type == "text":
        return None
    try:
        grammar = (
            JSONGrammar()
            if form.type == "json_object"
            else JSONGrammar.from_schema(form.json_schema.schema_)
        )
    except ValueError as error:
        raise APIError(400, f"response_format: {error}", param="response_format") from None
    if max_tokens < grammar.min_tokens:
        raise APIError(
            400,
            f"The shortest JSON this schema allows takes {grammar.min_tokens} tokens; "
            f"max_tokens={max_tokens} is too small.",
            param="max_tokens",
        )
    return grammar


async def complete(
    request: Request, backend: Backend, body: Any, chat: bool, chat_prompt: str | None = None
) -> Response:
    """Serve a completion or chat request with several choices, scores or a grammar."""
    prompts: Sequence[str | list[int]] = [chat_prompt] if chat else body.prompts()
    k_sampled = (body.top_logprobs or 0) if chat and body.logprobs else None
    if not chat:
        k_sampled = body.logprobs
    _check_limits(backend, body, len(prompts), k_sampled)
    max_tokens = (body.max_completion_tokens or body.max_tokens) if chat else body.max_tokens
    echo = not chat and body.echo
    jobs: list[tuple[int, GenerationRequest, asyncio.Queue[StreamEvent]]] = []
    encoded = [_prompt_ids(backend, p) for p in prompts]
    head = reply_head(backend.settings.model_name, chat)
    output_filter = None
    if backend.safety is not None:  # the same gate as a plain request's (glue.respond)
        if chat:
            texts = [m.content for m in body.messages]
        else:
            texts = [p if isinstance(p, str) else backend.codec.decode(p) for p in prompts]
        await backend.safety.check_prompt(texts, "messages" if chat else "prompt")
        output_filter = backend.safety.output_filter(head["id"])
    params_per_prompt: list[SamplingParams] = []
    for ids in encoded:
        params = backend.sampling_params(body, ids, max_tokens)
        if output_filter is not None:
            generation = params.generation.replace(output_filter=output_filter)
            params = dataclasses.replace(params, generation=generation)
        grammar = _grammar(backend, body, params.max_tokens) if chat else None
        params_per_prompt.append(
            dataclasses.replace(
                params,
                logprobs=k_sampled,
                prompt_logprobs=k_sampled if echo and k_sampled is not None else None,
                grammar=grammar,
            )
        )
    for p, (ids, params) in enumerate(zip(encoded, params_per_prompt, strict=True)):
        for i in range(body.n):
            seeded = dataclasses.replace(params, seed=choice_seed(params.seed, i))
            job, events = backend.submit(ids, seeded)
            jobs.append((p, job, events))
    try:
        results = await asyncio.gather(*(_collect(request, job, events) for _, job, events in jobs))
    finally:
        for _, job, _ in jobs:
            job.cancel()  # a no-op for finished jobs; drops the rest when the client left
    if any(r is None for r in results):
        return Response(status_code=499)
    choices = []
    for index, ((p, job, _), (text, finish)) in enumerate(zip(jobs, results, strict=True)):
        if finish.error:
            raise APIError(500, f"Generation failed: {finish.error}", "server_error")
        if chat:
            choices.append(_chat_choice(backend, index, job, text, finish, k_sampled))
        else:
            prefix = prompts[p] if isinstance(prompts[p], str) else backend.codec.decode(encoded[p])
            choices.append(
                _completion_choice(backend, index, job, text, finish, echo, prefix, k_sampled)
            )
    completion_tokens = sum(r[1].completion_tokens for r in results)
    counts = usage(sum(len(ids) for ids in encoded), completion_tokens)
    kind = "chat.completion" if chat else "text_completion"
    return JSONResponse({**head, "object": kind, "choices": choices, "usage": counts})


async def _collect(
    request: Request, job: GenerationRequest, events: asyncio.Queue[StreamEvent]
) -> tuple[str, StreamEvent] | None:
    """The job's whole text and its last event; ``None`` when the client went away."""
    pieces: list[str] = []
    while True:
        try:
            event = await asyncio.wait_for(events.get(), timeout=0.5)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                return None
            continue
        pieces.append(event.text)
        if event.finish_reason:
            return "".join(pieces), event


def _kept_scores(backend: Backend, job: GenerationRequest, text: str) -> list[TokenLogprob]:
    """The sampled tokens' scores (a stop token's included, as one that writes no text), cut
    where a stop string cut the text."""
    if len(text) >= len(backend.codec.decode(job.generated)):
        return list(job.token_scores)
    kept, length = [], 0
    for score in job.token_scores:
        if length >= len(text):
            break
        kept.append(score)
        length += len(backend.codec.decode([score.token]))
    return kept


def _completion_choice(
    backend: Backend,
    index: int,
    job: GenerationRequest,
    text: str,
    finish: StreamEvent,
    echo: bool,
    prompt_text: str,
    k: int | None,
) -> dict[str, Any]:
    logprobs = None
    if k is not None:
        scores = (job.prompt_scores or []) if echo else []
        scores = scores + _kept_scores(backend, job, text)
        decode = backend.codec.decode
        tokens = [decode([s.token]) for s in scores]
        offsets, at = [], 0
        for token in tokens:
            offsets.append(at)
            at += len(token)
        tops: list[dict[str, float] | None] = []
        for s in scores:
            if s.logprob is None:
                tops.append(None)
                continue
            top: dict[str, float] = {}
            for token_id, value in s.top:
                top.setdefault(decode([token_id]), value)
            tops.append(top)
        logprobs = {
            "tokens": tokens,
            "token_logprobs": [s.logprob for s in scores],
            "top_logprobs": tops,
            "text_offset": offsets,
        }
    return {
        "index": index,
        "text": (prompt_text if echo else "") + text,
        "logprobs": logprobs,
        "finish_reason": FINISH_REASONS.get(finish.finish_reason, finish.finish_reason),
    }


def _chat_choice(
    backend: Backend,
    index: int,
    job: GenerationRequest,
    text: str,
    finish: StreamEvent,
    k: int | None,
) -> dict[str, Any]:
    logprobs = None
    if k is not None:
        decode = backend.codec.decode

        def entry(token_id: int, value: float) -> dict[str, Any]:
            token = decode([token_id])
            return {"token": token, "logprob": value, "bytes": list(token.encode())}

        logprobs = {
            "content": [
                {**entry(s.token, s.logprob), "top_logprobs": [entry(t, v) for t, v in s.top]}
                for s in _kept_scores(backend, job, text)
            ]
        }
    return {
        "index": index,
        "message": {"role": "assistant", "content": text},
        "logprobs": logprobs,
        "finish_reason": FINISH_REASONS.get(finish.finish_reason, finish.finish_reason),
    }
