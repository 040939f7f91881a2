"""One look for every lesson's plots: ``set_theme()`` once, after the imports.

seaborn's ``whitegrid`` style with its colour-blind-safe palette (Wong 2011's eight colours, as
seaborn ships them), at a size that reads on a laptop screen. seaborn is imported only when the
theme is set, so the plotting modules stay importable without it.
"""

from __future__ import annotations

from typing import Any

# Heatmaps in the lessons share this colour map: perceptually uniform, and readable in grey.
HEATMAP_CMAP = "viridis"


def set_theme(**overrides: Any) -> None:
    """Apply the course theme to matplotlib (and seaborn); ``overrides`` go to
    ``seaborn.set_theme`` (e.g. ``font_scale=1.2``)."""
    import seaborn as sns

    options: dict[str, Any] = {
        "context": "notebook",
        "style": "whitegrid",
        "palette": "colorblind",
        "font_scale": 0.9,
        "rc": {"figure.dpi": 100, "axes.titleweight": "bold", "figure.autolayout": False},
    }
    options.update(overrides)
    sns.set_theme(**options)
