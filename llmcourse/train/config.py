"""``TrainConfig``: every knob of a training run in one validated dataclass.

Sizes are per process: each step, every one of ``world_size`` processes runs
``grad_accum_steps`` micro-batches of ``batch_size`` sequences, so one optimizer step sees
``batch_size · grad_accum_steps · world_size`` sequences (the *global batch*). Keep that product
fixed and 1 GPU, 8 GPUs or 8 GPUs with accumulation train the same model.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal

from llmcourse.train.schedule import KINDS, ScheduleKind
from llmcourse.utils.checks import check_bool, check_int, check_number

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Parallel = Literal["ddp", "fsdp"]
Objective = Literal["causal", "masked", "seq2seq"]
DType = Literal["fp32", "bf16", "fp16"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "parallel": ("ddp", "fsdp"),
    "objective": ("causal", "masked", "seq2seq"),
    "schedule": KINDS,
}
_DTYPES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and switches of ``Trainer`` (defaults: a small GPT on a CPU)."""

    max_steps: int = 1000
    batch_size: int = 16  # sequences per micro-batch, per process
    grad_accum_steps: int = 1
    # Optimizer: AdamW (Loshchilov & Hutter 2019); no decay on norms, biases, embeddings.
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float | None = 1.0  # max global gradient norm; None: no clipping
    # Schedule (llmcourse.train.schedule): warm-up, then decay to min_lr_ratio · lr.
    schedule: ScheduleKind = "cosine"
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    # The default task, a language model (llmcourse.train.tasks.LanguageModelTask); a Trainer
    # given another task= rejects a non-default objective or label smoothing.
    objective: Objective = "causal"
    label_smoothing: float = 0.0
    aux_loss_weight: float = 0.01  # mixture-of-experts balancing loss (Fedus et al. 2022)
    decoder_start_id: int = 0  # seq2seq: first decoder input (T5 uses its pad id, 0)
    # Sequence-length curriculum: grow from seq_len_start to the full length over these steps.
    seq_len_warmup_steps: int = 0
    seq_len_start: int = 8
    # Speed and memory.
    precision: Precision = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    gradient_checkpointing: bool = False
    compile: bool = False
    # Several processes (under torchrun): how to spread the model.
    parallel: Parallel = "ddp"
    zero1: bool = False  # shard the optimizer state (ZeRO stage 1) on top of DDP
    # FSDP mixed precision (MixedPrecisionPolicy): gather and compute with the weights in this
    # dtype while the sharded fp32 master weights take the optimizer step; None: no casting.
    mixed_precision: DType | None = None
    # dtype of the gradient reduce-scatter; None: mixed_precision's (fp32 is safer over many
    # processes: a bf16 sum of N gradients keeps only 8 significant bits).
    mixed_precision_reduce: DType | None = None
    # Evaluation, logging, checkpoints.
    eval_every: int = 0  # steps between evaluations; 0: only when asked
    eval_batches: int | None = None  # cap per evaluation; None: the whole validation set
    target_val_loss: float | None = None  # stop as soon as an evaluation reaches it
    bytes_per_token: float | None = None  # UTF-8 bytes per token, for bits per byte
    log_every: int = 10
    checkpoint_every: int = 0  # 0: only at the end (and on SIGINT/SIGTERM)
    max_seconds: float | None = None  # stop (and checkpoint) after this much wall time
    out_dir: str | None = None  # log.jsonl and checkpoint.safetensors go here
    # Steps in a row whose loss may be NaN/infinite (each skips its update) before the run stops
    # with NonFiniteLossError; 0: stop at the first. fp16's skipped overflow steps do not count.
    max_nonfinite_steps: int = 0
    progress_bar: bool = True
    shuffle: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name, options in _CHOICES.items():
            if getattr(self, name) not in options:
                raise ValueError(
                    f"TrainConfig.{name}={getattr(self, name)!r}; use one of {', '.join(options)}."
                )
        positive = ("max_steps", "batch_size", "grad_accum_steps", "log_every", "seq_len_start")
        for name in positive:
            check_int(f"TrainConfig.{name}", getattr(self, name), 1)
        at_least_zero = (
            "warmup_steps", "eval_every", "checkpoint_every", "seq_len_warmup_steps",
            "decoder_start_id", "max_nonfinite_steps", "seed",
        )  # fmt: skip
        for name in at_least_zero:
            check_int(f"TrainConfig.{name}", getattr(self, name), 0)
        check_int("TrainConfig.eval_batches", self.eval_batches, 1, optional=True)
        for name in ("gradient_checkpointing", "compile", "zero1", "progress_bar", "shuffle"):
            check_bool(f"TrainConfig.{name}", getattr(self, name))
        if self.warmup_steps > self.max_steps:
            raise ValueError(
                f"warmup_steps={self.warmup_steps} exceeds max_steps={self.max_steps}; "
                "shorten the warm-up."
            )
        check_number("TrainConfig.lr", self.lr, 0, low_open=True)
        check_number("TrainConfig.weight_decay", self.weight_decay, 0)
        check_number("TrainConfig.min_lr_ratio", self.min_lr_ratio, 0, 1)
        check_number("TrainConfig.eps", self.eps, 0, low_open=True)
        check_number("TrainConfig.aux_loss_weight", self.aux_loss_weight, 0)
        check_number("TrainConfig.grad_clip", self.grad_clip, 0, low_open=True, optional=True)
        check_number("TrainConfig.label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        check_number("TrainConfig.target_val_loss", self.target_val_loss, optional=True)
        check_number("TrainConfig.bytes_per_token", self.bytes_per_token, 0, low_open=True,
                     optional=True)  # fmt: skip
        # Adam's moment decays: 1 would never forget (and divide by 1 - β^t = 0 at t = 0).
        if isinstance(self.betas, (list, tuple)) and len(self.betas) == 2:
            for index, beta in enumerate(self.betas):
                check_number(f"TrainConfig.betas[{index}]", beta, 0, 1, high_open=True)
            object.__setattr__(self, "betas", tuple(self.betas))
        else:
            raise TypeError(f"TrainConfig.betas must be a pair (beta1, beta2), got {self.betas!r}.")
        check_number("TrainConfig.max_seconds", self.max_seconds, 0, low_open=True, optional=True)
        if self.out_dir is not None:
            if not isinstance(self.out_dir, (str, os.PathLike)):
                raise TypeError(
                    f"TrainConfig.out_dir must be a folder path or None, got {self.out_dir!r}."
                )
            object.__setattr__(self, "out_dir", os.fspath(self.out_dir))  # JSON in checkpoints
        if self.zero1 and self.parallel != "ddp":
            raise ValueError("zero1 shards the optimizer under DDP; FSDP already shards it.")
        if self.seq_len_warmup_steps and self.objective != "causal":
            raise ValueError("The sequence-length curriculum cuts causal-LM batches only.")
        for name in ("mixed_precision", "mixed_precision_reduce"):
            if getattr(self, name) not in (None, *_DTYPES):
                raise ValueError(
                    f"TrainConfig.{name}={getattr(self, name)!r}; use one of "
                    f"{', '.join(_DTYPES)} or None."
                )
        if self.mixed_precision_reduce is not None and self.mixed_precision is None:
            raise ValueError(
                "mixed_precision_reduce needs mixed_precision (the parameter dtype) as well."
            )
        if self.mixed_precision is not None and self.parallel != "fsdp":
            raise ValueError(
                f"mixed_precision={self.mixed_precision!r} is FSDP's cast of the sharded weights; "
                "set parallel='fsdp', or use precision='bf16' (autocast) with DDP."
            )

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
