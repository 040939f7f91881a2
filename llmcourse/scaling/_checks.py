"""Argument checks shared by the scaling modules: clear errors at the boundary."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np


def check_positive(**values: Any) -> None:
    """Each value is a number (or an array of numbers) greater than zero."""
    for name, value in values.items():
        if isinstance(value, (str, bytes, bool)) or value is None:
            raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}.")
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be a number or an array of numbers, got {value!r}."
            ) from None
        if np.any(np.isnan(array)) or np.any(array <= 0):
            raise ValueError(f"{name} must be positive, got {value!r}.")


def check_non_negative(**values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, Real) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}.")


def check_count(**values: Any) -> None:
    """Each value is an integer of at least 1 (a number of GPUs, layers, tokens...)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise TypeError(f"{name} must be an integer, got {value!r}.")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value!r}.")
