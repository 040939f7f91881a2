"""The HTTP layer of ``llmcourse serve``: OpenAI-compatible routes over a ``BatchingEngine``.

Routes: ``POST /v1/completions``, ``POST /v1/chat/completions`` (both with ``"stream": true``
for server-sent events, one ``data: {json}`` line per new piece of text and ``data: [DONE]`` at
the end), ``GET /v1/models``, ``GET /health``, ``GET /metrics``.

Every failure is an HTTP error in OpenAI's shape, ``{"error": {"message", "type", "param",
"code"}}``, and none stops the server:

| problem | status |
|---|---|
| missing or wrong API key (when one is set) | 401 |
| unknown model name | 404 |
| body over ``max_body_bytes`` | 413 |
| malformed JSON, unknown or invalid fields, prompt or ``max_tokens`` over the limits | 400 |
| more than ``max_concurrency`` requests in flight | 429 |
| the engine failed while generating | 500 |

A client that disconnects (closes a stream, or gives up on a slow reply) cancels its request:
the engine drops the row at its next step.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmcourse.serve.engine import BatchingEngine, GenerationRequest, SamplingParams, StreamEvent
from llmcourse.serve.schemas import ChatCompletionRequest, CompletionRequest


@dataclass(frozen=True)
class ServerSettings:
    """Limits and identity of one server."""

    model_name: str = "smollm2-135m-instruct"
    api_key: str | None = None
    max_prompt_tokens: int = 1024
    max_tokens_limit: int = 256  # the cap on max_tokens, and its value when a request omits it
    max_concurrency: int = 64
    max_body_bytes: int = 64 * 1024


class APIError(Exception):
    """An error reply: ``status``, a message that says what to change, and OpenAI's fields."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type_,
            code,
            param,
        )

    def response(self) -> JSONResponse:
        body = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status)


