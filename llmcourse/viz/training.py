"""A live training plot for notebooks: loss curves redrawn in place as the run goes on."""

from __future__ import annotations

import time
from collections import defaultdict

import matplotlib.pyplot as plt


class LivePlot:
    """Redraw metric curves in one notebook output while a loop runs.

    ``plot.update(step, train_loss=2.1, val_loss=2.3)`` records the values and, at most every
    ``every_s`` seconds, redraws; ``plot.close()`` draws the final state. Outside a notebook it
    only records (``history``), so the same training code runs in scripts.
    """

    def __init__(
        self,
        title: str = "Training",
        ylabel: str = "loss (nats/token)",
        every_s: float = 1.0,
        logy: bool = False,
    ) -> None:
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.title, self.ylabel, self.every_s, self.logy = title, ylabel, every_s, logy
        self._last_draw = 0.0
        self._handle = None
        self._figure = None
        if _in_notebook():
            from IPython.display import display

            self._figure, self._axes = plt.subplots(figsize=(7, 3.5))
            plt.close(self._figure)  # shown through the display handle, not by pyplot
            self._handle = display(self._figure, display_id=True)

    def update(self, step: int, **metrics: float) -> None:
        for name, value in metrics.items():
            if value is not None:
                self.history[name].append((step, float(value)))
        if self._handle is not None and time.monotonic() - self._last_draw >= self.every_s:
            self._draw()

    def close(self) -> None:
        if self._handle is not None:
            self._draw()

    def _draw(self) -> None:
        axes = self._axes
        axes.clear()
        for name, points in self.history.items():
            steps, values = zip(*points, strict=True)
            axes.plot(steps, values, label=name, marker="o" if len(points) < 30 else None)
        axes.set_title(self.title)
        axes.set_xlabel("step")
        axes.set_ylabel(self.ylabel)
        if self.logy:
            axes.set_yscale("log")
        if self.history:
            axes.legend()
        axes.grid(alpha=0.3)
        self._handle.update(self._figure)
        self._last_draw = time.monotonic()


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
