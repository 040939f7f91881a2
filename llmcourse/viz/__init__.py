"""Plots and ipywidgets explorers for the lessons (import the submodules directly)."""
