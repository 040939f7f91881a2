"""Accuracy, precision, recall and F1 for predicted labels.

    accuracy = correct / total
    precision_c = TP_c / (TP_c + FP_c),   recall_c = TP_c / (TP_c + FN_c)
    F1_c = 2 · precision_c · recall_c / (precision_c + recall_c)  (van Rijsbergen 1979)

With several classes, ``average="macro"`` is the unweighted mean of the per-class F1 (every
class counts the same, so rare classes matter), ``"micro"`` pools the counts of all classes
(for single-label data it equals accuracy), ``"binary"`` reports the ``positive`` class only.
A ratio with a zero denominator counts as 0, as in scikit-learn's ``zero_division=0`` (tested
against it).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

Average = Literal["binary", "macro", "micro"]


def _check_pair(predictions: Sequence, targets: Sequence) -> None:
    if isinstance(predictions, str) or isinstance(targets, str):
        raise TypeError("Give sequences of labels, not a string.")
    if len(predictions) != len(targets):
        raise ValueError(
            f"{len(predictions)} predictions but {len(targets)} targets: one prediction per "
            "example."
        )
    if not targets:
        raise ValueError("Accuracy and F1 of zero examples are undefined; pass at least one.")


def accuracy(predictions: Sequence[Hashable], targets: Sequence[Hashable]) -> float:
    """Fraction of ``predictions`` equal to ``targets``."""
    _check_pair(predictions, targets)
    return sum(p == t for p, t in zip(predictions, targets, strict=True)) / len(targets)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(tp: int, fp: int, fn: int) -> float:
    # 2TP / (2TP + FP + FN) is the harmonic mean of precision and recall, without 0/0 cases.
    return _ratio(2 * tp, 2 * tp + fp + fn)


def precision_recall_f1(
    predictions: Sequence[Hashable],
    targets: Sequence[Hashable],
    average: Average = "macro",
    positive: Hashable = 1,
) -> tuple[float, float, float]:
    """``(precision, recall, f1)`` averaged as ``average`` says (see the module docstring).

    Macro averaging runs over the classes seen in either ``predictions`` or ``targets``.
    """
    _check_pair(predictions, targets)
    if average not in ("binary", "macro", "micro"):
        raise ValueError(f"average must be 'binary', 'macro' or 'micro', got {average!r}.")
    pairs = list(zip(predictions, targets, strict=True))
    if average == "binary":
        classes = [positive]
    else:
        classes = sorted(set(predictions) | set(targets), key=repr)
    counts = []
    for c in classes:
        tp = sum(p == c and t == c for p, t in pairs)
        fp = sum(p == c and t != c for p, t in pairs)
        fn = sum(p != c and t == c for p, t in pairs)
        counts.append((tp, fp, fn))
    if average == "micro":
        tp, fp, fn = (sum(column) for column in zip(*counts, strict=True))
        return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _f1(tp, fp, fn)
    precision = sum(_ratio(tp, tp + fp) for tp, fp, _ in counts) / len(counts)
    recall = sum(_ratio(tp, tp + fn) for tp, _, fn in counts) / len(counts)
    f1 = sum(_f1(*c) for c in counts) / len(counts)
    return precision, recall, f1


def f1_score(
    predictions: Sequence[Hashable],
    targets: Sequence[Hashable],
    average: Average = "macro",
    positive: Hashable = 1,
) -> float:
    """F1 alone (see ``precision_recall_f1``)."""
    return precision_recall_f1(predictions, targets, average, positive)[2]
