"""The bodies ``llmcourse serve`` reads and writes: a strict subset of OpenAI's API.

Requests are pydantic models. Every model forbids unknown fields, so a typo (``max_token``) is a
400 that names the field instead of being silently ignored. What evaluation tools and
structured outputs send is here too: several prompts (strings or token ids) in one request,
``n`` choices, ``echo``, ``logprobs``/``top_logprobs`` and ``response_format`` (JSON by
constrained decoding); ``choices.py`` serves those. Limits that depend on the server (prompt
length, the caps on ``max_tokens``, ``n``, ``logprobs`` and prompts per request) are checked by
the engine glue, which knows them.

Replies are plain dicts built by the functions at the end, in OpenAI's shapes: a completion or
chat completion, its streamed chunks, ``usage``, and an error (``APIError``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    model: str
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1)
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
    """``POST /v1/completions``: continue ``prompt``: a string, a list of strings, a list of
    token ids, or a list of those (one choice per prompt and ``n``)."""

    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0)

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or any(v == [] for v in value)):
            raise ValueError("give a prompt: an empty list has no tokens")
        return value

    @model_validator(mode="after")
    def _scoring_needs_echo(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise ValueError(
                "max_tokens=0 generates nothing: use it with echo=true to score the prompt, "
                "or ask for at least 1 token"
            )
        return self

    def prompts(self) -> list[str | list[int]]:
        """The prompts, one per entry: a string or a list of token ids."""
        value = self.prompt
        if isinstance(value, str) or (value and isinstance(value[0], int)):
            return [value]  # type: ignore[list-item]
        return list(value)  # type: ignore[arg-type]


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str
    name: str | None = None


class JSONSchemaFormat(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    """``{"type": "text"}``, ``{"type": "json_object"}`` or ``{"type": "json_schema",
    "json_schema": {"name": ..., "schema": {...}}}``."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_when_asked(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required with type 'json_schema', and only then")
        return self


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``: answer the conversation in ``messages``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0)
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _checked(self) -> ChatCompletionRequest:
        if self.max_tokens == 0:
            raise ValueError("max_tokens must be at least 1 for a chat completion")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs=true")
        return self


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
