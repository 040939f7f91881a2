"""Measuring a content filter on labelled text: precision, recall, F1 with intervals, and misses.

With "harmful" as the positive class and a filter's flags as predictions (van Rijsbergen 1979):

    precision = TP / (TP + FP)    of the texts it flagged, how many were harmful
    recall    = TP / (TP + FN)    of the harmful texts, how many it flagged
    F1        = 2 TP / (2 TP + FP + FN)

(a ratio with a zero denominator counts as 0, as in ``llmcourse.eval.precision_recall_f1``).
A held-out split of ~140 items makes each number noisy, so each comes with a 95% percentile
bootstrap interval over items (``llmcourse.ethics.stats.bootstrap_ci``; Efron 1979), drawn
with one seed: every metric and every filter is computed on the same resampled sets, and
``f1_difference`` gives the paired interval of F1(a) - F1(b) on those draws.

The simple proportions, recall within one harm category (~11 items) and the false-positive
rate on hard benign items, get Wilson score intervals (Wilson 1927) instead: a bootstrap of
11 items that were all caught always gives 11/11, a zero-width interval, while Wilson's says
how low the true rate could plausibly be. A bootstrap interval for recall or precision at
exactly 1.0 (or 0.0) has the same blind spot.

``misses`` lists the false negatives and false positives, so they can be read, not just
counted: what a filter misses says more about it than its F1.

``stored_report`` rebuilds a report from the ids a filter flagged in the last run of
``benchmarks/bench_safety.py --write`` (``data/safety_benchmark.json``): the peer,
alt-profanity-check, pins exact scikit-learn and joblib versions, so it runs only there, and
lessons read its decisions from the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmcourse.ethics.moderation import CATEGORIES, Moderator
from llmcourse.ethics.safety_data import SafetyItem, safety_set_hash
from llmcourse.ethics.stats import Estimate, bootstrap_ci

N_RESAMPLES = 2000
BENCHMARK_RESULTS = Path(__file__).with_name("data") / "safety_benchmark.json"


def binary_scores(rows: np.ndarray) -> np.ndarray:
    """``[precision, recall, f1]`` of rows ``(prediction, target)`` in {0, 1}, shape (n, 2)."""
    predicted, actual = rows[:, 0] > 0.5, rows[:, 1] > 0.5
    tp = float(np.sum(predicted & actual))
    fp = float(np.sum(predicted & ~actual))
    fn = float(np.sum(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return np.array([precision, recall, f1])


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Estimate:
    """The proportion ``successes / n`` and its Wilson score interval (Wilson 1927).

    centre = (p + z^2 / 2n) / (1 + z^2 / n)
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}.")
    from statistics import NormalDist

    z = NormalDist().inv_cdf((1 + level) / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), level)


@dataclass(frozen=True)
class FilterReport:
    """One filter's scores on a labelled split (see the module docstring)."""

    name: str
    precision: Estimate
    recall: Estimate
    f1: Estimate
    hard_benign_fpr: Estimate  # share of hard benign items flagged (Wilson)
    category_recall: dict[str, Estimate]  # per harm category (Wilson)
    predictions: tuple[int, ...]  # 1 = flagged, in the order of the items evaluated
    ids: tuple[str, ...]  # the items' ids, same order

    def row(self) -> dict[str, Any]:
        """A flat dict for a table or JSON: values and interval ends, rounded to 3 places."""
        out: dict[str, Any] = {"filter": self.name}
        for metric in ("precision", "recall", "f1", "hard_benign_fpr"):
            estimate = getattr(self, metric)
            out[metric] = round(estimate.value, 3)
            out[f"{metric}_low"] = round(estimate.low, 3)
            out[f"{metric}_high"] = round(estimate.high, 3)
        for category, estimate in self.category_recall.items():
            out[f"recall_{category}"] = round(estimate.value, 3)
        return out


def _check(predictions: Sequence[int], items: Sequence[SafetyItem]) -> np.ndarray:
    if len(predictions) != len(items):
        raise ValueError(f"{len(predictions)} predictions for {len(items)} items: give one each.")
    if not items:
        raise ValueError("No items to evaluate on; pass a non-empty split.")
    predictions = np.asarray(predictions, dtype=np.int64)
    if not np.isin(predictions, (0, 1)).all():
        raise ValueError("predictions must be 0 (allowed) or 1 (flagged).")
    return predictions


