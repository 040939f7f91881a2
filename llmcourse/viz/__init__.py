"""Plots and ipywidgets explorers for the lessons (import the submodules directly).

- ``theme``: ``set_theme()``, the one look of every lesson's figures (seaborn, colour-blind
  palette), called once after a lesson's imports; exported here as ``llmcourse.viz.set_theme``;
- ``attention``: ``AttentionExplorer`` and attention-map plots of any llmcourse model;
- ``positional``: sinusoidal encodings, RoPE's decay with distance, ALiBi's penalties;
- ``scaling``: ``ScalingExplorer``, compute-optimal models against published ones;
- ``tokens``: ``TokenExplorer``, text coloured by token;
- ``training``: ``LivePlot``, metric curves that redraw while a model trains;
- ``theme``: ``set_theme()`` gives every lesson's figures the same look (seaborn, colour-blind
  palette); lessons call it once after their imports.
"""

from llmcourse.viz.theme import HEATMAP_CMAP, set_theme

__all__ = ["HEATMAP_CMAP", "set_theme"]
