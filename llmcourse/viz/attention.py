"""Attention heatmaps and the AttentionExplorer widget (text → layer/head → heatmap).

``attention_maps(model, tokenizer, text)`` runs an llmcourse model (``DecoderLM`` such as
SmolLM2, or ``EncoderLM`` such as MiniLM) with ``output_attentions=True`` and returns the tokens
and one ``(heads, q_len, k_len)`` tensor per layer. ``plot_attention`` draws one head,
``plot_attention_heads`` a grid of all heads of a layer. ``AttentionExplorer`` puts both behind
a text box and sliders; it draws into a PNG ``ipywidgets.Image``, so it works in JupyterLab with
any matplotlib backend and can be driven from code (tests change a slider and read the figure).
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llmcourse.utils.modes import eval_mode


def token_labels(tokenizer: Any, ids: list[int]) -> list[str]:
    """Readable labels for token ids: decoded text, with spaces shown as ``·``."""
    labels = []
    for token_id in ids:
        text = tokenizer.decode([token_id])
        labels.append(text.replace(" ", "·").replace("\n", "\\n") or "∅")
    return labels


@torch.no_grad()
def attention_maps(
    model: torch.nn.Module, tokenizer: Any, text: str, max_tokens: int = 64
) -> tuple[list[str], list[torch.Tensor]]:
    """``(tokens, attentions)``: one ``(heads, q_len, k_len)`` tensor per layer for ``text``.

    Runs ``model`` (an llmcourse ``DecoderLM`` or ``EncoderLM``) once on the first
    ``max_tokens`` tokens; the model's attention path is irrelevant (weights always come from
    the explicit path).
    """
    if not text.strip():
        raise ValueError("Type some text to see its attention.")
    encoded = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens)
    ids = encoded["input_ids"][:, :max_tokens]
    with eval_mode(model):
        out = model(ids, output_attentions=True)
    return token_labels(tokenizer, ids[0].tolist()), [a[0].float() for a in out.attentions]


def plot_attention(
    weights: torch.Tensor,
    tokens: list[str],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    show_labels: bool = True,
) -> Axes:
    """Heatmap of one head's weights ``(q_len, k_len)``: rows are queries, columns keys."""
    if weights.dim() != 2:
        raise ValueError(
            f"plot_attention wants (q_len, k_len) weights, got {tuple(weights.shape)}."
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(weights.detach().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.grid(False)  # a themed grid (llmcourse.viz.set_theme) would stripe the heatmap
    if show_labels:
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
        ax.set_xlabel("key (attended-to token)")
        ax.set_ylabel("query (attending token)")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return ax


def plot_attention_heads(
    weights: torch.Tensor, tokens: list[str], *, figure: Figure | None = None, title: str = ""
) -> Figure:
    """Grid of every head of one layer: ``weights`` is ``(heads, q_len, k_len)``."""
    n_head = weights.shape[0]
    cols = math.ceil(math.sqrt(n_head))
    rows = math.ceil(n_head / cols)
    figure = figure or plt.figure(figsize=(2.2 * cols, 2.2 * rows + 0.4))
    axes = figure.subplots(rows, cols, squeeze=False)
    for head, ax in enumerate(axes.flat):
        if head >= n_head:
            ax.axis("off")
            continue
        ax.imshow(weights[head].detach().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.grid(False)
        ax.set_title(f"head {head}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(title or f"All {n_head} heads (rows: queries, columns: keys)", fontsize=10)
    return figure


class AttentionExplorer:
    """Text box, layer and head sliders, and a single-head / all-heads switch over a heatmap.

    ``AttentionExplorer(model, tokenizer, text)`` shows itself when it is the last expression
    of a cell. ``text``, ``layer``, ``head`` and ``mode`` are the ipywidgets; change their
    ``value`` from code and the figure (``figure``, ``image``) updates the same way.
    """

    MODES = ("single head", "all heads")

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        text: str = "The cat sat on the mat because it was tired.",
        *,
        max_tokens: int = 32,
    ) -> None:
        import ipywidgets as widgets

        self.model, self.tokenizer, self.max_tokens = model, tokenizer, max_tokens
        config = model.config
        self.text = widgets.Text(
            value=text, description="Text", continuous_update=False, layout={"width": "95%"}
        )
        self.layer = widgets.IntSlider(0, 0, config.n_layer - 1, description="Layer")
        self.head = widgets.IntSlider(0, 0, config.n_head - 1, description="Head")
        self.mode = widgets.ToggleButtons(options=self.MODES, value=self.MODES[0])
        # Shown at the size it is drawn: the VBox would otherwise stretch it to the page width,
        # blurring the token labels (2x on a laptop screen).
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
        self.status = widgets.HTML()
        self.widget = widgets.VBox(
            [self.text, widgets.HBox([self.layer, self.head]), self.mode, self.status, self.image]
        )
        self.figure: Figure | None = None
        self.draw_count = 0
        self.text.observe(lambda _: self._compute(), names="value")
        for control in (self.layer, self.head, self.mode):
            control.observe(lambda _: self.draw(), names="value")
        self._compute()

    def _compute(self) -> None:
        try:
            self.tokens, self.attentions = attention_maps(
                self.model, self.tokenizer, self.text.value, self.max_tokens
            )
        except ValueError as error:
            self.status.value = f"<b>{error}</b>"
            return
        self.status.value = f"{len(self.tokens)} tokens · {self.model.config.name}"
        self.draw()

    def draw(self) -> None:
        """Redraw the heatmap for the current layer, head and mode."""
        weights = self.attentions[self.layer.value]
        name = self.model.config.name
        if self.mode.value == "single head":
            figure = Figure(figsize=(6, 5.2))
            ax = figure.subplots()
            title = f"{name}: layer {self.layer.value}, head {self.head.value}"
            plot_attention(weights[self.head.value], self.tokens, ax=ax, title=title)
        else:
            figure = plot_attention_heads(
                weights,
                self.tokens,
                figure=Figure(figsize=(9, 8)),
                title=f"{name}: layer {self.layer.value}, all heads",
            )
        self.head.disabled = self.mode.value != "single head"
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        self.image.value = buffer.getvalue()
        self.figure = figure
        self.draw_count += 1

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
