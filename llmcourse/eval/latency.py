"""Throughput and latency of generation: time to first token, tokens per second, percentiles.

What a user feels is **time to first token** (TTFT: queueing plus prefill) and then the
**inter-token** pace of decoding; what an operator pays for is **throughput**, tokens per second
over all requests. Averages hide the slow tail, so serving reports percentiles: p50 (the
median request) and p95 (the slowest one in twenty). Percentiles interpolate linearly between
order statistics, ``numpy.percentile``'s default (Hyndman & Fan 1996, definition 7).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolating between neighbours."""
    if not 0 <= q <= 100:
        raise ValueError(f"q is a percentage in [0, 100], got {q!r}.")
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("A percentile of no values is undefined; pass at least one.")
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencySummary:
    """Count, mean, median, 95th percentile and maximum of some durations (seconds)."""

    count: int
    mean: float
    p50: float
    p95: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("count", "mean", "p50", "p95", "max")}


def summarize_latencies(seconds: Sequence[float]) -> LatencySummary:
    """``LatencySummary`` of ``seconds``."""
    values = [float(s) for s in seconds]
    if not values:
        raise ValueError("No durations to summarise.")
    return LatencySummary(
        len(values),
        sum(values) / len(values),
        percentile(values, 50),
        percentile(values, 95),
        max(values),
    )


@dataclass(frozen=True)
class StreamTiming:
    """One generation: seconds to the first item, seconds in total, and items received."""

    time_to_first_token: float
    total: float
    n_tokens: int

    @property
    def tokens_per_second(self) -> float:
        """Decode pace after the first token: (n − 1) / (total − TTFT); 0 with < 2 tokens."""
        if self.n_tokens < 2 or self.total <= self.time_to_first_token:
            return 0.0
        return (self.n_tokens - 1) / (self.total - self.time_to_first_token)


def time_stream(tokens: Iterable[Any]) -> tuple[StreamTiming, list[Any]]:
    """Consume an iterator of generated pieces (``infer.stream``, an HTTP stream, ...), timing
    the first item and the end. Returns the timing and the items."""
    start = time.perf_counter()
    items, first = [], math.nan
    for item in tokens:
        if not items:
            first = time.perf_counter() - start
        items.append(item)
    total = time.perf_counter() - start
    return StreamTiming(first if items else total, total, len(items)), items