def create_app(
    engine: BatchingEngine, codec: Any, settings: ServerSettings | None = None
) -> FastAPI:
    """A FastAPI app serving ``engine``; the engine starts and stops with the app."""
    settings = settings or ServerSettings()
    metrics = engine.metrics

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.stop)

    app = FastAPI(title="llmcourse serve", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(APIError)
    async def _api_error(_: Request, error: APIError) -> JSONResponse:
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return APIError(error.status_code, str(error.detail), "invalid_request_error").response()

    @app.exception_handler(Exception)
    async def _server_error(_: Request, error: Exception) -> JSONResponse:
        message = f"Internal error: {type(error).__name__}: {error}"
        return APIError(500, message, "server_error").response()

    app.add_middleware(RequestMetrics, metrics=metrics)

    def authorize(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("authorization", "")
        expected = f"Bearer {settings.api_key}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise APIError(
                401,
                "Missing or wrong API key: send the header 'Authorization: Bearer <key>'.",
                "authentication_error",
                "invalid_api_key",
            )

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise _too_large(settings.max_body_bytes)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_body_bytes:
                raise _too_large(settings.max_body_bytes)
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise APIError(
                400, f"The body is not valid JSON: {error}.", code="invalid_json"
            ) from None

    def parse(model: Any, data: Any) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = (
                f"Invalid request: {where}: {first['msg']}"
                if where
                else f"Invalid request: {first['msg']}"
            )
            if first["type"] == "extra_forbidden":
                message = f"Unknown field {where!r}: this server does not accept it."
            raise APIError(400, message, param=where or None) from None

    def sampling(body: Any, prompt_ids: list[int], max_tokens: int | None) -> SamplingParams:
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
        max_tokens = max_tokens or settings.max_tokens_limit
        context = engine.model.config.context_length
        if len(prompt_ids) + max_tokens > context:
            raise APIError(
                400,
                f"The prompt ({len(prompt_ids)} tokens) plus max_tokens={max_tokens} exceeds "
                f"the model's context of {context} tokens.",
                code="context_length_exceeded",
            )
        if metrics.in_flight > settings.max_concurrency:
            raise APIError(
                429,
                f"More than {settings.max_concurrency} requests in flight; retry shortly.",
                "rate_limit_error",
            )
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=body.temperature,
            top_p=None if body.top_p >= 1.0 else body.top_p,
            stop=tuple(body.stop or ()),
            seed=body.seed,
        )

    async def generate(
        request: Request, prompt_ids: list[int], params: SamplingParams
    ) -> tuple[GenerationRequest, asyncio.Queue[StreamEvent]]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[StreamEvent] = asyncio.Queue()
        job = GenerationRequest(
            prompt_ids, params, lambda e: loop.call_soon_threadsafe(events.put_nowait, e)
        )
        engine.submit(job)
        return job, events

    async def respond(
        request: Request, body: Any, prompt_ids: list[int], params: Any, chat: bool
    ) -> Response:
        job, events = await generate(request, prompt_ids, params)
        start = time.perf_counter()
        reply_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        head = {"id": reply_id, "created": created, "model": settings.model_name}

        def usage(completion_tokens: int) -> dict[str, int]:
            return {
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": completion_tokens,
                "total_tokens": len(prompt_ids) + completion_tokens,
            }

        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage

            async def sse() -> AsyncIterator[str]:
                first = True
                try:
                    while True:
                        event = await events.get()
                        if event.error:
                            error = {"message": event.error, "type": "server_error"}
                            yield f"data: {json.dumps({'error': error})}\n\n"
                            return
                        if first and (event.text or event.finish_reason):
                            metrics.record_ttft(time.perf_counter() - start)
                        if chat:
                            delta = {"content": event.text} if event.text else {}
                            if first:
                                delta = {"role": "assistant", **delta}
                            choice = {
                                "index": 0,
                                "delta": delta,
                                "finish_reason": event.finish_reason,
                            }
                            chunk = {**head, "object": "chat.completion.chunk", "choices": [choice]}
                        else:
                            choice = {
                                "index": 0,
                                "text": event.text,
                                "logprobs": None,
                                "finish_reason": event.finish_reason,
                            }
                            chunk = {**head, "object": "text_completion", "choices": [choice]}
                        first = False
                        yield f"data: {json.dumps(chunk)}\n\n"
                        if event.finish_reason:
                            if include_usage:
                                final = {
                                    **head,
                                    "object": chunk["object"],
                                    "choices": [],
                                    "usage": usage(event.completion_tokens),
                                }
                                yield f"data: {json.dumps(final)}\n\n"
                            yield "data: [DONE]\n\n"
                            return
                finally:
                    job.cancel()  # a no-op when finished; drops the row when the client left

            return StreamingResponse(sse(), media_type="text/event-stream")

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
                metrics.record_ttft(time.perf_counter() - start)
            pieces.append(event.text)
            if event.finish_reason:
                break
        if event.error:
            raise APIError(500, f"Generation failed: {event.error}", "server_error")
        text = "".join(pieces)
        reason = event.finish_reason
        if chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": reason,
            }
            reply = {**head, "object": "chat.completion", "choices": [choice]}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            reply = {**head, "object": "text_completion", "choices": [choice]}
        reply["usage"] = usage(event.completion_tokens)
        return JSONResponse(reply)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        authorize(request)
        body = parse(CompletionRequest, await read_json(request))
        prompt_ids = codec.encode(body.prompt)
        return await respond(
            request, body, prompt_ids, sampling(body, prompt_ids, body.max_tokens), chat=False
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        authorize(request)
        body = parse(ChatCompletionRequest, await read_json(request))
        messages = [
            m.model_dump(exclude_none=True, include={"role", "content"}) for m in body.messages
        ]
        prompt_ids = codec.encode(codec.chat_prompt(messages))
        max_tokens = body.max_completion_tokens or body.max_tokens
        return await respond(
            request, body, prompt_ids, sampling(body, prompt_ids, max_tokens), chat=True
        )

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        card = {"id": settings.model_name, "object": "model", "created": 0, "owned_by": "llmcourse"}
        return {"object": "list", "data": [card]}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": settings.model_name, "batch_size": engine.max_batch_size}

    @app.get("/metrics")
    async def metrics_route(request: Request) -> dict[str, Any]:
        authorize(request)
        return {**metrics.snapshot(), "requests_queued": engine.queued}

    return app


class RequestMetrics:
    """ASGI middleware: count ``/v1/`` requests by status and time them to their last byte
    (for a stream, until its end)."""

    def __init__(self, app: Any, metrics: Any) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_and_note(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.request_started()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.request_finished(status, time.perf_counter() - start)


def _too_large(limit: int) -> APIError:
    return APIError(
        413, f"The request body is over {limit} bytes; send a smaller one.", code="body_too_large"
    )
