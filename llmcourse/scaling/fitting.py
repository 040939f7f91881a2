"""Fit power laws to your own runs: y = c·x^k, and y = E + A·x^(-α) with an irreducible floor.

A power law is a straight line on log-log axes, so ``fit_power_law`` is least squares on
(log x, log y); that is how Kaplan et al. 2020 and Hoffmann et al. 2022 (Approaches 1 and 2)
read exponents off their runs.

A loss curve flattens towards the entropy of the text, so a bare power law bends away from
the data; ``fit_power_law_with_offset`` adds the floor E. It minimises the squared error of y
by variable projection (Golub & Pereyra 1973): for a fixed exponent α the model is linear in
(E, A), so a linear least-squares solve gives the best (E, A) and leaves one number, α, to
search. The search scans a grid of α and then narrows the best bracket by golden sections.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class PowerLaw:
    """y = coefficient · x^exponent."""

    coefficient: float
    exponent: float

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.coefficient * np.asarray(x, dtype=float) ** self.exponent


@dataclass(frozen=True)
class OffsetPowerLaw:
    """y = irreducible + coefficient · x^(-exponent); ``irreducible`` is the floor as x → ∞."""

    irreducible: float
    coefficient: float
    exponent: float

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.irreducible + self.coefficient * np.asarray(x, dtype=float) ** -self.exponent


def fit_power_law(x: ArrayLike, y: ArrayLike) -> PowerLaw:
    """Least-squares line through (log x, log y): y = c·x^k. x and y must be positive."""
    log_x, log_y = np.log(_positive_array("x", x)), np.log(_positive_array("y", y))
    _check_pairs(log_x, log_y, minimum=2)
    exponent, intercept = np.polyfit(log_x, log_y, 1)
    return PowerLaw(coefficient=float(np.exp(intercept)), exponent=float(exponent))


def fit_power_law_with_offset(
    x: ArrayLike, y: ArrayLike, exponent_range: tuple[float, float] = (1e-3, 4.0)
) -> OffsetPowerLaw:
    """Least-squares fit of y = E + A·x^(-α) with α searched in ``exponent_range``.

    Needs at least four points (three parameters and one degree of freedom); x must be
    positive. E comes out unconstrained: a negative floor says the data do not yet bend.
    """
    x_array = _positive_array("x", x)
    y_array = np.asarray(y, dtype=float)
    _check_pairs(x_array, y_array, minimum=4)
    low, high = exponent_range
    if not 0 < low < high:
        raise ValueError(f"exponent_range must satisfy 0 < low < high, got {exponent_range!r}.")
    # Measuring x in units of its geometric mean keeps x^(-α) near 1 for any α, so the linear
    # solve stays well conditioned; A is converted back at the end.
    scale = float(np.exp(np.mean(np.log(x_array))))
    x_scaled = x_array / scale

    def solve(alpha: float) -> tuple[float, float, float]:
        design = np.column_stack([np.ones_like(x_scaled), x_scaled**-alpha])
        (floor, amplitude), *_ = np.linalg.lstsq(design, y_array, rcond=None)
        residual = y_array - design @ np.array([floor, amplitude])
        return float(residual @ residual), float(floor), float(amplitude)

    grid = np.geomspace(low, high, 200)
    errors = [solve(alpha)[0] for alpha in grid]
    best = int(np.argmin(errors))
    left, right = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    alpha = _golden_section(lambda a: solve(a)[0], left, right)
    _, floor, amplitude = solve(alpha)
    return OffsetPowerLaw(
        irreducible=floor, coefficient=amplitude * scale**alpha, exponent=float(alpha)
    )


def _golden_section(
    function: Callable[[float], float], left: float, right: float, tolerance: float = 1e-10
) -> float:
    """Minimum of a unimodal function on [left, right] by golden-section search."""
    inverse_phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = left, right
    c, d = b - inverse_phi * (b - a), a + inverse_phi * (b - a)
    f_c, f_d = function(c), function(d)
    while b - a > tolerance * max(1.0, abs(a) + abs(b)):
        if f_c < f_d:
            b, d, f_d = d, c, f_c
            c = b - inverse_phi * (b - a)
            f_c = function(c)
        else:
            a, c, f_c = c, d, f_d
            d = a + inverse_phi * (b - a)
            f_d = function(d)
    return (a + b) / 2.0


def _positive_array(name: str, values: ArrayLike) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {array.shape}.")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be positive and finite (it is taken to a power or a log).")
    return array


def _check_pairs(x: np.ndarray, y: np.ndarray, minimum: int) -> None:
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}.")
    if len(x) < minimum:
        raise ValueError(f"Need at least {minimum} (x, y) points to fit, got {len(x)}.")
    if not np.all(np.isfinite(y)):
        raise ValueError("y must be finite.")
    if np.ptp(x) == 0:
        raise ValueError("All x values are equal; a power law needs x to vary.")
