"""The course theme: one call styles matplotlib through seaborn, and heatmaps stay grid-free."""

import matplotlib
import matplotlib.pyplot as plt
import torch

from llmcourse.viz import set_theme
from llmcourse.viz.attention import plot_attention
from llmcourse.viz.positional import plot_sinusoidal

matplotlib.use("Agg")


def test_set_theme_styles_matplotlib_and_takes_overrides():
    with matplotlib.rc_context():
        set_theme()
        assert matplotlib.rcParams["axes.grid"] is True
        assert matplotlib.rcParams["figure.dpi"] == 100
        set_theme(style="ticks")
        assert matplotlib.rcParams["axes.grid"] is False


def test_heatmaps_draw_no_grid_over_the_image_under_the_theme():
    with matplotlib.rc_context():
        set_theme()
        ax = plot_attention(torch.eye(3), ["a", "b", "c"])
        assert not any(line.get_visible() for line in ax.get_xgridlines())
        ax = plot_sinusoidal(16, 8)
        assert not any(line.get_visible() for line in ax.get_ygridlines())
    plt.close("all")
