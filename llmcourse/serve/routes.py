"""The HTTP routes of ``llmcourse serve``: authorize, read and check the body, hand over.

``POST /v1/completions`` and ``POST /v1/chat/completions`` (with ``"stream": true`` for
server-sent events), ``GET /v1/models``, ``GET /health``, ``GET /metrics``. Each handler finds
the server's ``Backend`` (engine glue) on ``request.app.state.backend``; everything that depends
on the engine or the limits happens there.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from llmcourse.serve import choices
from llmcourse.serve.glue import Backend, ServerSettings
from llmcourse.serve.guard import parse_json_body
from llmcourse.serve.schemas import APIError, ChatCompletionRequest, CompletionRequest

router = APIRouter()


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    backend = _authorized(request)
    body = _parse(CompletionRequest, await _read_json(request, backend.settings))
    if choices.needs_choices(body, chat=False):  # batches, n, echo, logprobs (choices.py)
        return await choices.complete(request, backend, body, chat=False)
    prompt_ids = backend.codec.encode(body.prompts()[0])  # one string: ["text"] is "text"
    params = backend.sampling_params(body, prompt_ids, body.max_tokens)
    return await backend.respond(request, body, prompt_ids, params, chat=False)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    backend = _authorized(request)
    body = _parse(ChatCompletionRequest, await _read_json(request, backend.settings))
    messages = [m.model_dump(exclude_none=True, include={"role", "content"}) for m in body.messages]
    if choices.needs_choices(body, chat=True):  # n, logprobs, response_format (choices.py)
        prompt = backend.codec.chat_prompt(messages)
        return await choices.complete(request, backend, body, chat=True, chat_prompt=prompt)
    prompt_ids = backend.codec.encode(backend.codec.chat_prompt(messages))
    max_tokens = body.max_completion_tokens or body.max_tokens
    params = backend.sampling_params(body, prompt_ids, max_tokens)
    return await backend.respond(request, body, prompt_ids, params, chat=True)


@router.get("/v1/models")
async def models(request: Request) -> dict[str, Any]:
    name = _authorized(request).settings.model_name
    card = {"id": name, "object": "model", "created": 0, "owned_by": "llmcourse"}
    return {"object": "list", "data": [card]}


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    backend: Backend = request.app.state.backend
    engine = backend.engine
    return {
        "status": "ok",
        "model": backend.settings.model_name,
        "batch_size": engine.max_batch_size,
        "device": str(engine.device),
    }


@router.get("/metrics")
async def metrics(request: Request) -> dict[str, Any]:
    backend = _authorized(request)
    return {**backend.metrics.snapshot(), "requests_queued": backend.engine.queued}


def _authorized(request: Request) -> Backend:
    """The backend, once the request's API key checks out (when the server has one)."""
    backend: Backend = request.app.state.backend
    key = backend.settings.api_key
    if key is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise APIError(
                401,
                "Missing or wrong API key: send the header 'Authorization: Bearer <key>'.",
                "authentication_error",
                "invalid_api_key",
            )
    return backend


async def _read_json(request: Request, settings: ServerSettings) -> Any:
    """The body as JSON; ``RequestGuard`` has already read it under its size and time limits."""
    return parse_json_body(await request.body(), settings.max_json_depth)


def _parse(schema: type[BaseModel], data: Any) -> Any:
    """``data`` validated by ``schema``; a 400 that names the first bad field otherwise."""
    try:
        return schema.model_validate(data)
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