def evaluate_predictions(
    name: str,
    predictions: Sequence[int],
    items: Sequence[SafetyItem],
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> FilterReport:
    """Score 0/1 ``predictions`` (1 = flagged) against the labels of ``items``."""
    predicted = _check(predictions, items)
    targets = np.array([item.harmful for item in items], dtype=np.int64)
    rows = np.column_stack([predicted, targets]).astype(np.float64)
    estimates = [
        bootstrap_ci(
            rows,
            lambda r, k=k: binary_scores(r)[k],
            n_resamples=n_resamples,
            level=level,
            seed=seed,
        )
        for k in range(3)
    ]
    hard_benign = [p for p, i in zip(predicted, items, strict=True) if i.hard and not i.harmful]
    by_category = {}
    for category in CATEGORIES:
        caught = [p for p, i in zip(predicted, items, strict=True) if i.category == category]
        if caught:
            by_category[category] = wilson_interval(int(sum(caught)), len(caught), level)
    fpr = (
        wilson_interval(int(sum(hard_benign)), len(hard_benign), level)
        if hard_benign
        else Estimate(float("nan"), float("nan"), float("nan"), level)
    )
    return FilterReport(
        name,
        *estimates,
        hard_benign_fpr=fpr,
        category_recall=by_category,
        predictions=tuple(int(p) for p in predicted),
        ids=tuple(item.id for item in items),
    )


def evaluate(moderator: Moderator, items: Sequence[SafetyItem], **options: Any) -> FilterReport:
    """Run ``moderator`` on the items' texts and score it (options: ``evaluate_predictions``)."""
    predictions = moderator.predict([item.text for item in items])
    return evaluate_predictions(moderator.name, predictions, items, **options)


def f1_difference(
    a: FilterReport,
    b: FilterReport,
    items: Sequence[SafetyItem],
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """F1(a) - F1(b) with a paired bootstrap interval: both filters scored on each resample.

    An interval that excludes 0 says the difference is larger than resampling the items
    explains; two reports' separate intervals overlapping does not say the opposite.
    """
    if a.ids != b.ids or a.ids != tuple(item.id for item in items):
        raise ValueError("Both reports must come from the same items, in the same order.")
    targets = np.array([item.harmful for item in items], dtype=np.float64)
    rows = np.column_stack([a.predictions, b.predictions, targets]).astype(np.float64)

    def difference(r: np.ndarray) -> float:
        return float(binary_scores(r[:, [0, 2]])[2] - binary_scores(r[:, [1, 2]])[2])

    return bootstrap_ci(rows, difference, n_resamples=n_resamples, level=level, seed=seed)


@dataclass(frozen=True)
class Misses:
    """What a filter got wrong: harmful items it let through, benign items it flagged."""

    false_negatives: list[SafetyItem]
    false_positives: list[SafetyItem]


def misses(report: FilterReport | Sequence[int], items: Sequence[SafetyItem]) -> Misses:
    """The false negatives and false positives of a report (or of 0/1 predictions) on items."""
    if isinstance(report, FilterReport):
        if report.ids != tuple(item.id for item in items):
            raise ValueError("The report was computed on other items (or in another order).")
        predictions = report.predictions
    else:
        predictions = tuple(_check(report, items).tolist())
    pairs = list(zip(predictions, items, strict=True))
    return Misses(
        false_negatives=[item for p, item in pairs if item.harmful and not p],
        false_positives=[item for p, item in pairs if p and not item.harmful],
    )


def stored_benchmark(path: Path | None = None) -> dict[str, Any]:
    """The last ``bench_safety.py --write`` record, checked to be about the current set."""
    path = Path(path) if path is not None else BENCHMARK_RESULTS
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("safety_set") != safety_set_hash():
        raise ValueError(
            f"{path.name} was measured on safety set {record.get('safety_set')}, but the set is "
            f"now {safety_set_hash()}: rerun  python benchmarks/bench_safety.py --write"
        )
    return record


def stored_report(
    name: str, items: Sequence[SafetyItem], path: Path | None = None, **options: Any
) -> FilterReport:
    """A ``FilterReport`` for filter ``name`` from the ids it flagged in the stored benchmark."""
    rows = {row["filter"]: row for row in stored_benchmark(path)["filters"]}
    if name not in rows:
        raise KeyError(f"No stored row for {name!r}; stored: {', '.join(rows)}.")
    flagged = set(rows[name]["flagged_ids"])
    return evaluate_predictions(name, [int(i.id in flagged) for i in items], items, **options)
