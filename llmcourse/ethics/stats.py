"""Uncertainty for bias measurements: bootstrap intervals and permutation tests.

A bias score computed on 20 hand-written items is a noisy number; reporting it without an
interval invites over-reading. Two tools:

- **Percentile bootstrap** (Efron 1979; Efron & Tibshirani 1993, ch. 13): resample the items
  with replacement ``n_resamples`` times, recompute the statistic each time, and report the
  ``(1-level)/2`` and ``(1+level)/2`` quantiles of those values as the interval.
- **Two-sample permutation test** (Fisher 1935): under "no difference between groups" the group
  labels are exchangeable; the p-value is the share of random relabellings whose mean
  difference is at least as extreme as the observed one, counted as ``(hits + 1) / (n + 1)``
  so it is never 0.

Both say how much the *items* could have moved the number; neither covers choices such as the
template wording, which often matter more (Seshadri et al. 2022, "Quantifying Social Biases
Using Templates is Unreliable").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap confidence interval."""

    value: float
    low: float
    high: float
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """The statistic of ``values`` (items along axis 0) and its percentile bootstrap interval.

    ``values`` may be 2-D (one row per item, e.g. paired scores); ``statistic`` receives an
    array of resampled rows.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim == 0 or len(data) == 0:
        raise ValueError("bootstrap_ci needs a non-empty list of per-item values.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}.")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(data), size=(n_resamples, len(data)))
    draws = np.array([statistic(data[rows]) for rows in index], dtype=np.float64)
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(float(statistic(data)), float(low), float(high), level)


def permutation_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided p-value for ``mean(a) - mean(b)`` by random relabelling of the pooled values."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("permutation_test needs two non-empty groups.")
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((n_permutations, len(pooled))), axis=1)
    shuffled = pooled[order]
    differences = np.abs(shuffled[:, : len(a)].mean(1) - shuffled[:, len(a) :].mean(1))
    hits = int((differences >= observed - 1e-12).sum())
    return (hits + 1) / (n_permutations + 1)


def cohens_d(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Standardised mean difference ``(mean a - mean b) / pooled sd`` (Cohen 1988)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("cohens_d needs at least two values per group.")
    pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    return float((a.mean() - b.mean()) / np.sqrt(pooled))
