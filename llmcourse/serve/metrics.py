"""Server counters for ``/metrics``: requests, tokens, latency percentiles, batch sizes.

Updated from two threads (the HTTP event loop and the engine), so every change holds a lock.
Latencies keep the most recent ``window`` requests: percentiles describe current behaviour,
and memory stays bounded however long the server runs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

from llmcourse.eval.latency import summarize_latencies


class Metrics:
    """Counters a server exposes; ``snapshot()`` is the ``/metrics`` JSON."""

    def __init__(self, window: int = 1000) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests_by_status: Counter[int] = Counter()
        self.in_flight = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.prefills = 0
        self.decode_steps = 0
        self.finish_reasons: Counter[str] = Counter()  # "stop", "length", "cancelled", "error"
        self.batch_sizes: Counter[int] = Counter()  # decode steps per batch size
        self.latencies: deque[float] = deque(maxlen=window)
        self.ttfts: deque[float] = deque(maxlen=window)

    def request_started(self) -> None:
        """A request's body is in: from now on it counts toward ``max_concurrency``."""
        with self._lock:
            self.in_flight += 1

    def request_finished(self, status: int, seconds: float, started: bool = True) -> None:
        """A request was answered; ``started=False`` for one refused before its body was in."""
        with self._lock:
            self.in_flight -= started
            self.requests_by_status[status] += 1
            if status < 400:
                self.latencies.append(seconds)

    def record_ttft(self, seconds: float) -> None:
        with self._lock:
            self.ttfts.append(seconds)

    def record_prefill(self, n_requests: int, n_tokens: int) -> None:
        with self._lock:
            self.prefills += 1
            self.prompt_tokens += n_tokens

    def record_step(self, batch_size: int) -> None:
        with self._lock:
            self.decode_steps += 1
            self.batch_sizes[batch_size] += 1

    def record_finish(self, reason: str, n_tokens: int) -> None:
        with self._lock:
            self.finish_reasons[reason] += 1
            self.completion_tokens += n_tokens

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            steps = sum(self.batch_sizes.values())
            mean_batch = sum(b * n for b, n in self.batch_sizes.items()) / steps if steps else 0.0
            return {
                "uptime_seconds": round(time.time() - self.started, 3),
                "requests_total": sum(self.requests_by_status.values()),
                "requests_by_status": {
                    str(k): v for k, v in sorted(self.requests_by_status.items())
                },
                "requests_in_flight": self.in_flight,
                "prompt_tokens_total": self.prompt_tokens,
                "completion_tokens_total": self.completion_tokens,
                "generations_by_finish_reason": dict(sorted(self.finish_reasons.items())),
                "prefill_batches_total": self.prefills,
                "decode_steps_total": self.decode_steps,
                "decode_batch_size_mean": round(mean_batch, 3),
                "decode_batch_size_max": max(self.batch_sizes, default=0),
                "decode_steps_by_batch_size": {
                    str(k): v for k, v in sorted(self.batch_sizes.items())
                },
                "latency_seconds": _summary(self.latencies),
                "time_to_first_token_seconds": _summary(self.ttfts),
            }


def _summary(values: deque[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {k: round(v, 4) for k, v in summarize_latencies(list(values)).as_dict().items()}
