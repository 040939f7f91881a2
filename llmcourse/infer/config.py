"""``GenerationConfig``: every decoding setting in one checked, immutable object.

``generate``, ``stream`` and the server's per-request ``SamplingParams`` share it instead of
each taking a dozen keyword arguments. It is checked when it is built, so a bad setting fails
with an error that names the field before any model runs::

    config = GenerationConfig(max_new_tokens=40, temperature=0.7, top_p=0.9, stop_tokens=eos)
    generate(model, ids, config=config)
    generate(model, ids, config=config.replace(temperature=0))   # greedy, the rest unchanged

What belongs to one call rather than to the settings (the prompt's ``attention_mask``, a seeded
``torch.Generator``) stays an argument of ``generate``/``stream``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

CacheKind = Literal["dynamic", "static"]


@dataclass(frozen=True)
class GenerationConfig:
    """How to continue a prompt (see ``llmcourse.infer.generate`` for what each does).

    - ``max_new_tokens``: at most this many tokens per row;
    - ``temperature``: 0 is greedy; else sample from ``softmax(logits / temperature)``;
    - ``top_k``, ``top_p``: keep the ``k`` most likely tokens / the nucleus of mass ``p``;
    - ``repetition_penalty``: ``> 1`` makes tokens already present less likely (1 = off);
    - ``stop_tokens``: ids that end a row (an int or a sequence; stored as a tuple);
    - ``pad_token_id``: fills finished rows (default: the first stop token, else 0);
    - ``use_cache``, ``cache``: keep keys/values (``"dynamic"`` grows, ``"static"`` is
      preallocated); ``use_cache=False`` recomputes everything at each step;
    - ``output_filter``: called after every step with one row's new token ids so far; when it
      returns True the row ends there, its last token withheld (replaced by the pad id), as
      a deployment's output moderation needs. ``infer`` knows nothing about what it checks:
      a server passes a moderator (``llmcourse.ethics``) wrapped in a function. It costs one
      read of the new tokens back to the host per step.
    """

    max_new_tokens: int = 16
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    stop_tokens: tuple[int, ...] = ()
    pad_token_id: int | None = None
    use_cache: bool = True
    cache: CacheKind = "dynamic"
    output_filter: Callable[[list[int]], bool] | None = None

    def __post_init__(self) -> None:
        _check_count("max_new_tokens", self.max_new_tokens)
        check_sampling(self.temperature, self.top_k, self.top_p, self.repetition_penalty)
        object.__setattr__(self, "stop_tokens", _token_ids("stop_tokens", self.stop_tokens))
        if self.pad_token_id is not None:
            _check_count("pad_token_id", self.pad_token_id)
        if not isinstance(self.use_cache, bool):
            raise TypeError(f"use_cache must be True or False, got {self.use_cache!r}.")
        if self.cache not in ("dynamic", "static"):
            raise ValueError(
                f"GenerationConfig.cache must be 'dynamic' or 'static', got {self.cache!r} "
                "(use_cache=False turns caching off)."
            )
        if self.output_filter is not None and not callable(self.output_filter):
            raise TypeError(
                "output_filter must be a function of a row's new token ids that returns True "
                f"to stop the row, got {self.output_filter!r}."
            )

    @property
    def greedy(self) -> bool:
        """True when decoding takes the argmax (``temperature == 0``)."""
        return self.temperature == 0

    @property
    def pad_id(self) -> int:
        """The id finished rows get: ``pad_token_id``, else the first stop token, else 0."""
        if self.pad_token_id is not None:
            return self.pad_token_id
        return self.stop_tokens[0] if self.stop_tokens else 0

    def replace(self, **changes: Any) -> GenerationConfig:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


def check_sampling(
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    repetition_penalty: float = 1.0,
) -> None:
    """Raise ``ValueError`` with what to change when a sampling setting is out of range."""
    if not _is_number(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(
            f"temperature must be a number >= 0 (0 means greedy), got {temperature!r}."
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}.")
    if top_p is not None and not (_is_number(top_p) and 0.0 < top_p <= 1.0):
        raise ValueError(
            f"top_p must be in (0, 1], got {top_p!r}: it is the probability mass to keep "
            "(0.9 keeps the most likely tokens that together hold 90%; 1.0 keeps all)."
        )
    if not _is_number(repetition_penalty) or not 0 < repetition_penalty < math.inf:
        raise ValueError(
            f"repetition_penalty must be > 0 (1.0 = off, >1 discourages repeats), "
            f"got {repetition_penalty!r}."
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}.")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}.")


def _token_ids(name: str, ids: int | Sequence[int] | None) -> tuple[int, ...]:
    ids = () if ids is None else (ids,) if isinstance(ids, int) else ids
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(f"{name} must be token ids (an int or a sequence of ints), got {ids!r}.")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise TypeError(f"{name} must be token ids (ints >= 0), got {ids!r}.")
    return tuple(ids)
