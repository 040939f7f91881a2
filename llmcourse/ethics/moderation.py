"""One interface for every content filter, shaped like OpenAI's moderation endpoint.

A deployed chat model has a moderation step in front of it (the user's prompt) and behind it
(the model's output). Whatever the filter is (a phrase list, a classifier on sentence
embeddings, a large guard model such as Llama Guard; Inan et al. 2023), the server needs the
same few things from it, so every filter here is a ``Moderator``:

- ``moderate(text) -> ModerationResult`` with ``flagged``, per-category ``categories`` (bool)
  and ``scores`` (0 to 1), and human-readable ``reasons``;
- ``moderate_batch(texts)`` for many texts at once (a classifier embeds them in one batch);
- ``predict(texts)``: 1 for flagged, 0 for allowed, for the metrics in
  ``llmcourse.ethics.safety_eval``.

``ModerationResult.to_openai()`` (and ``moderation_response`` for several texts) give the body
that OpenAI's ``POST /v1/moderations`` returns::

    {"id": "modr-...", "model": "...", "results": [{"flagged": true,
      "categories": {"harassment": false, ..., "self-harm": true, ...},
      "category_scores": {"harassment": 0.01, ..., "self-harm": 0.93, ...},
      "category_applied_input_types": {"harassment": ["text"], ...}}]}

so a server can answer that route directly and OpenAI's client can read it (a test validates
the body against the ``openai`` package's own ``ModerationCreateResponse`` type). The course's
categories (``CATEGORIES``, defined in ``data/LABELLING.md``) map onto OpenAI's names through
``OPENAI_CATEGORIES``; OpenAI names with no course category stay ``false``/``0.0``, and the
course's own reasons (``"weapons"``, ``"pii:email"``) travel in an extra ``reasons`` field.
``CombinedModerator`` flags what any of its members flags: higher recall, lower precision.

How a server uses it (``llmcourse.ethics.safety_classifier.load_moderator(kind)`` builds one):
moderate the prompt before generating and answer a flagged one with HTTP 400 whose message
names ``result.reasons``; moderate the output text as it grows (``guard_stream``, or the same
check inside the engine's text callback) and, when it is flagged, stop the request with
OpenAI's ``finish_reason="content_filter"``, withhold the rest and log the reasons; serve
``POST /v1/moderations`` as ``moderation_response(moderator.moderate_batch(inputs))``.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The harm categories of the course's safety set (``llmcourse/ethics/data/LABELLING.md``).
CATEGORIES: tuple[str, ...] = ("weapons", "self_harm", "credentials", "harassment", "fraud")

#: What ``Moderator.guard_stream`` shows in place of a flagged output's remainder.
REFUSAL = "[The rest of this response was withheld by the safety filter.]"

#: OpenAI's moderation category names (omni-moderation) and the course categories behind each.
OPENAI_CATEGORIES: dict[str, tuple[str, ...]] = {
    "harassment": ("harassment",),
    "harassment/threatening": (),
    "hate": (),
    "hate/threatening": (),
    "illicit": ("credentials", "fraud"),
    "illicit/violent": ("weapons",),
    "self-harm": ("self_harm",),
    "self-harm/intent": (),
    "self-harm/instructions": (),
    "sexual": (),
    "sexual/minors": (),
    "violence": (),
    "violence/graphic": (),
}


@dataclass(frozen=True)
class ModerationResult:
    """A filter's decision on one text.

    ``categories`` says which categories fired, ``scores`` how strongly (1.0/0.0 for rules, a
    probability for a classifier), ``reasons`` why, in words a log or a 400 response can show.
    """

    flagged: bool
    categories: Mapping[str, bool] = field(default_factory=dict)
    scores: Mapping[str, float] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    model: str = "llmcourse-moderation"

    def openai_result(self) -> dict[str, Any]:
        """This result as one entry of OpenAI's ``results`` list (course categories mapped)."""
        categories, scores = {}, {}
        for name, ours in OPENAI_CATEGORIES.items():
            categories[name] = any(self.categories.get(c, False) for c in ours)
            scores[name] = max((float(self.scores.get(c, 0.0)) for c in ours), default=0.0)
        return {
            "flagged": self.flagged,
            "categories": categories,
            "category_scores": scores,
            # omni-moderation says which input types (text, image) each score applies to.
            "category_applied_input_types": {name: ["text"] for name in OPENAI_CATEGORIES},
            "reasons": list(self.reasons),
        }

    def to_openai(self, id: str | None = None) -> dict[str, Any]:
        """The body of OpenAI's ``POST /v1/moderations`` response for this one text."""
        return moderation_response([self], model=self.model, id=id)


