"""Is system A better than system B on this test set? Paired bootstrap resampling of sentences.

Corpus BLEU and chrF are not means of per-sentence scores: each is a function of counts summed
over the corpus. Koehn (2004, "Statistical Significance Tests for Machine Translation
Evaluation") resamples the test sentences with replacement, recomputes the corpus score of each
system on the same resample, and reads intervals off the resampled scores and their paired
differences. Here each sentence's counts are computed once (``bleu_statistics``,
``chrf_statistics``), so a resample is a sum of rows: a thousand resamples of a few hundred
lines take well under a second.

A difference is called real when its interval excludes zero; the interval covers how much
*these sentences* could have moved the scores, not other choices (another test play, another
training seed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from llmcourse.eval.bleu import bleu_from_statistics, bleu_statistics
from llmcourse.eval.chrf import chrf_from_statistics, chrf_statistics

Metric = Literal["bleu", "chrf"]
_STATISTICS: dict[str, tuple[Callable, Callable]] = {
    "bleu": (bleu_statistics, lambda row: bleu_from_statistics(row).score),
    "chrf": (chrf_statistics, lambda row: chrf_from_statistics(row).score),
}


@dataclass(frozen=True)
class Interval:
    """A corpus score (or difference of scores) with its bootstrap interval."""

    value: float
    low: float
    high: float
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.value:.1f} [{self.low:.1f}, {self.high:.1f}]"


@dataclass(frozen=True)
class SystemComparison:
    """``scores[name]`` for each system; ``differences[name]`` = that system minus ``baseline``,
    paired (both scored on every resample)."""

    metric: str
    baseline: str
    scores: dict[str, Interval]
    differences: dict[str, Interval]


def compare_systems(
    systems: Mapping[str, Sequence[str]],
    references: Sequence[Sequence[str]],
    metric: Metric = "bleu",
    baseline: str | None = None,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> SystemComparison:
    """Corpus ``metric`` of each system's hypotheses, with paired percentile bootstrap intervals.

    ``systems`` maps a name to hypotheses (one per test sentence); ``references`` are reference
    streams as for ``bleu``; ``baseline`` (default: the first system) is what the differences
    are taken against.
    """
    if metric not in _STATISTICS:
        raise ValueError(f"metric must be 'bleu' or 'chrf', got {metric!r}.")
    if not systems:
        raise ValueError("Give at least one system: {'name': [hypothesis, ...]}.")
    baseline = next(iter(systems)) if baseline is None else baseline
    if baseline not in systems:
        raise ValueError(f"baseline {baseline!r} is not one of the systems {list(systems)}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}.")
    n = len(references[0]) if references else 0
    for name, hypotheses in systems.items():
        if isinstance(hypotheses, str) or len(hypotheses) != n or n == 0:
            raise ValueError(
                f"System {name!r} needs one hypothesis per reference sentence ({n}), got "
                f"{'a string' if isinstance(hypotheses, str) else len(hypotheses)}."
            )
    sentence_statistics, score = _STATISTICS[metric]
    rows = {
        name: np.array(
            [sentence_statistics(h, [s[i] for s in references]) for i, h in enumerate(hyps)],
            dtype=np.int64,
        )
        for name, hyps in systems.items()
    }
    index = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    draws = {
        name: np.array([score(sums) for sums in table[index].sum(axis=1)])
        for name, table in rows.items()
    }
    quantiles = [(1 - level) / 2, (1 + level) / 2]

    def interval(value: float, samples: np.ndarray) -> Interval:
        low, high = np.quantile(samples, quantiles)
        return Interval(float(value), float(low), float(high), level)

    full = {name: score(table.sum(axis=0)) for name, table in rows.items()}
    return SystemComparison(
        metric,
        baseline,
        {name: interval(full[name], draws[name]) for name in systems},
        {
            name: interval(full[name] - full[baseline], draws[name] - draws[baseline])
            for name in systems
            if name != baseline
        },
    )
