"""The guard around every request of ``llmcourse serve``: what a web framework leaves to us.

A server open to careless or hostile clients needs four things that neither uvicorn nor
Starlette provide, so ``RequestGuard`` (ASGI middleware, outside every route) does them:

1. **The body is read first, under a deadline and a size limit.** uvicorn waits forever for a
   body that a client announced (``Content-Length``) and never sends. The guard reads the whole
   body, at most ``max_body_bytes`` within ``body_timeout_seconds``, and answers 413 or 408
   itself (closing the connection); only then does a route run, on the buffered body.
2. **A request counts toward concurrency only once its body is in** (``Metrics.in_flight``,
   which the ``max_concurrency`` check reads). A hundred clients that send half a body and
   stall cost a hundred idle coroutines, never the slots that real requests need.
3. **An unexpected exception is logged and answered 500** as a normal response, so the
   connection stays open for its next request and nobody else notices. (Starlette's own
   handler re-raises after answering, and uvicorn then closes the keep-alive connection.) When
   the response had already started (a stream), it is ended cleanly instead.
4. **Every write waits at most ``write_timeout_seconds``.** A client that stops reading a
   stream fills the socket buffers, and each write would then wait for it forever; past the
   deadline the response is abandoned and the connection closed.

Whatever way a response ends (finished, failed, abandoned, disconnected), the guard calls the
clean-ups that the route registered with ``on_close`` (the glue cancels its engine job there),
so a departed client's batch row is freed at the engine's next step.

``parse_json_body`` is the other half of "no 5xx for bad input": JSON that the ``json`` module
accepts but no route can use (nesting deeper than ``max_depth``, ``NaN``, an unpaired UTF-16
surrogate such as ``"\\ud800"`` that no tokenizer can encode, an integer of 5,000 digits) is
refused with a 400 that says what is wrong.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from llmcourse.serve.metrics import Metrics
from llmcourse.serve.schemas import APIError

logger = logging.getLogger("llmcourse.serve")

_CLEANUPS = "llmcourse.on_close"  # the scope key of the clean-ups ``on_close`` registers


class ClientStalled(Exception):
    """A write to the client did not complete within the write deadline."""


def on_close(scope: dict[str, Any], cleanup: Callable[[], None]) -> None:
    """Call ``cleanup()`` when the response to ``scope``'s request ends, however it ends."""
    scope.setdefault(_CLEANUPS, []).append(cleanup)


class RequestGuard:
    """ASGI middleware doing the four things in the module docstring; it also counts and
    times every ``/v1/`` request to its last byte in ``metrics`` (for a stream, to its end)."""

    def __init__(
        self,
        app: Any,
        metrics: Metrics,
        max_body_bytes: int,
        body_timeout_seconds: float,
        write_timeout_seconds: float,
    ) -> None:
        self.app, self.metrics = app, metrics
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout_seconds
        self.write_timeout = write_timeout_seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counted = scope["path"].startswith("/v1/")
        start = time.perf_counter()
        try:
            body = await self._read_body(scope, receive)
        except APIError as error:
            response = error.response()
            response.headers["connection"] = "close"  # the rest of the body is still unread
            await response(scope, receive, send)
            if counted:
                self.metrics.request_finished(error.status, time.perf_counter() - start, False)
            return
        if body is None:  # the client left before its body was in: no one to answer
            if counted:
                self.metrics.request_finished(499, time.perf_counter() - start, False)
            return

        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls: wait for a disconnect

        status, started, finished = 500, False, False

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal status, started, finished
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            try:
                async with asyncio.timeout(self.write_timeout):
                    await send(message)
            except TimeoutError:
                raise ClientStalled(
                    f"a write waited over {self.write_timeout:g} s for the client to read"
                ) from None

        if counted:
            self.metrics.request_started()
        try:
            await self.app(scope, replay, guarded_send)
        except ClientStalled as error:
            # Abandon the response; uvicorn closes a connection whose response is incomplete.
            logger.warning("%s %s: %s; dropping it", scope["method"], scope["path"], error)
            status = 499
        except Exception:
            logger.exception("Unexpected error answering %s %s", scope["method"], scope["path"])
            if not started:
                status = 500
                message = "Internal server error (logged); other requests are unaffected."
                await APIError(500, message, "server_error").response()(scope, replay, send)
            elif not finished:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            for cleanup in scope.get(_CLEANUPS, ()):
                cleanup()
            if counted:
                self.metrics.request_finished(status, time.perf_counter() - start)

    async def _read_body(self, scope: Any, receive: Any) -> bytes | None:
        """The whole body, or ``None`` when the client disconnects first; an ``APIError`` (413
        or 408) when it is too large or too slow."""
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise _too_large(limit)
        body = bytearray()
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    body += message.get("body", b"")
                    if len(body) > limit:
                        raise _too_large(limit)
                    if not message.get("more_body", False):
                        return bytes(body)
        except TimeoutError:
            raise APIError(
                408,
                f"The request body did not arrive within {self.body_timeout:g} s "
                f"({len(body)} bytes came); send it in one go.",
                code="request_timeout",
            ) from None


def _too_large(limit: int) -> APIError:
    return APIError(
        413, f"The request body is over {limit} bytes; send a smaller one.", code="body_too_large"
    )


def parse_json_body(body: bytes, max_depth: int = 32) -> Any:
    """``body`` as JSON, or a 400 ``APIError`` that says what is wrong with it."""
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except RecursionError:  # the C scanner recurses once per level: 30,000 "[" end here
        raise _too_deep(max_depth) from None
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise APIError(400, f"The body is not valid JSON: {error}.", code="invalid_json") from None
    stack = [(data, 1)]
    while stack:  # iterative: a recursive walk would itself fail on deep nesting
        value, depth = stack.pop()
        if depth > max_depth:
            raise _too_deep(max_depth)
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259); send a finite number")


def _too_deep(max_depth: int) -> APIError:
    return APIError(
        400,
        f"The body is not valid JSON here: it nests deeper than {max_depth} levels.",
        code="invalid_json",
    )


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start : error.end].encode("unicode_escape").decode()
        raise APIError(
            400,
            f"The body has a string with an unpaired UTF-16 surrogate ({bad}) at character "
            f"{error.start}; it is not text. Send valid Unicode.",
            code="invalid_json",
        ) from None
