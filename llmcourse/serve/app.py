"""The HTTP layer of ``llmcourse serve``: an OpenAI-compatible FastAPI app over a
``BatchingEngine``.

The app is assembled from three parts: ``routes.py`` (the endpoints), ``schemas.py`` (request
and reply bodies) and ``glue.py`` (limits, jobs on the engine, replies from its events), and
wrapped in ``guard.RequestGuard``, which reads every body under a deadline and a size limit
before a route runs, counts and times every ``/v1/`` request, and answers an unexpected
exception with a logged 500 that keeps the connection alive. This module ties them together:
the engine starts and stops with the app, and errors become replies.

Every failure is an HTTP error in OpenAI's shape, ``{"error": {"message", "type", "param",
"code"}}``, and none stops the server:

| problem | status |
|---|---|
| missing or wrong API key (when one is set) | 401 |
| unknown model name | 404 |
| body not in within ``body_timeout_seconds`` | 408 |
| body over ``max_body_bytes`` | 413 |
| malformed JSON (nested too deep, ``NaN``, unpaired surrogates included), unknown or | 400 |
| invalid fields, out-of-range values, a prompt or ``max_tokens`` over the limits | |
| a prompt flagged by the safety filter (``--safety``; ``serve/safety.py``) | 400 |
| more than ``max_concurrency`` requests (with their bodies in) in flight | 429 |
| a bug, or the engine failed while generating (logged) | 500 |

A client that disconnects (closes a stream, stops reading one, or gives up on a slow reply)
cancels its request: the engine drops the row at its next step.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmcourse.serve.engine import BatchingEngine
from llmcourse.serve.glue import Backend, ServerSettings
from llmcourse.serve.guard import RequestGuard
from llmcourse.serve.routes import router
from llmcourse.serve.safety import SafetyGate
from llmcourse.serve.safety import router as safety_router
from llmcourse.serve.schemas import APIError

__all__ = ["ServerSettings", "create_app"]


def create_app(
    engine: BatchingEngine,
    codec: Any,
    settings: ServerSettings | None = None,
    safety: SafetyGate | None = None,
) -> FastAPI:
    """A FastAPI app serving ``engine``; the engine starts and stops with the app. ``safety``
    (``serve.safety.load_gate``) moderates prompts and outputs and serves ``/v1/moderations``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.stop)

    app = FastAPI(title="llmcourse serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    settings = settings or ServerSettings()
    app.state.backend = Backend(engine, codec, settings, safety)
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # No handler for Exception: Starlette's re-raises after answering, which drops the
    # connection; RequestGuard answers instead.
    app.add_middleware(
        RequestGuard,
        metrics=engine.metrics,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_seconds=settings.body_timeout_seconds,
        write_timeout_seconds=settings.write_timeout_seconds,
    )
    app.include_router(router)
    app.include_router(safety_router)
    return app


async def _api_error(_: Request, error: APIError) -> JSONResponse:
    return error.response()


async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    return APIError(error.status_code, str(error.detail), "invalid_request_error").response()
