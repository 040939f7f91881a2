"""The bodies ``llmcourse serve`` reads and writes: a strict subset of OpenAI's API.

Requests are pydantic models. Every model forbids unknown fields, so a typo (``max_token``) is a
400 that names the field instead of being silently ignored. Fields we do not implement
(``logprobs``, ``n > 1``, ``echo``) are absent and therefore rejected the same way. Limits that
depend on the server (prompt length, the ``max_tokens`` cap) are checked by the engine glue,
which knows them.

Replies are plain dicts built by the functions at the end, in OpenAI's shapes: a completion or
chat completion, its streamed chunks, ``usage``, and an error (``APIError``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    # torch.Generator.manual_seed takes [-2**63, 2**64): anything else is a 400, not a 500.
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**64)
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: continue ``prompt`` (one string)."""

    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str:
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError("this server takes one prompt per request")
            value = value[0]
        return value


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str
    name: str | None = None


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``: answer the conversation in ``messages``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


# ---------------------------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------------------------


class APIError(Exception):
    """An error reply: ``status``, a message that says what to change, and OpenAI's fields
    (``{"error": {"message", "type", "param", "code"}}``)."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_
        self.code, self.param = code, param

    def response(self) -> JSONResponse:
        body = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status)


def reply_head(model: str, chat: bool) -> dict[str, Any]:
    """The fields every reply and chunk of one completion share."""
    reply_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    return {"id": reply_id, "created": int(time.time()), "model": model}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_reply(
    head: dict[str, Any], text: str, finish_reason: str, counts: dict[str, int], chat: bool
) -> dict[str, Any]:
    """The whole answer of a non-streamed request."""
    if chat:
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": finish_reason}
        return {**head, "object": "chat.completion", "choices": [choice], "usage": counts}
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    return {**head, "object": "text_completion", "choices": [choice], "usage": counts}


def stream_chunk(
    head: dict[str, Any], text: str, finish_reason: str | None, first: bool, chat: bool
) -> dict[str, Any]:
    """One server-sent event of a streamed request (chat's first delta carries the role)."""
    if chat:
        delta: dict[str, str] = {"content": text} if text else {}
        if first:
            delta = {"role": "assistant", **delta}
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {**head, "object": "chat.completion.chunk", "choices": [choice]}
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    return {**head, "object": "text_completion", "choices": [choice]}


def usage_chunk(head: dict[str, Any], counts: dict[str, int], chat: bool) -> dict[str, Any]:
    """The last event when ``stream_options.include_usage`` is set: no choices, only usage."""
    kind = "chat.completion.chunk" if chat else "text_completion"
    return {**head, "object": kind, "choices": [], "usage": counts}
