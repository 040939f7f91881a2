"""The HTTP layer of ``llmcourse serve``: an OpenAI-compatible FastAPI app over a
``BatchingEngine``.

The app is assembled from three parts: ``routes.py`` (the endpoints), ``schemas.py`` (request
and reply bodies) and ``glue.py`` (limits, jobs on the engine, replies from its events). This
module ties them together: the engine starts and stops with the app, errors become replies, and
``RequestMetrics`` counts and times every ``/v1/`` request.

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
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmcourse.serve.engine import BatchingEngine
from llmcourse.serve.glue import Backend, ServerSettings
from llmcourse.serve.routes import router
from llmcourse.serve.schemas import APIError

__all__ = ["RequestMetrics", "ServerSettings", "create_app"]


def create_app(
    engine: BatchingEngine, codec: Any, settings: ServerSettings | None = None
) -> FastAPI:
    """A FastAPI app serving ``engine``; the engine starts and stops with the app."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.stop)

    app = FastAPI(title="llmcourse serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.backend = Backend(engine, codec, settings or ServerSettings())
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _server_error)
    app.add_middleware(RequestMetrics, metrics=engine.metrics)
    app.include_router(router)
    return app


async def _api_error(_: Request, error: APIError) -> JSONResponse:
    return error.response()


async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    return APIError(error.status_code, str(error.detail), "invalid_request_error").response()


async def _server_error(_: Request, error: Exception) -> JSONResponse:
    message = f"Internal error: {type(error).__name__}: {error}"
    return APIError(500, message, "server_error").response()


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
