"""ScalingExplorer without a browser: build it, move the slider, read the numbers and the figure."""

from __future__ import annotations

import numpy as np
import pytest

from llmcourse.models.counting import count_parameters
from llmcourse.models.zoo import get_config
from llmcourse.scaling import EPOCH, METHODS, compute_optimal
from llmcourse.viz.scaling import GOPHER_FLOPS, ScalingExplorer, published_models

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def explorer() -> ScalingExplorer:
    return ScalingExplorer()


def _chosen_isoflop_minimum(explorer: ScalingExplorer) -> float:
    (line,) = [line for line in explorer.isoflop_axes.lines if line.get_gid() == "chosen-isoflop"]
    sizes, losses = line.get_data()
    return float(sizes[np.argmin(losses)])


def test_opens_on_gophers_budget_with_every_law(explorer):
    """At Gopher's 5.76e23 FLOPs the table shows Approach 1's 67.8B and Approach 3's 40.3B."""
    assert explorer.compute.value == pytest.approx(GOPHER_FLOPS)
    for method in METHODS:
        expected = compute_optimal(GOPHER_FLOPS, method)
        assert explorer.optima[method].n_params == pytest.approx(expected.n_params)
        assert explorer.optima[method].loss == pytest.approx(expected.loss)
    table = explorer.table.value
    assert "67.8B" in table and "40.3B" in table and "72.2B" in table
    assert "Kaplan" in table and "PF-days" in table
    assert bytes(explorer.image.value).startswith(PNG_SIGNATURE)


def test_moving_the_slider_updates_numbers_and_figure():
    explorer = ScalingExplorer()
    first_image = explorer.image.value
    explorer.compute.value = 1e22
    for method in METHODS:
        expected = compute_optimal(1e22, method)
        assert explorer.optima[method].n_params == pytest.approx(expected.n_params)
        assert explorer.optima[method].n_tokens == pytest.approx(expected.n_tokens)
    assert "C = 1e+22 FLOPs" in explorer.table.value
    assert explorer.image.value != first_image
    # The highlighted isoFLOP valley now bottoms out at the new optimum (200-point grid: ±5%).
    closed_form = compute_optimal(1e22, "chinchilla-3").n_params
    assert _chosen_isoflop_minimum(explorer) == pytest.approx(closed_form, rel=0.05)
    # Each law's current optimum is marked on the allocation plane.
    marked = {
        (float(np.ravel(line.get_xdata())[0]), float(np.ravel(line.get_ydata())[0]))
        for line in explorer.allocation_axes.lines
        if line.get_marker() == "o"
    }
    for optimum in explorer.optima.values():
        n, d = optimum.n_params, optimum.n_tokens
        assert any(np.isclose(x, n) and np.isclose(y, d) for x, y in marked), optimum.method


def test_fit_dropdown_redraws_the_isoflop_curves():
    explorer = ScalingExplorer(compute_flops=1e23)
    explorer.fit.value = "epoch"
    assert "epoch" in explorer.isoflop_axes.get_ylabel()
    epoch_optimum, _ = EPOCH.compute_optimal(1e23)
    assert _chosen_isoflop_minimum(explorer) == pytest.approx(epoch_optimum, rel=0.05)


def test_published_models_use_zoo_counts_and_card_tokens():
    points = {name: (n_params, n_tokens) for name, n_params, n_tokens in published_models()}
    assert points["GPT-3"] == (count_parameters(get_config("gpt3-175b")), 300e9)
    assert points["Chinchilla 70B"] == (70e9, 1.4e12)
    assert points["Gopher 280B"] == (280e9, 300e9)
    assert "BERT-Base" not in points  # encoders are not language-model scaling runs


def test_custom_models_are_placed_and_listed():
    explorer = ScalingExplorer(models=[("my tiny GPT", 1.2e6, 3.0e7)])
    texts = [text.get_text() for text in explorer.allocation_axes.texts]
    assert texts == ["my tiny GPT"]
    assert "my tiny GPT" in explorer.models_table.value and "25.0" in explorer.models_table.value


def test_plots_are_titled_and_labelled(explorer):
    for axes in (explorer.isoflop_axes, explorer.allocation_axes):
        assert axes.get_title() and axes.get_xlabel() and axes.get_ylabel()
    assert "nats/token" in explorer.isoflop_axes.get_ylabel()
    controls, table, image, models_table = explorer.widget.children
    assert explorer.compute in controls.children and explorer.fit in controls.children
    assert (table, image, models_table) == (explorer.table, explorer.image, explorer.models_table)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"compute_flops": 1e30}, ValueError, "between 1e18 and 1e27"),
        ({"fit": "kaplan"}, ValueError, "chinchilla-printed"),
        ({"models": [("half a model", 1e6)]}, TypeError, "name, n_params, n_tokens"),
        ({"models": [("negative", -1.0, 1e9)]}, ValueError, "must be positive"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        ScalingExplorer(**kwargs)
