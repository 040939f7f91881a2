"""The cached pretrained tiny GPT (llmcourse.train.tiny_gpt)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from llmcourse.train import tiny_gpt
from llmcourse.train.presets import get_preset


@pytest.fixture
def small_recipe(monkeypatch, tmp_path):
    """A 4-step, one-layer version of the preset and an empty cache: trains in about a second."""
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    preset = get_preset(tiny_gpt.PRESET)
    small = dataclasses.replace(
        preset,
        model=preset.model.replace(d_model=16, n_layer=1, n_head=2, d_ff=32),
        train=preset.train.replace(
            max_steps=4, batch_size=4, warmup_steps=1, eval_every=2, log_every=1
        ),
        eval_windows=4,
    )
    recipes = {"current": small}
    monkeypatch.setattr(tiny_gpt, "get_preset", lambda name: recipes["current"])
    return recipes


def test_cache_miss_trains_and_cache_hit_loads_the_same_weights(small_recipe, monkeypatch):
    first = tiny_gpt.pretrained_tiny_gpt()
    assert not first.model.training
    assert first.model.config.vocab_size == first.tokenizer.vocab_size
    assert [r["step"] for r in first.history if "loss" in r][-1] == 4
    assert first.val_loss > 0

    def must_not_train(*args):
        raise AssertionError("a cache hit must not train again")

    monkeypatch.setattr(tiny_gpt, "_train", must_not_train)
    again = tiny_gpt.pretrained_tiny_gpt()
    for (name, a), (_, b) in zip(
        first.model.state_dict().items(), again.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert again.history == first.history and again.val_loss == first.val_loss


def test_retraining_is_seeded(small_recipe):
    first = tiny_gpt.pretrained_tiny_gpt()
    retrained = tiny_gpt.pretrained_tiny_gpt(retrain=True)
    for a, b in zip(first.model.parameters(), retrained.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_cache_key_changes_with_the_recipe(small_recipe, tmp_path):
    key = tiny_gpt.cache_key()
    assert key.startswith("shakespeare-char-") and len(key) == len("shakespeare-char-") + 12
    tiny_gpt.pretrained_tiny_gpt()
    small_recipe["current"] = dataclasses.replace(
        small_recipe["current"], train=small_recipe["current"].train.replace(lr=1e-3)
    )
    assert tiny_gpt.cache_key() != key
    tiny_gpt.pretrained_tiny_gpt()  # a new recipe trains a new model next to the old one
    assert len(list((tmp_path / "tiny-gpt").iterdir())) == 2


def test_an_interrupted_run_without_weights_retrains(small_recipe, tmp_path):
    tiny_gpt.pretrained_tiny_gpt()
    (tmp_path / "tiny-gpt" / tiny_gpt.cache_key() / "model.safetensors").unlink()
    assert tiny_gpt.pretrained_tiny_gpt().val_loss > 0


@pytest.mark.slow
def test_the_real_preset_models_shakespeare():
    """The shipped recipe (trained once, about a minute, when the cache is empty)."""
    tiny = tiny_gpt.pretrained_tiny_gpt()
    assert tiny.model.config.context_length == 64
    # The preset's docstring: ≈ 1.85 nats per character on held-out plays; a uniform guess over
    # the characters is ln(vocab) ≈ 4.4.
    assert 1.6 < tiny.val_loss < 2.0
