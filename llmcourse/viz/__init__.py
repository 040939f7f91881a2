"""Plots and ipywidgets explorers for the lessons (import the submodules directly).

- ``attention``: ``AttentionExplorer`` and attention-map plots of any llmcourse model;
- ``positional``: sinusoidal encodings, RoPE's decay with distance, ALiBi's penalties;
- ``scaling``: ``ScalingExplorer``, compute-optimal models against published ones;
- ``tokens``: ``TokenExplorer``, text coloured by token;
- ``training``: ``LivePlot``, metric curves that redraw while a model trains.
"""
