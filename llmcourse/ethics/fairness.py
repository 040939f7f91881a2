"""Group fairness of a classifier's decisions: demographic parity and equalised odds.

For binary predictions ``ŷ``, true labels ``y`` and a group attribute ``g``:

- **selection rate** of group ``a``: ``P(ŷ = 1 | g = a)``;
- **demographic parity difference**: the largest gap in selection rate between any two groups
  (0 = every group is selected equally often; Calders & Verwer 2010, Dwork et al. 2012);
- **equalised odds** (Hardt, Price & Srebro 2016): true-positive rates ``P(ŷ=1 | y=1, g)`` and
  false-positive rates ``P(ŷ=1 | y=0, g)`` equal across groups; the **equalised odds
  difference** is the larger of the TPR gap and the FPR gap (fairlearn's definition).

The criteria conflict: when base rates ``P(y = 1 | g)`` differ, a classifier cannot satisfy
both, nor calibration and equalised odds together except in trivial cases (Kleinberg et al.
2017; Chouldechova 2017). Which one matters depends on the decision being made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupRates:
    """Per-group counts and rates (NaN where a group has no positives / negatives)."""

    group: object
    count: int
    selection_rate: float
    true_positive_rate: float
    false_positive_rate: float


def _arrays(y_pred, groups, y_true=None):
    y_pred, groups = np.asarray(y_pred), np.asarray(groups)
    if y_pred.ndim != 1 or len(y_pred) == 0:
        raise ValueError("y_pred must be a non-empty 1-D list of 0/1 predictions.")
    if groups.shape != y_pred.shape:
        raise ValueError(f"groups has {groups.shape[0]} entries, y_pred {y_pred.shape[0]}.")
    if not np.isin(y_pred, (0, 1)).all():
        raise ValueError("y_pred must hold binary predictions (0 or 1); threshold scores first.")
    if y_true is not None:
        y_true = np.asarray(y_true)
        if y_true.shape != y_pred.shape or not np.isin(y_true, (0, 1)).all():
            raise ValueError("y_true must be binary (0/1) with one label per prediction.")
    if len(np.unique(groups)) < 2:
        raise ValueError("Fairness across groups needs at least two different groups.")
    return y_pred.astype(int), groups, None if y_true is None else y_true.astype(int)


def _rate(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def group_rates(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence) -> list[GroupRates]:
    """Selection rate, TPR and FPR of every group, in sorted group order."""
    y_pred, groups, y_true = _arrays(y_pred, groups, y_true)
    rows = []
    for group in np.unique(groups):
        member = groups == group
        rows.append(
            GroupRates(
                group=group.item() if hasattr(group, "item") else group,
                count=int(member.sum()),
                selection_rate=_rate(y_pred[member]),
                true_positive_rate=_rate(y_pred[member & (y_true == 1)]),
                false_positive_rate=_rate(y_pred[member & (y_true == 0)]),
            )
        )
    return rows


def demographic_parity_difference(y_pred: Sequence[int], groups: Sequence) -> float:
    """``max_a P(ŷ=1 | g=a) - min_a P(ŷ=1 | g=a)``."""
    y_pred, groups, _ = _arrays(y_pred, groups)
    rates = [y_pred[groups == g].mean() for g in np.unique(groups)]
    return float(max(rates) - min(rates))


def equalized_odds_difference(
    y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence
) -> float:
    """``max(TPR gap, FPR gap)`` over groups (each gap: max minus min across groups)."""
    rows = group_rates(y_true, y_pred, groups)
    tpr = [r.true_positive_rate for r in rows]
    fpr = [r.false_positive_rate for r in rows]
    if np.isnan(tpr).any() or np.isnan(fpr).any():
        raise ValueError(
            "Every group needs both positive and negative examples (y_true 1 and 0) for "
            "equalised odds."
        )
    return float(max(max(tpr) - min(tpr), max(fpr) - min(fpr)))
