"""``llmcourse serve --safety``: a moderation step in front of the model and behind it.

A deployment checks the user's prompt before generating and the model's output while it is
generated (Inan et al. 2023, Llama Guard; OpenAI's moderation endpoint). ``SafetyGate`` wraps
any ``llmcourse.ethics.Moderator`` (``--safety phrases``, ``classifier`` or ``combined``;
``llmcourse.ethics.safety_classifier.load_moderator``) and does three things for the server:

- ``check_prompt``: a flagged prompt (or chat message) is never run; the client gets a 400 in
  OpenAI's error shape whose message names the categories and reasons;
- ``output_filter``: a function for ``GenerationConfig.output_filter``. The engine calls it
  with the request's new tokens after every step, before any of their text is sent; when the
  text so far is flagged, the engine withholds the token that completed it (and any text it
  was holding back), ends the request with ``finish_reason="content_filter"``, and the gate
  logs why. Text sent before that step stays sent: a filter on a stream can stop a harmful
  answer, not unsay its first words;
- ``router``: ``POST /v1/moderations`` in OpenAI's request and response shapes
  (``llmcourse.ethics.moderation_response``).

``infer`` never imports ``ethics``: the engine sees only a function of token ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from pydantic import field_validator

from llmcourse.ethics.moderation import ModerationResult, Moderator, moderation_response
from llmcourse.serve.routes import _authorized, _parse, _read_json
from llmcourse.serve.schemas import APIError, _Strict

logger = logging.getLogger("llmcourse.serve")

#: What ``--safety`` accepts ("off": no moderation, and no ``/v1/moderations``).
SAFETY_CHOICES: tuple[str, ...] = ("off", "phrases", "classifier", "combined")

MAX_MODERATION_INPUTS = 32  # texts per /v1/moderations request


class SafetyGate:
    """A ``Moderator`` as the server uses it (see the module docstring)."""

    def __init__(self, moderator: Moderator, codec: Any) -> None:
        if not isinstance(moderator, Moderator):
            raise TypeError(f"moderator must be an llmcourse.ethics.Moderator, got {moderator!r}.")
        self.moderator, self.codec = moderator, codec

    async def check_prompt(self, texts: Sequence[str], param: str) -> None:
        """Raise a 400 ``APIError`` when any of ``texts`` is flagged (moderated off the event
        loop: a classifier takes milliseconds per text)."""
        results = await asyncio.to_thread(self.moderator.moderate_batch, list(texts))
        flagged = [r for r in results if r.flagged]
        if flagged:
            why = describe(flagged)
            logger.warning("Refused a prompt flagged by the safety filter: %s", why)
            raise APIError(
                400,
                f"The {param} was flagged by this server's safety filter ({why}) and was not "
                "run. Rephrase it.",
                code="content_filter",
                param=param,
            )

    def output_filter(self, label: str) -> Callable[[list[int]], bool]:
        """A ``GenerationConfig.output_filter`` for one request (``label`` names it in logs)."""

        def flagged(token_ids: list[int]) -> bool:
            result = self.moderator.moderate(self.codec.decode(token_ids))
            if result.flagged:
                logger.warning(
                    "Withheld the rest of %s's output, flagged by the safety filter after %d "
                    "tokens: %s",
                    label,
                    len(token_ids),
                    describe([result]),
                )
            return result.flagged

        return flagged


def describe(results: Sequence[ModerationResult]) -> str:
    """``"categories: weapons; reasons: weapons"`` for flagged ``results``."""
    categories = sorted({c for r in results for c, on in r.categories.items() if on})
    reasons = sorted({reason for r in results for reason in r.reasons})
    return f"categories: {', '.join(categories) or 'none'}; reasons: {', '.join(reasons)}"


def load_gate(kind: str, codec: Any) -> SafetyGate | None:
    """The gate for ``--safety kind`` (``None`` for ``"off"``)."""
    if kind not in SAFETY_CHOICES:
        raise ValueError(f"--safety must be one of {', '.join(SAFETY_CHOICES)}, got {kind!r}.")
    if kind == "off":
        return None
    from llmcourse.ethics.safety_classifier import load_moderator

    return SafetyGate(load_moderator(kind), codec)


class ModerationRequest(_Strict):
    """``POST /v1/moderations``: one text or a list of them."""

    input: str | list[str]
    model: str | None = None

    @field_validator("input")
    @classmethod
    def _some_texts(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_MODERATION_INPUTS:
            raise ValueError(f"give 1 to {MAX_MODERATION_INPUTS} texts")
        return value


router = APIRouter()


@router.post("/v1/moderations")
async def moderations(request: Request) -> dict[str, Any]:
    backend = _authorized(request)
    body = _parse(ModerationRequest, await _read_json(request, backend.settings))
    gate: SafetyGate | None = backend.safety
    if gate is None:
        raise APIError(
            404,
            "This server runs without a safety filter: start it with "
            "`llmcourse serve --safety phrases` (or classifier, combined).",
            code="moderation_off",
        )
    texts = [body.input] if isinstance(body.input, str) else body.input
    results = await asyncio.to_thread(gate.moderator.moderate_batch, texts)
    return moderation_response(results, model=body.model or gate.moderator.name)
