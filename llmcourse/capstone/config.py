"""``CapstoneConfig``: every choice of the capstone run, in one frozen dataclass per size.

Each stage of ``llmcourse capstone`` is cached under a hash of the fields it reads
(``STAGE_FIELDS``) and of the stages it starts from (``stage_key``), so changing the SFT mix
re-runs SFT, GRPO and their evaluations but reuses the tokenizer and the pretrained model.
Budgets are in steps, tokens and rollouts, never seconds: the same config trains the same
model on any machine (exactly, on a CPU).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from llmcourse.utils.checks import check_int, check_number, check_type

SIZES = ("tiny", "small", "base")
_POSITIVE_INTS = (
    "vocab_size", "tokenizer_chars", "n_layer", "d_model", "n_head", "context_length",
    "pretrain_steps", "pretrain_batch_size", "sft_steps", "sft_batch_size",
    "sft_instructions_per_play", "rollouts", "prompts_per_rollout", "group_size",
    "minibatch_size", "eval_arithmetic", "eval_perplexity_tokens", "eval_multiple_choice",
)  # fmt: skip
#: Bump when a stage's code changes what it computes: old caches are then not reused.
CODE_VERSION = 1
#: A stage's own version where its code changed since (its key, and the keys after it, change;
#: the stages before it stay cached). SFT 2: batches of one kind (``chat.sft_mix``);
#: evaluate 2: the sample sum has the task's number of digits (``evaluate.sample_prompts``).
STAGE_VERSIONS: dict[str, int] = {"sft": 2, "sft_more": 2, "evaluate": 2}


@dataclass(frozen=True)
class CapstoneConfig:
    """The whole pipeline: tokenizer → pretraining → SFT → GRPO → evaluation → report."""

    size: str = "small"
    seed: int = 0
    # Tokenizer: byte-level BPE on the first corpus_chars characters of the training plays.
    vocab_size: int = 1024
    tokenizer_chars: int = 1_500_000
    # Model: a LLaMA-style DecoderLM (RoPE, RMSNorm, SwiGLU).
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    context_length: int = 128
    # Pretraining on the training plays (random windows), AdamW with warm-up and cosine decay.
    pretrain_steps: int = 600
    pretrain_batch_size: int = 16
    pretrain_lr: float = 3e-3
    # SFT: chat-formatted dialogues, a share of them arithmetic, the rest Shakespeare instructions.
    # Each batch holds one kind (chat.sft_mix), so an arithmetic batch is ~30 tokens, not 128.
    sft_steps: int = 1200
    sft_batch_size: int = 16
    sft_lr: float = 3e-3
    sft_arithmetic_share: float = 0.85
    sft_instructions_per_play: int = 40
    # The arithmetic task (llmcourse.data.arithmetic): operands with exactly `digits` digits.
    # Two digits: 8,100 sums, a tenth of them held out, so the evaluation has hundreds of
    # problems (one digit has 100 sums in all). `small`'s SFT stops part-way up the learning
    # curve (~0.35 held-out accuracy; twice the steps reach ~1.0), where GRPO's groups hold both
    # right and wrong answers and so have a signal to learn from (lesson 09).
    digits: int = 2
    held_out: float = 0.1
    # GRPO on arithmetic from the SFT model, one run per seed in rl_seeds.
    rl_seeds: tuple[int, ...] = (0, 1, 2)
    rollouts: int = 80
    prompts_per_rollout: int = 16
    group_size: int = 8
    minibatch_size: int = 64
    rl_lr: float = 1e-4  # minibatches of 64, a quarter of lesson 09's: a third of its rate
    # Evaluation after every stage.
    eval_arithmetic: int = 500
    eval_perplexity_tokens: int = 16_384
    eval_multiple_choice: int = 200
    # Energy: wall time × this stated power (a laptop CPU package under load), PUE 1.
    cpu_watts: float = 28.0

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}.")
        check_int("CapstoneConfig.seed", self.seed, 0)
        for name in _POSITIVE_INTS:
            check_int(f"CapstoneConfig.{name}", getattr(self, name), 1)
        for name in ("pretrain_lr", "sft_lr", "rl_lr", "cpu_watts"):
            check_number(f"CapstoneConfig.{name}", getattr(self, name), 0, low_open=True)
        check_number("CapstoneConfig.held_out", self.held_out, 0, 1, low_open=True, high_open=True)
        check_int("CapstoneConfig.digits", self.digits, 1, 4)
        check_type("CapstoneConfig.rl_seeds", self.rl_seeds, (tuple, list), "a tuple of seeds")
        object.__setattr__(
            self, "rl_seeds", tuple(self.rl_seeds)
        )  # hashable, as the cache keys need
        for seed in self.rl_seeds:
            check_int("CapstoneConfig.rl_seeds", seed, 0)
        if self.d_model % self.n_head:
            raise ValueError(
                f"CapstoneConfig.d_model={self.d_model} is not divisible by n_head={self.n_head}."
            )
        if not 0.0 <= self.sft_arithmetic_share <= 1.0:
            raise ValueError(
                f"sft_arithmetic_share must be in [0, 1], got {self.sft_arithmetic_share}."
            )
        if not self.rl_seeds:
            raise ValueError(f"rl_seeds needs at least one seed, got {self.rl_seeds!r}.")
        if (self.prompts_per_rollout * self.group_size) % self.minibatch_size:
            raise ValueError(
                "prompts_per_rollout × group_size must be a multiple of minibatch_size, got "
                f"{self.prompts_per_rollout} × {self.group_size} and {self.minibatch_size}."
            )
        if self.vocab_size < 300:
            raise ValueError(
                f"vocab_size must be ≥ 300 (256 bytes + specials), got {self.vocab_size}."
            )

    @classmethod
    def for_size(cls, size: str, **changes: Any) -> CapstoneConfig:
        """The preset ``size`` (``tiny``: CI, about a minute on 2 cores; ``small``: the committed
        report, under 15 minutes on 2 cores; ``base``: a GPU box), with ``changes`` applied."""
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}.")
        presets: dict[str, dict[str, Any]] = {
            "tiny": {
                "vocab_size": 384, "tokenizer_chars": 200_000, "n_layer": 2, "d_model": 64,
                "n_head": 4, "context_length": 96, "pretrain_steps": 150,
                "pretrain_batch_size": 16, "sft_steps": 150, "sft_batch_size": 16,
                "sft_lr": 1e-3, "sft_arithmetic_share": 0.5, "sft_instructions_per_play": 5,
                "digits": 1, "held_out": 0.3,
                "rl_seeds": (0, 1), "rollouts": 4, "prompts_per_rollout": 8, "group_size": 4,
                "minibatch_size": 32, "eval_arithmetic": 30, "eval_perplexity_tokens": 2048,
                "eval_multiple_choice": 24,
            },
            "small": {},
            "base": {
                "vocab_size": 4096, "tokenizer_chars": 4_500_000, "n_layer": 8, "d_model": 384,
                "n_head": 6, "context_length": 256, "pretrain_steps": 5000,
                "pretrain_batch_size": 64, "pretrain_lr": 1e-3, "sft_steps": 2000,
                "sft_batch_size": 64, "sft_lr": 3e-4, "sft_arithmetic_share": 0.5,
                "sft_instructions_per_play": 200,
                "digits": 2, "held_out": 0.1, "rollouts": 200, "prompts_per_rollout": 32,
                "minibatch_size": 128, "rl_lr": 1e-4, "eval_arithmetic": 1000,
                "eval_perplexity_tokens": 65_536, "eval_multiple_choice": 400,
                "cpu_watts": 700.0,
            },
        }  # fmt: skip
        return cls(size=size, **{**presets[size], **changes})

    def replace(self, **changes: Any) -> CapstoneConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        """A short hash of every field: names the run in its report."""
        return _digest({**self.to_dict(), "code_version": CODE_VERSION})


#: The fields each stage reads (its cache key also holds the keys of the stages before it).
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "tokenizer": ("vocab_size", "tokenizer_chars"),
    "pretrain": (
        "seed", "n_layer", "d_model", "n_head", "context_length", "pretrain_steps",
        "pretrain_batch_size", "pretrain_lr",
    ),
    "sft": (
        "seed", "sft_steps", "sft_batch_size", "sft_lr", "sft_arithmetic_share",
        "sft_instructions_per_play", "digits", "held_out",
    ),
    "grpo": (
        "rollouts", "prompts_per_rollout", "group_size", "minibatch_size", "rl_lr", "digits",
        "held_out",
    ),
    "sft_more": ("sft_batch_size", "sft_lr", "rollouts", "prompts_per_rollout", "group_size"),
    "evaluate": (
        "digits", "held_out", "eval_arithmetic", "eval_perplexity_tokens", "eval_multiple_choice",
    ),
}  # fmt: skip


def stage_key(config: CapstoneConfig, stage: str, *upstream: str, **extra: Any) -> str:
    """The cache key of ``stage``: its fields, ``extra`` (a seed) and its upstream keys."""
    if stage not in STAGE_FIELDS:
        raise ValueError(f"Unknown stage {stage!r}; stages are {', '.join(STAGE_FIELDS)}.")
    fields = {name: getattr(config, name) for name in STAGE_FIELDS[stage]}
    return _digest({
        "stage": stage, "fields": fields, "upstream": list(upstream), "extra": extra,
        "code_version": STAGE_VERSIONS.get(stage, CODE_VERSION),
    })  # fmt: skip


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]
