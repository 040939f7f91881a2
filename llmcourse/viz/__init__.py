"""Plots and ipywidgets explorers for the lessons (import the submodules directly).

``llmcourse.viz.set_theme()`` gives every lesson's figures the same look (seaborn, colour-blind
palette); lessons call it once after their imports.
"""

from llmcourse.viz.theme import HEATMAP_CMAP, set_theme

__all__ = ["HEATMAP_CMAP", "set_theme"]
