"""Named training recipes: a model config, a ``TrainConfig`` and the data they train on.

``shakespeare-char`` is the course's tiny GPT: a character-level model of Shakespeare that
lesson 04 trains live, the speedrun times and ``python -m llmcourse.train`` runs by default.
``nanogpt-cpu`` is nanoGPT's published CPU recipe for its Shakespeare character model (Karpathy,
nanoGPT README, "I only have a macbook": 4 layers, 4 heads, 128 wide, block 64, batch 12,
2000 iterations, no dropout), kept as the baseline the speedrun compares against.

Why the ``shakespeare-char`` recipe looks as it does (each choice measured on our split, 600
steps of 16 × 64 characters, validation loss on held-out plays, one CPU thread):

- LLaMA-style blocks: RoPE, RMSNorm, SwiGLU (d_ff 344 ≈ 8/3 · 128), no biases: 1.86 at step
  550. With learned positions instead of RoPE: 1.99; GPT-2 blocks (LayerNorm, GELU, biases)
  with RoPE: 1.92. Relative positions come for free with RoPE; learned ones must be learned
  from data a short run does not have.
- Learning rate 3e-3 (nanoGPT: 1e-3); 6e-3 was worse. β₂ = 0.99 for small batches.
- Batch 16 × 64 characters: a CPU gains little throughput from larger batches, and a short
  run needs many steps.
- 600 steps, warm-up 50, cosine decay to 10%: sized so the annealing ends near the goal.

Measured together (``benchmarks/speedrun.py``, one busy CPU thread): the preset reaches 1.88
after 550 steps and 86 s; nanoGPT's recipe ends at 1.90 after 2000 steps, a loss the preset
reaches 2.8× sooner.

Data: the course's Shakespeare split (``llmcourse.pretrained.shakespeare("train"/"val")``),
divided by whole play (about 89/11). nanoGPT uses the 1 MB "tiny Shakespeare" file and holds out
its last 10%, which continues plays seen in training; our validation plays are unseen, so the
same model scores a higher loss on them. Numbers from the two datasets are not interchangeable.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass

import numpy as np

from llmcourse.config import ModelConfig
from llmcourse.data.loaders import RandomWindows
from llmcourse.tokenizers import CharTokenizer
from llmcourse.train.config import TrainConfig


@dataclass(frozen=True)
class Preset:
    """A recipe: what to build, how to train it, and how much validation text to score."""

    name: str
    model: ModelConfig
    train: TrainConfig
    eval_windows: int  # validation windows (of context_length characters) per evaluation
    summary: str


@dataclass(frozen=True)
class CharCorpus:
    """Shakespeare as character ids: the tokenizer and the train and validation streams."""

    tokenizer: CharTokenizer
    train_ids: np.ndarray  # (n_train,) int64
    val_ids: np.ndarray  # (n_val,) int64

    @property
    def bytes_per_token(self) -> float:
        """UTF-8 bytes per character of the validation text (1.0: it is all ASCII)."""
        text = self.tokenizer.decode(self.val_ids.tolist())
        return len(text.encode("utf-8")) / len(self.val_ids)


@functools.cache
def shakespeare_chars() -> CharCorpus:
    """The character corpus (built once per process, in about a second)."""
    from llmcourse.pretrained import shakespeare

    train_text, val_text = shakespeare("train"), shakespeare("val")
    # The vocabulary covers both splits (a character unseen in training still needs an id).
    tokenizer = CharTokenizer().train([train_text, val_text])
    encode = functools.partial(np.asarray, dtype=np.int64)
    return CharCorpus(
        tokenizer, encode(tokenizer.encode(train_text)), encode(tokenizer.encode(val_text))
    )


def _char_model(**fields: object) -> ModelConfig:
    return ModelConfig(name="shakespeare-char", vocab_size=shakespeare_vocab_size(), **fields)


@functools.cache
def shakespeare_vocab_size() -> int:
    return shakespeare_chars().tokenizer.vocab_size


def _presets() -> dict[str, Preset]:
    return {
        "shakespeare-char": Preset(
            name="shakespeare-char",
            model=_char_model(
                context_length=64,
                d_model=128,
                n_layer=4,
                n_head=4,
                position="rope",
                norm="rmsnorm",
                mlp="swiglu",
                d_ff=344,
                bias=False,
            ),
            train=TrainConfig(
                max_steps=600,
                batch_size=16,
                lr=3e-3,
                warmup_steps=50,
                min_lr_ratio=0.1,
                betas=(0.9, 0.99),
                weight_decay=0.1,
                eval_every=50,
                log_every=10,
            ),
            eval_windows=240,
            summary="The course's tiny GPT: character-level Shakespeare on a laptop CPU.",
        ),
        "nanogpt-cpu": Preset(
            name="nanogpt-cpu",
            model=_char_model(context_length=64, d_model=128, n_layer=4, n_head=4),
            train=TrainConfig(
                max_steps=2000,
                batch_size=12,
                lr=1e-3,
                warmup_steps=100,
                min_lr_ratio=0.1,
                betas=(0.9, 0.99),
                weight_decay=0.1,
                eval_every=100,
                log_every=10,
            ),
            eval_windows=240,
            summary="nanoGPT's CPU recipe for Shakespeare characters (the speedrun's baseline).",
        ),
    }


PRESET_NAMES = ("shakespeare-char", "nanogpt-cpu")


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (see ``PRESET_NAMES``)."""
    if name not in PRESET_NAMES:
        close = difflib.get_close_matches(name, PRESET_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown preset {name!r}; known: {', '.join(PRESET_NAMES)}.{hint}")
    return _presets()[name]


def char_datasets(
    model: ModelConfig, train: TrainConfig, eval_windows: int, world_size: int = 1
) -> tuple[RandomWindows, RandomWindows]:
    """Training windows for the whole run, and a fixed sample of validation windows.

    Training draws ``max_steps × global batch`` windows at random offsets (seeded by
    ``train.seed``); validation scores the same ``eval_windows`` windows, spread over all
    validation plays, at every evaluation, so successive evaluations are comparable.
    """
    corpus = shakespeare_chars()
    global_batch = train.batch_size * train.grad_accum_steps * world_size
    n_train = train.max_steps * global_batch
    train_data = RandomWindows(corpus.train_ids, model.context_length, n_train, seed=train.seed)
    val_data = RandomWindows(corpus.val_ids, model.context_length, eval_windows, seed=1234)
    return train_data, val_data
