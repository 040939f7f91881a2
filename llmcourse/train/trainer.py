"""``Trainer``: a plain training loop you can read top to bottom.

One optimizer step (``train_step``):

1. fetch ``grad_accum_steps`` micro-batches for this process (``ShardedBatches``);
2. count the target tokens of the whole global batch (all micro-batches, all processes);
3. for each micro-batch: forward under autocast, loss = sum of token losses / that count, and
   backward (gradients add up; only the last micro-batch all-reduces them);
4. clip the global gradient norm, step AdamW, step the learning-rate schedule.

Dividing by the global token count makes 1 process × 8 sequences, 2 processes × 4, and 1
process × 2 micro-batches × 4 compute the same gradient, even when padding makes the micro-
batches' token counts differ. ``fit`` repeats the step, evaluates, logs (tqdm, JSON lines, an
``on_log`` callback for a live plot), writes atomic checkpoints and stops cleanly on SIGINT or
SIGTERM. Under ``torchrun`` the same code runs DDP or FSDP2 (``TrainConfig.parallel``).

Build the model after seeding every process the same way (``seed_everything``), as the CLI does.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from llmcourse.eval.perplexity import bits_per_byte_from_loss, perplexity_from_loss
from llmcourse.models.base import LanguageModel
from llmcourse.train import metrics
from llmcourse.train.batches import ShardedBatches, curriculum_length, truncate_batch
from llmcourse.train.config import TrainConfig
from llmcourse.train.objectives import batch_loss, target_count
from llmcourse.train.parallel import (
    build_optimizer,
    gather_model_state,
    gather_state,
    gradient_sync,
    restore_state,
    unwrap,
    wrap_model,
)
from llmcourse.train.schedule import lr_lambda
from llmcourse.train.stopping import StopRequest
from llmcourse.utils.checkpoint import load_checkpoint, save_checkpoint
from llmcourse.utils.devices import autocast_dtype
from llmcourse.utils.distributed import DistributedContext, init_distributed
from llmcourse.utils.runlog import RunLog
from llmcourse.utils.seed import rng_state, set_rng_state

CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass
class TrainResult:
    """What ``fit`` returns: where the run stopped and how fast it went."""

    step: int
    train_loss: float | None
    val_loss: float | None
    tokens: int
    elapsed_s: float  # wall time of fit, evaluations and checkpoints included
    tokens_per_s: float  # training tokens per second of training time (all processes)
    mfu: float | None
    interrupted: bool = False
    target_reached_s: float | None = None  # when an evaluation first reached target_val_loss
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)


class Trainer:
    """Train ``model`` on ``train_data`` (a map-style dataset of dicts of tensors).

    ``val_data`` is evaluated every ``config.eval_every`` steps; ``on_log(record)`` receives
    every logged record (e.g. ``LivePlot.update``); ``ctx`` defaults to ``init_distributed()``.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        train_data: Dataset,
        val_data: Dataset | None = None,
        *,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        ctx: DistributedContext | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}.")
        self.config, self.on_log = config, on_log
        self.ctx = ctx or init_distributed()
        self.amp_dtype = self._autocast_dtype()
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.ctx.device.type) if use_scaler else None
        model.to(self.ctx.device)
        if config.gradient_checkpointing:
            _enable_gradient_checkpointing(model)
        if config.compile:
            model.compile()  # in place: parameter names (and checkpoints) stay the same
        self.model = wrap_model(model, config, self.ctx)
        self.optimizer = build_optimizer(self.model, config, self.ctx)
        schedule = lr_lambda(
            config.schedule, config.warmup_steps, config.max_steps, config.min_lr_ratio
        )
        self.scheduler = LambdaLR(self.optimizer, schedule)
        batches = {"ctx": self.ctx, "collate_fn": collate_fn, "seed": config.seed}
        self.train_batches = ShardedBatches(
            train_data, config.batch_size, shuffle=config.shuffle, **batches
        )
        self.val_batches = (
            None
            if val_data is None
            else ShardedBatches(val_data, config.batch_size, shuffle=False, **batches)
        )
        self.flops_per_token: float | None = None  # known once a batch shows the length
        self.step, self.tokens_seen = 0, 0
        self.history: list[dict[str, Any]] = []
        self.out_dir = Path(config.out_dir) if config.out_dir else None
        self.log: RunLog | None = None  # open while fit runs (rank 0, with an out_dir)
        self.stop = StopRequest()  # set by SIGINT/SIGTERM or by reaching target_val_loss

    # -- one optimizer step -----------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """Steps 1-4 of the module docstring; returns the step's loss, lr, grad norm, tokens."""
        config, ctx = self.config, self.ctx
        self.model.train()
        micro_batches = []
        for _ in range(config.grad_accum_steps):
            batch = {k: v.to(ctx.device) for k, v in next(self.train_batches).items()}
            full = batch["input_ids"].shape[1]
            length = curriculum_length(
                self.step, config.seq_len_warmup_steps, config.seq_len_start, full
            )
            micro_batches.append(truncate_batch(batch, length) if length < full else batch)
        if self.flops_per_token is None:
            self.flops_per_token = metrics.model_training_flops_per_token(unwrap(self.model), full)
        count = sum(target_count(b, config.objective) for b in micro_batches).double()
        if ctx.is_distributed:
            dist.all_reduce(count)
        scale = ctx.world_size / count.clamp(min=1)  # DDP/FSDP average over processes
        loss_sum = torch.zeros((), device=ctx.device, dtype=torch.float64)
        for index, batch in enumerate(micro_batches):
            last = index == len(micro_batches) - 1
            with gradient_sync(self.model, enabled=last), self._autocast():
                loss, aux = self._batch_loss(batch)
                objective = loss * scale
                if aux is not None:
                    objective = objective + config.aux_loss_weight * aux / len(micro_batches)
                (self.scaler.scale(objective) if self.scaler else objective).backward()
            loss_sum += loss.detach().double()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = None
        if config.grad_clip is not None:
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if ctx.is_distributed:
            dist.all_reduce(loss_sum)
        tokens = sum(b["input_ids"].numel() for b in micro_batches) * ctx.world_size
        self.step += 1
        self.tokens_seen += tokens
        return {
            "loss": (loss_sum / count.clamp(min=1)).item(),
            "lr": lr,
            "grad_norm": _to_float(grad_norm),
            "tokens": tokens,
            "seq_len": micro_batches[-1]["input_ids"].shape[1],
        }

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, steps: int | None = None) -> TrainResult:
        """Train until ``config.max_steps`` (or for ``steps`` more steps), then checkpoint."""
        config, ctx = self.config, self.ctx
        end = config.max_steps if steps is None else min(config.max_steps, self.step + steps)
        start = time.perf_counter()
        total, window = _Throughput(), _Throughput()
        val_loss, target_reached_s, saved_at = None, None, None
        with self.stop.signals_handled(), self._progress(end) as bar:
            while self.step < end and not self.stop.agreed(ctx):
                tick = time.perf_counter()
                record = self.train_step()
                for meter in (total, window):
                    meter.add(record, time.perf_counter() - tick)
                bar.update(1)
                evaluate = self.val_batches is not None and bool(
                    config.eval_every and (self.step % config.eval_every == 0 or self.step == end)
                )
                if evaluate:
                    record.update(self.evaluate(max_batches=config.eval_batches))
                    val_loss = record["val_loss"]
                    if config.target_val_loss is not None and val_loss <= config.target_val_loss:
                        target_reached_s = time.perf_counter() - start
                        self.stop.reason = "target"
                if evaluate or self.step % config.log_every == 0 or self.step == end:
                    # The logged loss and speed are averages since the previous log line.
                    record.update(loss=window.mean_loss, tokens_per_s=window.tokens_per_s)
                    record["mfu"] = self._mfu(window.tokens_per_s)
                    record["elapsed_s"] = time.perf_counter() - start
                    self._emit(record, bar)
                    window = _Throughput()
                if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                    self.save_checkpoint()
                    saved_at = self.step
        if self.out_dir is not None and saved_at != self.step:
            self.save_checkpoint()
        return TrainResult(
            step=self.step,
            train_loss=self.history[-1]["loss"] if self.history else None,
            val_loss=val_loss,
            tokens=self.tokens_seen,
            elapsed_s=time.perf_counter() - start,
            tokens_per_s=total.tokens_per_s,
            mfu=self._mfu(total.tokens_per_s),
            interrupted=self.stop.interrupted,
            target_reached_s=target_reached_s,
            history=self.history,
        )

    @contextlib.contextmanager
    def _progress(self, end: int) -> Iterator[tqdm]:
        """A progress bar and (rank 0, with an ``out_dir``) the JSON-lines log, for one fit."""
        show = self.ctx.is_main and self.config.progress_bar
        bar = tqdm(total=end, initial=self.step, disable=not show, desc="training")
        if self.out_dir is not None and self.ctx.is_main:
            self.log = RunLog(self.out_dir / "log.jsonl")
        try:
            yield bar
        finally:
            bar.close()
            if self.log is not None:
                self.log.close()
                self.log = None

    def _mfu(self, tokens_per_s: float) -> float | None:
        ctx = self.ctx
        return metrics.mfu(tokens_per_s, self.flops_per_token, ctx.world_size, ctx.device)

    # -- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, max_batches: int | None = None) -> dict[str, float]:
        """Validation loss (nats/token), perplexity and, given ``bytes_per_token``, bits/byte.

        Every process scores its share of the validation set in order; the sums are combined,
        so the result is the mean over all scored tokens whatever the number of processes.
        """
        if self.val_batches is None:
            raise ValueError("No validation data: pass val_data to Trainer.")
        self.model.eval()
        self.val_batches.seek(0)
        n_batches = self.val_batches.batches_per_epoch
        if max_batches is not None:
            n_batches = min(n_batches, max_batches)
        totals = torch.zeros(2, device=self.ctx.device, dtype=torch.float64)
        for _ in range(n_batches):
            batch = {k: v.to(self.ctx.device) for k, v in next(self.val_batches).items()}
            with self._autocast():
                loss, _ = self._batch_loss(batch)
            totals[0] += loss.double()
            totals[1] += target_count(batch, self.config.objective)
        if self.ctx.is_distributed:
            dist.all_reduce(totals)
        self.model.train()
        val_loss = (totals[0] / totals[1].clamp(min=1)).item()
        result = {"val_loss": val_loss, "val_perplexity": perplexity_from_loss(val_loss)}
        if self.config.bytes_per_token:
            result["val_bits_per_byte"] = bits_per_byte_from_loss(
                val_loss, self.config.bytes_per_token
            )
        return result

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the full training state atomically (every process must call this).

        Holds the unsharded weights (``state["model"]`` loads into a single-process model),
        optimizer moments, schedule, rank 0's RNG state and the data position.
        """
        path = self._checkpoint_path(path)
        model_state, optimizer_state = gather_state(self.model, self.optimizer, self.ctx)
        if self.ctx.is_main:
            model = unwrap(self.model)
            config = getattr(model, "config", None)
            extra = {
                "step": self.step,
                "tokens_seen": self.tokens_seen,
                "data_position": self.train_batches.position,
                "world_size": self.ctx.world_size,
                "model_class": type(model).__name__.removeprefix("FSDP"),
                "model_config": config.to_dict() if hasattr(config, "to_dict") else None,
                "train_config": self.config.to_dict(),
            }
            state = {
                "model": model_state,
                "optimizer": optimizer_state,
                "scheduler": self.scheduler.state_dict(),
                "rng": rng_state(),
                "extra": extra,
            }
            save_checkpoint(path, state)
        if self.ctx.is_distributed:
            dist.barrier()
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> dict[str, Any]:
        """Resume from a checkpoint: weights, optimizer, schedule, RNG, step and data position.

        The data position counts micro-batches per process, so resume with the same number of
        processes and batch size; the weights alone load under any layout.
        """
        path = self._checkpoint_path(path)
        state = load_checkpoint(path)
        extra = state["extra"]
        if extra.get("world_size", 1) != self.ctx.world_size:
            raise ValueError(
                f"{path} was written by {extra['world_size']} process(es), this run has "
                f"{self.ctx.world_size}: the data position would not line up. Resume with the "
                "same number of processes (or load only state['model'] into a fresh model)."
            )
        main = self.ctx.is_main
        restore_state(
            self.model,
            self.optimizer,
            state["model"] if main else {},
            state["optimizer"] if main else {},
            self.ctx,
        )
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step, self.tokens_seen = extra["step"], extra["tokens_seen"]
        self.train_batches.seek(extra["data_position"])
        return extra

    def model_state(self) -> dict[str, torch.Tensor]:
        """The full (unsharded) weights on rank 0; every process must call this."""
        return gather_model_state(self.model, self.ctx)

    def _checkpoint_path(self, path: str | Path | None) -> Path:
        if path is not None:
            return Path(path)
        if self.out_dir is None:
            raise ValueError("Give a checkpoint path or set TrainConfig.out_dir.")
        return self.out_dir / CHECKPOINT_NAME

    # -- helpers --------------------------------------------------------------------------------
    def _batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        config = self.config
        return batch_loss(
            self.model,
            batch,
            config.objective,
            label_smoothing=config.label_smoothing,
            decoder_start_id=config.decoder_start_id,
        )

    def _autocast_dtype(self) -> torch.dtype | None:
        precision, device = self.config.precision, self.ctx.device
        if precision == "auto":
            return autocast_dtype(device)
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("precision='fp16' (with a gradient scaler) needs a CUDA device.")
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype)

    def _emit(self, record: dict[str, Any], bar: tqdm) -> None:
        record = {"step": self.step, **record}
        self.history.append(record)
        if not self.ctx.is_main:
            return
        if self.log is not None:
            self.log.write(**record)
        shown = {"loss": f"{record['loss']:.3f}"}
        if "val_loss" in record:
            shown["val"] = f"{record['val_loss']:.3f}"
        bar.set_postfix(shown, refresh=False)
        if self.on_log is not None:
            self.on_log(record)


def _enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute activations in the backward pass (``checkpoint(..., use_reentrant=False)``)."""
    if isinstance(model, LanguageModel):
        model.gradient_checkpointing = True
    elif hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable({"use_reentrant": False})
    elif hasattr(model, "gradient_checkpointing_enable"):  # older transformers
        model.gradient_checkpointing_enable({"use_reentrant": False})
    else:
        raise ValueError(
            f"{type(model).__name__} has no gradient checkpointing switch; wrap its blocks in "
            "torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False) yourself."
        )


def _to_float(value: torch.Tensor | None) -> float | None:
    if value is None:
        return None
    if hasattr(value, "full_tensor"):  # a DTensor (FSDP): the norm is already global
        value = value.full_tensor()
    result = float(value)
    return result if math.isfinite(result) else None


@dataclass
class _Throughput:
    """Training steps' losses, tokens and seconds (evaluations and checkpoints excluded)."""

    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0

    def add(self, record: dict[str, Any], seconds: float) -> None:
        self.losses.append(record["loss"])
        self.tokens += record["tokens"]
        self.seconds += seconds

    @property
    def mean_loss(self) -> float:
        return sum(self.losses) / len(self.losses)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0
