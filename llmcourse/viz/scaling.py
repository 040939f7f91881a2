"""ScalingExplorer: pick a compute budget, see the compute-optimal model under each scaling law.

The widget shows, for the budget on its slider,

- a table of the optimal parameters N, tokens D, tokens per parameter and predicted loss under
  Chinchilla Approach 1 and 3 (Hoffmann et al. 2022), the Epoch AI refit (Besiroglu et al.
  2024) and Kaplan et al. 2020, with the training time on a reference cluster;
- isoFLOP curves (left): the loss of every model size trained with the same compute, for the
  chosen budget and two decades either side; each valley's floor is the optimum;
- the (N, D) plane (right): each law's optimum as the budget grows, the line 6ND = C of the
  chosen budget, and published models (the zoo's decoders and Hoffmann et al.'s Table 1).

All numbers come from ``llmcourse.scaling``; this module only draws them. It works without a
browser: ``explorer.compute.value = 1e22`` updates ``explorer.optima``, the table and the
figure, which tests inspect directly.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from numbers import Real

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llmcourse.models import zoo
from llmcourse.models.counting import count_parameters
from llmcourse.scaling import (
    CHINCHILLA_TABLE_1_RUNS,
    FITS,
    METHODS,
    PF_DAY,
    SECONDS_PER_DAY,
    ComputeOptimal,
    compute_optimal,
    get_accelerator,
    isoflop_curve,
    training_time,
)

ModelPoint = tuple[str, float, float]  # (name, parameters, training tokens)

LOG10_COMPUTE_RANGE = (18.0, 27.0)
GOPHER_FLOPS = 5.76e23  # Hoffmann et al. 2022, Table 3
CLUSTER = {"accelerator": "h100", "n_gpus": 1024, "mfu": 0.4}
_LABELS = {
    "chinchilla-1": "Chinchilla, Approach 1",
    "chinchilla-3": "Chinchilla, Approach 3",
    "epoch": "Epoch AI refit",
    "kaplan": "Kaplan et al. 2020*",
}
_COLOURS = {"chinchilla-1": "C0", "chinchilla-3": "C1", "epoch": "C2", "kaplan": "C3"}
# Widget HTML gets none of JupyterLab's table styling: without spacing the columns run together
# ("20.9 1.921" reads as one cell).
_TABLE = '<table style="border-collapse: separate; border-spacing: 14px 2px; margin-left: -14px">'


def published_models() -> list[ModelPoint]:
    """(name, N, D) for Hoffmann et al. 2022's Table 1 runs and the zoo's decoder LMs.

    For zoo models N is the exact count of the architecture (``count_parameters``) and D the
    paper's token count (``get_card``); zoo models without a published count are left out.
    """
    points = [(run.name, run.n_params, run.n_tokens) for run in CHINCHILLA_TABLE_1_RUNS]
    for name in zoo.names():
        card = zoo.get_card(name)
        config = zoo.get_config(name)
        if config.architecture == "decoder" and card.training_tokens is not None:
            points.append((card.title, float(count_parameters(config)), card.training_tokens))
    return points


class ScalingExplorer:
    """Compute budget slider → optimal N and D under each law, loss, isoFLOP curves, models.

    ``models`` is a list of ``(name, n_params, n_tokens)`` to place on the (N, D) plane
    (default: ``published_models()``); ``fit`` picks the Approach-3-style fit that draws the
    isoFLOP curves ("chinchilla", "chinchilla-printed" or "epoch"). Display the explorer as the
    last expression of a notebook cell.
    """

    def __init__(
        self,
        compute_flops: float = GOPHER_FLOPS,
        models: Sequence[ModelPoint] | None = None,
        fit: str = "chinchilla",
    ) -> None:
        low, high = LOG10_COMPUTE_RANGE
        if not isinstance(compute_flops, Real) or not 10**low <= compute_flops <= 10**high:
            raise ValueError(
                f"compute_flops must be between 1e{low:.0f} and 1e{high:.0f} FLOPs, "
                f"got {compute_flops!r}."
            )
        if fit not in FITS:
            raise ValueError(f"Unknown fit {fit!r}; choose one of {', '.join(FITS)}.")
        self.models = _checked_models(published_models() if models is None else models)
        self.compute = widgets.FloatLogSlider(
            value=compute_flops,
            base=10,
            min=low,
            max=high,
            step=0.05,
            description="Compute (FLOPs)",
            readout_format=".2e",
            continuous_update=False,
            style={"description_width": "initial"},
            layout=widgets.Layout(width="520px"),
        )
        self.fit = widgets.Dropdown(
            options=list(FITS), value=fit, description="isoFLOP fit", layout={"width": "260px"}
        )
        self.table = widgets.HTML()
        # Shown at the size it is drawn (the VBox would stretch it to the page width, blurred).
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
        self.models_table = widgets.HTML(_models_html(self.models))
        self.figure = Figure(figsize=(11.5, 4.6), layout="constrained")
        FigureCanvasAgg(self.figure)
        self.isoflop_axes, self.allocation_axes = self.figure.subplots(1, 2)
        self.optima: dict[str, ComputeOptimal] = {}
        controls = widgets.HBox([self.compute, self.fit])
        self.widget = widgets.VBox([controls, self.table, self.image, self.models_table])
        self.compute.observe(self._refresh, names="value")
        self.fit.observe(self._refresh, names="value")
        self._refresh()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _refresh(self, _change: dict | None = None) -> None:
        budget = float(self.compute.value)
        self.optima = {method: compute_optimal(budget, method) for method in METHODS}
        self.table.value = self._table_html(budget)
        self._draw_isoflops(budget)
        self._draw_allocations(budget)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=80)
        self.image.value = buffer.getvalue()

    def _table_html(self, budget: float) -> str:
        accelerator = get_accelerator(CLUSTER["accelerator"])
        days = (
            training_time(budget, CLUSTER["n_gpus"], accelerator, CLUSTER["mfu"]) / SECONDS_PER_DAY
        )
        rows = "".join(
            f"<tr><td>{_LABELS[method]}</td><td>{_human(optimum.n_params)}</td>"
            f"<td>{_human(optimum.n_tokens)}</td><td>{optimum.tokens_per_parameter:.1f}</td>"
            f"<td>{optimum.loss:.3f}</td></tr>"
            for method, optimum in self.optima.items()
        )
        return (
            f"<b>C = {budget:.3g} FLOPs</b> = {budget / PF_DAY:.3g} PF-days ≈ {days:.3g} days on "
            f"{CLUSTER['n_gpus']:,} {accelerator.name} at {CLUSTER['mfu']:.0%} MFU"
            f"{_TABLE}<tr><th>law</th><th>parameters N</th><th>tokens D</th><th>D/N</th>"
            f"<th>predicted loss (nats/token)</th></tr>{rows}</table>"
            "<small>* Kaplan's N excludes embeddings and its loss is on WebText2 (eq. 1.3), so "
            "it does not compare with the others. Both Chinchilla rows use the Approach-3 fit "
            "for the loss.</small>"
        )

    def _draw_isoflops(self, budget: float) -> None:
        axes = self.isoflop_axes
        axes.clear()
        fit = FITS[self.fit.value]
        for decade in (-2, -1, 0, 1, 2):
            flops = budget * 10.0**decade
            n_opt, _ = fit.compute_optimal(flops)
            sizes = np.geomspace(n_opt / 100, n_opt * 100, 200)
            chosen = decade == 0
            axes.plot(
                sizes,
                isoflop_curve(flops, sizes, fit=fit.name),
                color="black" if chosen else "0.6",
                linewidth=2.2 if chosen else 1.0,
                label=f"C = {flops:.1e}" if chosen else None,
                gid="chosen-isoflop" if chosen else None,
            )
            axes.plot(n_opt, fit.loss(n_opt, flops / (6 * n_opt)), ".", color="0.3")
        for method, optimum in self.optima.items():
            if method == "kaplan":
                continue  # Kaplan's N is non-embedding and its loss another dataset's
            n = optimum.n_params
            axes.plot(
                n,
                fit.loss(n, budget / (6 * n)),
                "o",
                color=_COLOURS[method],
                markersize=8,
                label=f"{_LABELS[method]}: N = {_human(n)}",
            )
        axes.set_xscale("log")
        axes.set_xlabel("parameters N")
        axes.set_ylabel(f"predicted loss, {fit.name} fit (nats/token)")
        axes.set_title("isoFLOP curves: same compute, different model sizes")
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)

    def _draw_allocations(self, budget: float) -> None:
        axes = self.allocation_axes
        axes.clear()
        budgets = np.geomspace(10 ** LOG10_COMPUTE_RANGE[0], 10 ** LOG10_COMPUTE_RANGE[1], 50)
        for method in METHODS:
            path = compute_optimal(budgets, method)
            axes.plot(path.n_params, path.n_tokens, color=_COLOURS[method], label=_LABELS[method])
            here = self.optima[method]
            axes.plot(here.n_params, here.n_tokens, "o", color=_COLOURS[method], markersize=8)
        sizes = np.geomspace(1e7, 1e14, 50)
        axes.plot(sizes, budget / (6 * sizes), "k--", linewidth=1, label="6ND = C")
        labelled: list[tuple[float, float]] = []
        for name, n_params, n_tokens in self.models:
            axes.plot(n_params, n_tokens, "k^", markersize=5)
            position = (np.log10(n_params), np.log10(n_tokens))
            # A label runs about a decade to the right and a quarter decade up; skip labels
            # that would overprint one already drawn (the table under the figure names all).
            if all(abs(position[0] - x) > 1.0 or abs(position[1] - y) > 0.3 for x, y in labelled):
                labelled.append(position)
                axes.annotate(
                    name,
                    (n_params, n_tokens),
                    xytext=(3, 2),
                    textcoords="offset points",
                    fontsize=7,
                )
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlim(1e7, 1e14)
        axes.set_ylim(1e8, 1e15)
        axes.set_xlabel("parameters N")
        axes.set_ylabel("training tokens D")
        axes.set_title("compute-optimal allocation and published models")
        axes.legend(fontsize=8, loc="upper left")
        axes.grid(alpha=0.3)


def _checked_models(models: Sequence[ModelPoint]) -> list[ModelPoint]:
    checked = []
    for point in models:
        if not isinstance(point, (tuple, list)) or len(point) != 3 or not isinstance(point[0], str):
            raise TypeError(f"Each model must be (name, n_params, n_tokens), got {point!r}.")
        name, n_params, n_tokens = point
        if not (float(n_params) > 0 and float(n_tokens) > 0):
            raise ValueError(f"{name}: parameters and tokens must be positive, got {point!r}.")
        checked.append((name, float(n_params), float(n_tokens)))
    return checked


def _models_html(models: list[ModelPoint]) -> str:
    rows = "".join(
        f"<tr><td>{name}</td><td>{_human(n)}</td><td>{_human(d)}</td><td>{d / n:.1f}</td>"
        f"<td>{6 * n * d:.2e}</td></tr>"
        for name, n, d in sorted(models, key=lambda model: 6 * model[1] * model[2])
    )
    return (
        f"<b>Models on the plot</b>{_TABLE}<tr><th>model</th><th>parameters N</th>"
        f"<th>tokens D</th><th>D/N</th><th>6ND (FLOPs)</th></tr>{rows}</table>"
    )


def _human(value: float) -> str:
    """1.42e12 -> '1.42T', 6.7e10 -> '67B', 1.35e8 -> '135M'."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"
