"""The attention plots and the AttentionExplorer widget, driven without a browser."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.viz.attention import (
    AttentionExplorer,
    attention_maps,
    plot_attention,
    plot_attention_heads,
)
from llmcourse.viz.positional import plot_alibi, plot_rope_decay, plot_sinusoidal, rope_scores


class CharTokenizer:
    """A stand-in tokenizer (one id per character) so the tests need no data package."""

    def __call__(self, text, return_tensors="pt", truncation=True, max_length=64):
        return {"input_ids": torch.tensor([[ord(c) % 64 for c in text[:max_length]]])}

    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


@pytest.fixture
def model():
    torch.manual_seed(0)
    config = ModelConfig(
        name="tiny", vocab_size=64, context_length=64, d_model=16, n_layer=3, n_head=4
    )
    return DecoderLM(config)


def test_attention_maps_returns_one_causal_map_per_layer(model):
    tokens, maps = attention_maps(model, CharTokenizer(), "hello there")
    assert len(tokens) == 11 and len(maps) == 3
    assert maps[0].shape == (4, 11, 11)
    assert torch.all(maps[2].triu(1) == 0)
    with pytest.raises(ValueError, match="Type some text"):
        attention_maps(model, CharTokenizer(), "   ")


def test_plots_label_their_axes():
    weights = torch.softmax(torch.randn(4, 5, 5), -1)
    ax = plot_attention(weights[0], list("abcde"), title="one head")
    assert ax.get_xlabel().startswith("key") and ax.get_title() == "one head"
    figure = plot_attention_heads(weights, list("abcde"))
    assert len([a for a in figure.axes if a.images]) == 4
    with pytest.raises(ValueError, match="q_len, k_len"):
        plot_attention(weights, list("abcde"))
    plt.close("all")


def test_explorer_redraws_when_a_slider_moves(model):
    explorer = AttentionExplorer(model, CharTokenizer(), "attention!")
    first_png, first_count = explorer.image.value, explorer.draw_count
    assert first_png[:4] == b"\x89PNG"
    assert explorer.figure.axes[0].get_title() == "tiny: layer 0, head 0"
    explorer.layer.value = 2
    explorer.head.value = 3
    assert explorer.draw_count == first_count + 2
    assert explorer.figure.axes[0].get_title() == "tiny: layer 2, head 3"
    assert explorer.image.value != first_png


def test_explorer_all_heads_mode_and_new_text(model):
    explorer = AttentionExplorer(model, CharTokenizer(), "abc")
    explorer.mode.value = "all heads"
    assert len([a for a in explorer.figure.axes if a.images]) == 4
    assert explorer.head.disabled
    explorer.text.value = "a longer sentence"
    assert len(explorer.tokens) == len("a longer sentence")
    explorer.text.value = ""
    assert "Type some text" in explorer.status.value


def test_positional_plots_and_rope_decay():
    scores = rope_scores(torch.arange(0, 200))
    assert scores[0].item() == pytest.approx(1.0)
    assert scores[100:].abs().mean() < 0.5 * scores[:10].mean()  # long-term decay
    for plot in (plot_sinusoidal, plot_rope_decay, plot_alibi):
        ax = plot()
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    plt.close("all")


@pytest.mark.slow
def test_explorer_on_smollm2():
    from llmcourse.models.hf import load_smollm2

    smollm2, tokenizer = load_smollm2()
    explorer = AttentionExplorer(smollm2, tokenizer, "The capital of France is Paris.")
    assert explorer.layer.max == 29 and explorer.head.max == 8
    explorer.layer.value = 29
    assert "layer 29" in explorer.figure.axes[0].get_title()
