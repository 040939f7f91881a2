"""The course's tiny GPT, pretrained once and cached: the base model lessons 08 and 09 fine-tune.

Lesson 04 trains the ``shakespeare-char`` preset (``llmcourse.train.presets``) live. The
fine-tuning lessons start from that same pretrained model, and pretraining it again in each of
them would spend most of their few minutes before fine-tuning begins. So ``pretrained_tiny_gpt``
trains the preset once (600 steps, about a minute on two cores, validation loss ≈ 1.85 nats per
character on the held-out plays), writes the weights and the loss history into the cache
(``llmcourse.utils.cache_dir()``), and later loads them in a fraction of a second.
``llmcourse data`` calls it at set-up, next to SmolLM2's conversion.

The cache entry is named by a hash of the preset's model and training configs, so changing the
recipe trains a new model instead of loading a stale one. Training is seeded (the preset's
``seed``); on another CPU the weights can differ in the last bits, not in quality.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcourse.models import DecoderLM
from llmcourse.tokenizers import CharTokenizer
from llmcourse.train.checkpoints import model_from_checkpoint
from llmcourse.train.presets import char_datasets, get_preset, shakespeare_chars
from llmcourse.train.trainer import Trainer
from llmcourse.utils.checkpoint import save_checkpoint
from llmcourse.utils.logging import get_logger
from llmcourse.utils.paths import cache_dir
from llmcourse.utils.seed import seed_everything

PRESET = "shakespeare-char"


@dataclass
class TinyGPT:
    """The pretrained model (eval mode), its tokenizer, and how its pretraining went."""

    model: DecoderLM
    tokenizer: CharTokenizer
    history: list[dict[str, Any]]  # Trainer log records: step, loss, val_loss (when evaluated)
    val_loss: float  # nats per character on the preset's validation windows


def cache_key() -> str:
    """``shakespeare-char-<12 hex digits>``: the preset's name and a hash of its recipe."""
    preset = get_preset(PRESET)
    train = preset.train.to_dict()
    # It can only stop a run, never change its weights: leaving it out keeps existing caches.
    train.pop("max_nonfinite_steps")
    recipe = json.dumps({"model": preset.model.to_dict(), "train": train}, sort_keys=True)
    return f"{PRESET}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def cache_folder() -> Path:
    """Where the pretrained weights (``model.safetensors``) and ``history.json`` are cached."""
    return cache_dir() / "tiny-gpt" / cache_key()


def pretrained_tiny_gpt(retrain: bool = False, verbose: bool = False) -> TinyGPT:
    """Load the cached pretrained tiny GPT, training and caching it first if needed.

    ``retrain=True`` ignores the cache; ``verbose=True`` shows the training progress bar.
    """
    folder = cache_folder()
    weights, log = folder / "model.safetensors", folder / "history.json"
    if retrain or not (weights.is_file() and log.is_file()):
        steps = get_preset(PRESET).train.max_steps
        get_logger().info(
            f"Pretraining the course's tiny GPT ({steps} steps; once, about a minute on 2 CPU "
            f"cores); later calls load it from {folder}."
        )
        _train(folder, verbose)
    record = json.loads(log.read_text())
    model = model_from_checkpoint(weights)
    return TinyGPT(model, shakespeare_chars().tokenizer, record["history"], record["val_loss"])


def _train(folder: Path, verbose: bool) -> None:
    preset = get_preset(PRESET)
    config = preset.train.replace(progress_bar=verbose)
    seed_everything(config.seed)
    train_data, val_data = char_datasets(preset.model, config, preset.eval_windows)
    model = DecoderLM(preset.model)
    trainer = Trainer(model, config, train_data, val_data)
    result = trainer.fit()
    val_loss = result.val_loss
    if val_loss is None:
        val_loss = trainer.evaluate()["val_loss"]
    folder.mkdir(parents=True, exist_ok=True)
    extra = {"model_class": "DecoderLM", "model_config": preset.model.to_dict()}
    # History first, weights last: a run killed in between leaves no weights, so it retrains.
    partial = folder / "history.json.partial"
    partial.write_text(json.dumps({"history": result.history, "val_loss": val_loss}, indent=1))
    partial.replace(folder / "history.json")
    save_checkpoint(folder / "model.safetensors", {"model": trainer.model_state(), "extra": extra})