def moderation_response(
    results: Sequence[ModerationResult], model: str | None = None, id: str | None = None
) -> dict[str, Any]:
    """OpenAI's moderation response body for several texts (``input`` given as a list)."""
    if isinstance(results, ModerationResult):
        raise TypeError("moderation_response takes a list of results; use result.to_openai().")
    if model is None:
        model = results[0].model if results else "llmcourse-moderation"
    return {
        "id": id if id is not None else f"modr-{uuid.uuid4().hex}",
        "model": model,
        "results": [result.openai_result() for result in results],
    }


def _check_texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("Give a list of texts, not one string (use moderate() for one text).")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is a {type(text).__name__}, not a string.")
    return texts


class Moderator(ABC):
    """A content filter: subclasses implement ``moderate_batch``; ``name`` labels reports."""

    name: str = "moderator"

    @abstractmethod
    def _moderate(self, texts: list[str]) -> list[ModerationResult]:
        """Decide on every text of a non-empty list of strings."""

    def moderate_batch(self, texts: Iterable[str]) -> list[ModerationResult]:
        """One ``ModerationResult`` per text, in order."""
        texts = _check_texts(texts)
        return self._moderate(texts) if texts else []

    def moderate(self, text: str) -> ModerationResult:
        """The decision on one text."""
        if not isinstance(text, str):
            raise TypeError(f"moderate() takes a string, got {type(text).__name__}.")
        return self._moderate([text])[0]

    def predict(self, texts: Iterable[str]) -> list[int]:
        """1 for every flagged text, 0 for every allowed one."""
        return [int(result.flagged) for result in self.moderate_batch(texts)]

    def guard_stream(self, pieces: Iterable[str]) -> Iterator[str]:
        """Pass ``pieces`` through until the text so far is flagged; then yield ``REFUSAL``.

        Each piece is released one step late, so a phrase completed by the next piece
        ("build a" + " bomb") is caught before "build a" is shown; the earlier pieces of a
        phrase spread over more than two pieces may already have been shown. The whole text so
        far is moderated at every piece: cheap for rules, one encoder pass per piece for a
        classifier.
        """
        text, held = "", None
        for piece in pieces:
            text += piece
            if self.moderate(text).flagged:
                yield REFUSAL
                return
            if held is not None:
                yield held
            held = piece
        if held is not None:
            yield held


class CombinedModerator(Moderator):
    """Flags a text when any member flags it; categories are OR-ed, scores the maximum.

    Reasons are prefixed with the member's name (``"phrase-list: weapons"``), so a log shows
    which filter fired.
    """

    def __init__(self, *moderators: Moderator, name: str | None = None) -> None:
        if len(moderators) < 2:
            raise ValueError(f"CombinedModerator needs at least two moderators, got {moderators}.")
        for m in moderators:
            if not isinstance(m, Moderator):
                raise TypeError(f"{m!r} is not a Moderator (it needs moderate_batch()).")
        self.moderators = moderators
        self.name = name or " + ".join(m.name for m in moderators)

    def _moderate(self, texts: list[str]) -> list[ModerationResult]:
        per_member = [m.moderate_batch(texts) for m in self.moderators]
        combined = []
        for results in zip(*per_member, strict=True):
            categories: dict[str, bool] = {}
            scores: dict[str, float] = {}
            reasons: list[str] = []
            for member, result in zip(self.moderators, results, strict=True):
                for c, on in result.categories.items():
                    categories[c] = categories.get(c, False) or on
                for c, s in result.scores.items():
                    scores[c] = max(scores.get(c, 0.0), s)
                reasons.extend(f"{member.name}: {r}" for r in result.reasons)
            flagged = any(r.flagged for r in results)
            reasons_ = tuple(reasons)
            combined.append(ModerationResult(flagged, categories, scores, reasons_, self.name))
        return combined
