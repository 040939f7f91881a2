"""Engine glue: from a checked request to a job on the ``BatchingEngine``, and from the job's
events to a reply (one JSON body, or server-sent events).

The routes (``routes.py``) authorize and parse; ``Backend`` applies this server's limits, turns
the request into ``SamplingParams`` (a ``GenerationConfig`` plus stop strings and a seed),
submits it, and shapes what comes back with the reply builders of ``schemas.py``. The engine
runs in its own thread; its events cross into the event loop through
``loop.call_soon_threadsafe``. A client that goes away cancels its job (``guard.on_close``
runs when its response ends, however it ends): the engine drops the row at its next step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmcourse.infer.config import GenerationConfig
from llmcourse.serve.engine import BatchingEngine, GenerationRequest, SamplingParams, StreamEvent
from llmcourse.serve.guard import on_close
from llmcourse.serve.schemas import (
    APIError,
    completion_reply,
    reply_head,
    stream_chunk,
    usage,
    usage_chunk,
)

if TYPE_CHECKING:
    from llmcourse.serve.safety import SafetyGate


@dataclass(frozen=True)
class ServerSettings:
    """Limits and identity of one server (the times are in seconds)."""

    model_name: str = "smollm2-135m-instruct"
    api_key: str | None = None
    max_prompt_tokens: int = 1024
    max_tokens_limit: int = 256  # the cap on max_tokens, and its value when a request omits it
    max_concurrency: int = 64
    max_body_bytes: int = 64 * 1024
    max_json_depth: int = 32  # OpenAI's bodies nest 4 deep; 30,000 levels is an attack
    body_timeout_seconds: float = 10.0  # to receive the whole body (uvicorn has no such limit)
    write_timeout_seconds: float = 30.0  # for one write to a client that stopped reading
    max_generation_seconds: float = 120.0  # in the batch, per request: then finish "length"
    max_logprobs: int = 20  # the cap on logprobs / top_logprobs (alternatives per token)
    max_n: int = 16  # the cap on n (choices per prompt)
    max_choices: int = 64  # the cap on prompts x n in one request


_GREEDY_BELOW = 1e-6  # temperatures this small sample the argmax (differences of 1e-5 logits)

#: The engine's finish reasons as OpenAI's API names them (a time limit truncates, as a length).
FINISH_REASONS = {"time_limit": "length"}


class Backend:
    """The engine, the tokenizer (``codec``) and the limits, as the routes see them."""

    def __init__(
        self,
        engine: BatchingEngine,
        codec: Any,
        settings: ServerSettings,
        safety: SafetyGate | None = None,
    ) -> None:
        self.engine, self.codec, self.settings = engine, codec, settings
        self.safety = safety  # moderates prompts and outputs (``--safety``); None: off
        self.metrics = engine.metrics

    def sampling_params(
        self, body: Any, prompt_ids: list[int], max_tokens: int | None
    ) -> SamplingParams:
        """The request's settings, or an ``APIError`` saying which limit it breaks."""
        settings = self.settings
        if body.model != settings.model_name:
            raise APIError(
                404,
                f"Model {body.model!r} is not served here; use {settings.model_name!r}.",
                code="model_not_found",
                param="model",
            )
        if not prompt_ids:
            raise APIError(
                400, "The prompt is empty: give at least one token of text.", param="prompt"
            )
        if len(prompt_ids) > settings.max_prompt_tokens:
            raise APIError(
                400,
                f"The prompt has {len(prompt_ids)} tokens; this server takes at most "
                f"{settings.max_prompt_tokens}. Shorten it.",
                code="context_length_exceeded",
            )
        if max_tokens is not None and max_tokens > settings.max_tokens_limit:
            raise APIError(
                400,
                f"max_tokens={max_tokens} is over this server's limit of "
                f"{settings.max_tokens_limit}.",
                param="max_tokens",
            )
        max_tokens = settings.max_tokens_limit if max_tokens is None else max_tokens
        context = self.engine.model.config.context_length
        if len(prompt_ids) + max_tokens > context:
            raise APIError(
                400,
                f"The prompt ({len(prompt_ids)} tokens) plus max_tokens={max_tokens} exceeds "
                f"the model's context of {context} tokens.",
                code="context_length_exceeded",
            )
        if self.metrics.in_flight > settings.max_concurrency:
            raise APIError(
                429,
                f"More than {settings.max_concurrency} requests in flight; retry shortly.",
                "rate_limit_error",
            )
        generation = GenerationConfig(
            max_new_tokens=max_tokens,
            # logits / 1e-300 overflow to inf and softmax gives NaN; below _GREEDY_BELOW the
            # distribution is the argmax anyway, so decode greedily.
            temperature=0.0 if body.temperature < _GREEDY_BELOW else body.temperature,
            top_p=None if body.top_p >= 1.0 else body.top_p,
        )
        return SamplingParams(generation, stop=tuple(body.stop or ()), seed=body.seed)

    def submit(
        self, prompt_ids: list[int], params: SamplingParams
    ) -> tuple[GenerationRequest, asyncio.Queue[StreamEvent]]:
        """Queue a job on the engine; its events arrive on the returned queue (call this from
        the event loop)."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[StreamEvent] = asyncio.Queue()
        job = GenerationRequest(
            prompt_ids,
            params,
            lambda e: loop.call_soon_threadsafe(events.put_nowait, e),
            time_limit=self.settings.max_generation_seconds,
        )
        self.engine.submit(job)
        return job, events

    async def respond(
        self,
        request: Request,
        body: Any,
        prompt_ids: list[int],
        params: SamplingParams,
        chat: bool,
    ) -> Response:
        """Run the request on the engine and answer it, streamed when ``body.stream``; with a
        safety filter, a flagged prompt is a 400 and a flagged output is withheld."""
        head = reply_head(self.settings.model_name, chat)
        if self.safety is not None:
            texts = [m.content for m in body.messages] if chat else body.prompts()
            await self.safety.check_prompt(texts, "messages" if chat else "prompt")
            output_filter = self.safety.output_filter(head["id"])
            generation = params.generation.replace(output_filter=output_filter)
            params = dataclasses.replace(params, generation=generation)
        job, events = self.submit(prompt_ids, params)
        on_close(request.scope, job.cancel)  # a no-op once finished; frees the row otherwise
        start = time.perf_counter()  # time to first token counts from here
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            sse = self._events_as_sse(
                job, events, start, head, len(prompt_ids), chat, include_usage
            )
            return StreamingResponse(sse, media_type="text/event-stream")
        pieces: list[str] = []
        while True:
            try:
                event = await asyncio.wait_for(events.get(), timeout=0.5)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    job.cancel()
                    return Response(status_code=499)
                continue
            if not pieces and (event.text or event.finish_reason):
                self.metrics.record_ttft(time.perf_counter() - start)
            pieces.append(event.text)
            if event.finish_reason:
                break
        if event.error:
            raise APIError(500, f"Generation failed: {event.error}", "server_error")
        counts = usage(len(prompt_ids), event.completion_tokens)
        finish_reason = FINISH_REASONS.get(event.finish_reason, event.finish_reason)
        return JSONResponse(completion_reply(head, "".join(pieces), finish_reason, counts, chat))

    async def _events_as_sse(
        self,
        job: GenerationRequest,
        events: asyncio.Queue[StreamEvent],
        start: float,
        head: dict[str, Any],
        prompt_tokens: int,
        chat: bool,
        include_usage: bool,
    ) -> AsyncIterator[str]:
        """One ``data: {json}`` line per piece of text, then ``data: [DONE]``."""
        first = True
        try:
            while True:
                event = await events.get()
                if event.error:
                    error = {"message": event.error, "type": "server_error"}
                    yield f"data: {json.dumps({'error': error})}\n\n"
                    return
                if first and (event.text or event.finish_reason):
                    self.metrics.record_ttft(time.perf_counter() - start)
                finish_reason = FINISH_REASONS.get(event.finish_reason, event.finish_reason)
                chunk = stream_chunk(head, event.text, finish_reason, first, chat)
                first = False
                yield f"data: {json.dumps(chunk)}\n\n"
                if event.finish_reason:
                    if include_usage:
                        counts = usage(prompt_tokens, event.completion_tokens)
                        yield f"data: {json.dumps(usage_chunk(head, counts, chat))}\n\n"
                    yield "data: [DONE]\n\n"
                    return
        finally:
            job.cancel()  # a no-op when finished; drops the row when the client left
