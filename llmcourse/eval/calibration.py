"""Calibration: does a model that says "80% sure" get 80% of those answers right?

Group predictions into ``M`` equal-width bins by confidence. In bin ``B_m`` compare the mean
confidence ``conf(B_m)`` with the fraction answered correctly ``acc(B_m)``:

    ECE = Σ_m (|B_m| / n) · |acc(B_m) − conf(B_m)|

the **expected calibration error** (Naeini, Cooper & Hauskrecht 2015; Guo et al. 2017, "On
Calibration of Modern Neural Networks", eq. 3, 15 bins). 0 is perfectly calibrated. A
**reliability diagram** plots ``acc(B_m)`` against ``conf(B_m)``: bars under the diagonal are
over-confident bins. Bins are ``(lo, hi]`` (the first includes 0), as in Guo et al.'s code.

Equal-width bins leave most bins empty when confidences crowd together (four-way questions
never give a confidence below 0.25, and small models often sit near 1), so a diagram of a few
hundred answers can rest on two or three bins. ``binning="mass"`` puts the edges at quantiles
of the confidences instead, so every bin holds about ``n / M`` answers (the "adaptive" bins of
Nixon et al. 2019, "Measuring Calibration in Deep Learning"); the ECE then weighs every part of
the data equally instead of every part of [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin statistics: ``edges`` ``(M+1,)``; ``confidence``, ``accuracy`` (NaN for empty
    bins) and ``count`` ``(M,)``."""

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error from these bins."""
        filled = self.count > 0
        weights = self.count[filled] / self.count.sum()
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((weights * gaps).sum())

    def plot(self, ax: Any = None, title: str = "Reliability diagram", min_count: int = 5) -> Any:
        """Accuracy per confidence bin next to the diagonal of perfect calibration.

        Equal-width bins are drawn as bars, labelled with their number of answers; bins with
        fewer than ``min_count`` are hatched and pale, since their accuracy is too noisy to
        read, and a dot marks each bin's mean confidence on the diagonal. Equal-mass bins
        (unequal widths) are drawn as points at (mean confidence, accuracy) with a 95% normal
        interval, ``±1.96·√(acc(1 − acc)/n)``, because bars of very different widths mislead.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        width = np.diff(self.edges)
        filled = self.count > 0
        if np.allclose(width, width[0]):
            self._bars(ax, width, min_count)
        else:
            acc, n = self.accuracy[filled], self.count[filled]
            half = 1.96 * np.sqrt(acc * (1 - acc) / n)
            per_bin = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
            ax.errorbar(
                self.confidence[filled],
                acc,
                yerr=half,
                fmt="o-",
                color="C0",
                capsize=3,
                label=f"accuracy in bin (95% interval; {per_bin} per bin)",
            )
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (probability of the chosen answer)",
            ylabel="accuracy (fraction correct)",
            title=f"{title} (ECE = {self.ece:.3f})",
        )
        ax.legend(loc="upper left")
        return ax

    def _bars(self, ax: Any, width: np.ndarray, min_count: int) -> None:
        for filled, style in (
            (self.count >= min_count, {"alpha": 0.9, "label": "accuracy in bin"}),
            (
                (self.count > 0) & (self.count < min_count),
                {"alpha": 0.35, "hatch": "//", "label": f"fewer than {min_count} answers"},
            ),
        ):
            if filled.any():
                ax.bar(
                    self.edges[:-1][filled],
                    self.accuracy[filled],
                    width=width[filled],
                    align="edge",
                    edgecolor="black",
                    color="C0",
                    **style,
                )
        filled = self.count > 0
        for left, w, acc, n in zip(
            self.edges[:-1][filled],
            width[filled],
            self.accuracy[filled],
            self.count[filled],
            strict=True,
        ):
            ax.annotate(
                str(int(n)),
                (left + w / 2, acc),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.plot(
            self.confidence[filled],
            self.confidence[filled],
            "o",
            color="C3",
            markersize=4,
            label="mean confidence in bin",
        )


def _as_arrays(confidences: Sequence[float], correct: Sequence[bool]) -> tuple:
    conf = np.asarray(confidences, dtype=np.float64)
    hits = np.asarray(correct, dtype=np.float64)
    if conf.ndim != 1 or conf.shape != hits.shape:
        raise ValueError(
            f"confidences and correct must be 1-D and equally long, got shapes {conf.shape} "
            f"and {hits.shape}."
        )
    if conf.size == 0:
        raise ValueError("Calibration of zero predictions is undefined; pass at least one.")
    if np.any((conf < 0) | (conf > 1)) or np.isnan(conf).any():
        raise ValueError("confidences are probabilities: every value must lie in [0, 1].")
    return conf, hits


Binning = Literal["width", "mass"]


def reliability_diagram(
    confidences: Sequence[float],
    correct: Sequence[bool],
    n_bins: int = 15,
    binning: Binning = "width",
) -> ReliabilityDiagram:
    """Bin predictions by confidence: ``n_bins`` equal-width bins over [0, 1], or with
    ``binning="mass"`` bins holding equal numbers of predictions (see the module docstring)."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}.")
    if binning not in ("width", "mass"):
        raise ValueError(f"binning must be 'width' or 'mass', got {binning!r}.")
    conf, hits = _as_arrays(confidences, correct)
    if binning == "width":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        # Quantile edges; 0 and 1 at the ends so every confidence falls in a bin, and ties
        # merged (a repeated edge would make an empty bin).
        inner = np.quantile(conf, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
        edges = np.unique(np.concatenate([[0.0], inner, [1.0]]))
        n_bins = len(edges) - 1
    # Bin m holds (edges[m], edges[m+1]]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(index, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(index, weights=hits, minlength=n_bins) / count
    return ReliabilityDiagram(edges, mean_conf, mean_acc, count)


def expected_calibration_error(
    confidences: Sequence[float],
    correct: Sequence[bool],
    n_bins: int = 15,
    binning: Binning = "width",
) -> float:
    """ECE (see the module docstring): ``confidences`` in [0, 1], ``correct`` booleans."""
    return reliability_diagram(confidences, correct, n_bins, binning).ece
