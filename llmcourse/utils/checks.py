"""Argument checks at the package's boundary, with one message format everywhere.

A config or an entry point checks what it is given before any model runs, so that nonsense fails
where it was written rather than as NaN logits or a traceback from deep inside torch. Each check
raises ``TypeError`` for the wrong kind of value and ``ValueError`` for a value out of range, with
a message that names the argument, shows the value and states what is valid::

    TrainConfig.lr must be a finite number > 0, got -1.
    ModelConfig.head_dim must be an integer >= 1 or None, got 0.

``name`` is what the user wrote (``"ModelConfig.norm_eps"``, ``"group_size"``). Booleans are not
accepted as numbers (``True`` is an ``int`` in Python, never what was meant); NumPy scalars are.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any


def check_int(
    name: str,
    value: Any,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    optional: bool = False,
) -> None:
    """An integer in ``[minimum, maximum]`` (either bound may be open-ended); ``None`` if
    ``optional``."""
    if optional and value is None:
        return
    if minimum == 1 and maximum is None:
        wanted = "a positive integer"
    else:
        wanted = "an integer" + _bounds(minimum, maximum, True, True)
    wanted += " or None" if optional else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {wanted}, got {_shown(value)}.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {wanted}, got {value!r}.")


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    """A finite real number between ``low`` and ``high`` (``*_open``: the bound itself is
    excluded); ``None`` if ``optional``."""
    if optional and value is None:
        return
    wanted = "a finite number" + _bounds(low, high, not low_open, not high_open)
    wanted += " or None" if optional else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {wanted}, got {_shown(value)}.")
    bad = not math.isfinite(value)
    bad = bad or (low is not None and (value <= low if low_open else value < low))
    bad = bad or (high is not None and (value >= high if high_open else value > high))
    if bad:
        raise ValueError(f"{name} must be {wanted}, got {value!r}.")


def check_bool(name: str, value: Any, *, optional: bool = False) -> None:
    """``True`` or ``False`` (not 0/1, not a string); ``None`` if ``optional``."""
    if optional and value is None:
        return
    if not isinstance(value, bool):
        extra = " or None" if optional else ""
        raise TypeError(f"{name} must be True or False{extra}, got {_shown(value)}.")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """One of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}.")


def check_type(name: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    """An instance of ``kind``, described to the user as ``what``."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {what}, got {_shown(value)}.")


def _bounds(low: float | None, high: float | None, low_closed: bool, high_closed: bool) -> str:
    if low is not None and high is not None:
        return f" in {'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"
    if low is not None:
        return f" {'>=' if low_closed else '>'} {low}"
    if high is not None:
        return f" {'<=' if high_closed else '<'} {high}"
    return ""


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
