"""``Trainer``: one plain training loop, read top to bottom, for every objective of the course.

*What* is optimised is a **task** (``llmcourse.train.tasks``): ``loss(model, batch) -> (loss,
metrics)`` with the loss a *sum* over units the task also counts (``count(batch)``: target
tokens, pairs, examples). A language model (``TrainConfig.objective``) is the default task;
classification heads, distillation, reward models, DPO, PPO and skip-gram are tasks too, so all
of them get what lives here once: device placement, autocast, gradient accumulation, clipping,
the schedule, atomic checkpoints with exact resume, logging, DDP/FSDP2 and clean stops.

One optimizer step (``train_step``):

1. fetch ``grad_accum_steps`` micro-batches for this process: from the dataset
   (``ShardedBatches``) or, for a task with a rollout step, from its rollouts
   (``RolloutBatches``: sample with the current policy, then ``task.rollout_epochs`` passes);
2. count the task's units in the whole global batch (all micro-batches, all processes);
3. for each micro-batch: forward under autocast, objective = the task's loss sum · world size /
   that count, and backward (gradients add up; only the last micro-batch all-reduces them);
4. clip the global gradient norm, step AdamW, step the learning-rate schedule.

Dividing by the global count makes 1 process × 8 rows, 2 processes × 4, and 1 process × 2
micro-batches × 4 compute the same gradient, even when padding makes the micro-batches' counts
differ; a task never divides by its own count. ``fit`` repeats the step, evaluates, logs (tqdm
labelled with the task's name, JSON lines, an ``on_log`` callback for a live plot), writes
atomic checkpoints and stops cleanly on SIGINT, SIGTERM or ``max_seconds``, leaving the model
in eval mode. Under ``torchrun`` the same code runs DDP or FSDP2 (``TrainConfig.parallel``).

**Anchor.** We follow torchtune's recipes rather than Hugging Face's ``Trainer.compute_loss``.
HF makes a new objective a *subclass* that overrides ``compute_loss`` inside a framework of
callbacks and mixins, and it added ``num_items_in_batch`` later to repair accumulation that
averaged per-micro-batch means. A torchtune recipe is a loop you read top to bottom, its loss a
plain module called with the batch, and it sums token losses and divides by the token count of
the whole step. Here the loop is this file, the objective an object it is *given* (composition,
no inheritance from ``Trainer``), and the normaliser part of the task's contract from the start
(``count``), so accumulation and several processes are exact for every task, not only the LM.

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

from llmcourse.config import ModelConfig
from llmcourse.eval.perplexity import bits_per_byte_from_loss, perplexity_from_loss
from llmcourse.models.base import LanguageModel
from llmcourse.train import metrics
from llmcourse.train.batches import ShardedBatches, curriculum_length, to_device, truncate_batch
from llmcourse.train.config import TrainConfig
from llmcourse.train.parallel import (
    build_optimizer,
    gather_model_state,
    gather_state,
    gradient_sync,
    restore_state,
    unwrap,
    wrap_model,
)
from llmcourse.train.rollouts import RolloutBatches
from llmcourse.train.schedule import lr_lambda
from llmcourse.train.stopping import StopRequest
from llmcourse.train.tasks import Task, check_task, fingerprint, place_frozen_models
from llmcourse.utils.checkpoint import load_checkpoint, save_checkpoint
from llmcourse.utils.checks import check_int, check_type
from llmcourse.utils.devices import autocast_dtype
from llmcourse.utils.distributed import DistributedContext, init_distributed
from llmcourse.utils.modes import eval_mode
from llmcourse.utils.runlog import RunLog
from llmcourse.utils.seed import rng_state, set_rng_state

CHECKPOINT_NAME = "checkpoint.safetensors"

# TrainConfig fields a resumed run may change: they do not alter what is computed, only what is
# watched and when it stops. Any other difference would make the resumed run a different run.
RESUME_MAY_CHANGE = frozenset(
    {
        "out_dir", "eval_every", "eval_batches", "target_val_loss", "bytes_per_token",
        "log_every", "checkpoint_every", "max_seconds", "progress_bar", "compile",
        "gradient_checkpointing", "max_nonfinite_steps",
    }
)  # fmt: skip


class NonFiniteLossError(FloatingPointError):
    """The training loss was NaN or infinite for more steps in a row than the config allows."""


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
    """Train ``model`` on ``task`` (default: the language model ``config.objective`` names).

    ``train_data`` is a map-style dataset that ``collate_fn`` turns into the task's batches
    (none for a task with a rollout step, which samples its own); ``val_data`` is evaluated
    every ``config.eval_every`` steps; ``on_log(record)`` receives every logged record (e.g.
    ``LivePlot.update``); ``ctx`` defaults to ``init_distributed()``.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        train_data: Dataset | None = None,
        val_data: Dataset | None = None,
        *,
        task: Task | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        ctx: DistributedContext | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}.")
        check_type("model", model, nn.Module, "an nn.Module (e.g. DecoderLM(config))")
        self.config, self.on_log = config, on_log
        self.task = check_task(task, config, train_data)
        self.ctx = ctx or init_distributed()
        self.amp_dtype = self._autocast_dtype()
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.ctx.device.type) if use_scaler else None
        model.to(self.ctx.device)
        self.frozen = place_frozen_models(self.task, model, self.ctx.device)
        self._fingerprints: dict[str, str] | None = None  # of the frozen models, once computed
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
        self.train_batches: ShardedBatches | RolloutBatches
        if self.task.has_rollout:
            self.train_batches = RolloutBatches(
                self._collect_rollout,
                config.batch_size,
                self.task.rollout_epochs,
                seed=config.seed,
                group=config.grad_accum_steps,
                device=self.ctx.device,
            )
        else:
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
        self.nonfinite_steps = 0  # training steps in a row whose loss was NaN or infinite
        self.history: list[dict[str, Any]] = []
        self.out_dir = Path(config.out_dir) if config.out_dir else None
        self.log: RunLog | None = None  # open while fit runs (rank 0, with an out_dir)
        self.stop = StopRequest()  # set by SIGINT/SIGTERM, target_val_loss or max_seconds

    # -- one optimizer step -----------------------------------------------------------------
    def train_step(self) -> dict[str, Any]:
        """Steps 1-4 of the module docstring; returns the step's loss, the task's metrics (and
        its rollout's), lr, grad norm and tokens.

        A step whose (global) loss is NaN or infinite takes no optimizer step, so the weights
        stay finite; more than ``config.max_nonfinite_steps`` such steps in a row raise
        ``NonFiniteLossError``. (fp16's gradient scaler skipping a step whose *gradients*
        overflowed is normal and is not counted: the loss was finite.)"""
        config, ctx, task = self.config, self.ctx, self.task
        self.model.train()
        micro_batches = [self._next_micro_batch() for _ in range(config.grad_accum_steps)]
        count = sum(_as_tensor(task.count(b), ctx.device) for b in micro_batches).double()
        if ctx.is_distributed:
            dist.all_reduce(count)
        scale = ctx.world_size / count.clamp(min=1)  # DDP/FSDP average over processes
        loss_sum = torch.zeros((), device=ctx.device, dtype=torch.float64)
        metric_sums: dict[str, torch.Tensor] = {}
        for index, batch in enumerate(micro_batches):
            last = index == len(micro_batches) - 1
            with gradient_sync(self.model, enabled=last), self._autocast():
                loss, task_metrics = task.loss(self.model, batch)
                objective = loss * scale
                (self.scaler.scale(objective) if self.scaler else objective).backward()
            loss_sum += loss.detach().double()
            for name, value in task_metrics.items():
                value = _as_tensor(value, ctx.device).detach().double()
                metric_sums[name] = metric_sums.get(name, 0.0) + value
        sums = torch.stack([loss_sum, *(metric_sums[name] for name in sorted(metric_sums))])
        if ctx.is_distributed:
            dist.all_reduce(sums)  # every process sees the same loss, so all skip or stop together
        means = (sums / count.clamp(min=1)).tolist()
        finite = math.isfinite(means[0])
        self.nonfinite_steps = 0 if finite else self.nonfinite_steps + 1
        if self.nonfinite_steps > config.max_nonfinite_steps:
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(
                f"The training loss is {means[0]} at step {self.step + 1} "
                f"({self.nonfinite_steps} step(s) in a row; TrainConfig.max_nonfinite_steps="
                f"{config.max_nonfinite_steps}). The run has diverged: lower lr, keep grad_clip "
                "on, or train in fp32. The weights are those before this step; a checkpoint in "
                "out_dir predates it (resume from it with a smaller lr)."
            )
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = None
        if config.grad_clip is not None:
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scaler:  # skips the step itself when the gradients are not finite
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif finite:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = sum(task.tokens(b) for b in micro_batches) * ctx.world_size
        self.step += 1
        self.tokens_seen += tokens
        record = {"loss": means[0], **dict(zip(sorted(metric_sums), means[1:], strict=True))}
        if isinstance(self.train_batches, RolloutBatches):
            record.update(self.train_batches.metrics, rollout=self.train_batches.rollouts)
        record.update(lr=lr, grad_norm=_to_float(grad_norm), tokens=tokens)
        ids = micro_batches[-1].get("input_ids") if isinstance(micro_batches[-1], dict) else None
        if isinstance(ids, torch.Tensor) and ids.dim() == 2:
            record["seq_len"] = ids.shape[1]
        return record

    def _next_micro_batch(self) -> Any:
        """This process's next micro-batch on the device (cut short by the length curriculum)."""
        config = self.config
        batch = to_device(next(self.train_batches), self.ctx.device)
        if self.flops_per_token is None and self.task.nats_per_token:
            full = batch["input_ids"].shape[1]
            self.flops_per_token = metrics.model_training_flops_per_token(unwrap(self.model), full)
        if config.seq_len_warmup_steps:
            full = batch["input_ids"].shape[1]
            length = curriculum_length(
                self.step, config.seq_len_warmup_steps, config.seq_len_start, full
            )
            batch = truncate_batch(batch, length) if length < full else batch
        return batch

    def _collect_rollout(self) -> tuple[Any, dict[str, float]]:
        """The task's rollout with the current policy: eval mode, no gradients, on the device.

        Its metrics are averaged over processes (each samples its own rollout)."""
        model = unwrap(self.model)
        with eval_mode(model), torch.no_grad(), self._autocast():
            data, rollout_metrics = self.task.rollout(model)
        names = sorted(rollout_metrics)
        values = [float(rollout_metrics[name]) for name in names]
        if self.ctx.is_distributed and names:
            summed = torch.tensor(values, device=self.ctx.device, dtype=torch.float64)
            dist.all_reduce(summed)
            values = (summed / self.ctx.world_size).tolist()
        return to_device(data, self.ctx.device), dict(zip(names, values, strict=True))

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, steps: int | None = None) -> TrainResult:
        """Train until ``config.max_steps`` (or for ``steps`` more steps), then checkpoint."""
        check_int("steps", steps, 0, optional=True)
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
                evaluate = self._can_evaluate and bool(
                    config.eval_every and (self.step % config.eval_every == 0 or self.step == end)
                )
                if evaluate:
                    record.update(self.evaluate(max_batches=config.eval_batches))
                    val_loss = record.get("val_loss")
                    target = config.target_val_loss
                    if target is not None and val_loss is not None and val_loss <= target:
                        target_reached_s = time.perf_counter() - start
                        self.stop.reason = "target"
                if evaluate or self.step % config.log_every == 0 or self.step == end:
                    # The logged loss, metrics and speed are averages since the previous log.
                    record.update(window.means(), tokens_per_s=window.tokens_per_s)
                    record["mfu"] = self._mfu(window.tokens_per_s)
                    record["elapsed_s"] = time.perf_counter() - start
                    self._emit(record, bar)
                    window = _Throughput()
                if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                    self.save_checkpoint()
                    saved_at = self.step
                elapsed = time.perf_counter() - start
                if config.max_seconds is not None and elapsed >= config.max_seconds:
                    self.stop.reason = "time"
        if self.out_dir is not None and saved_at != self.step:
            self.save_checkpoint()
        self.model.eval()  # training is over: dropout off until the next train_step
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
        bar = tqdm(total=end, initial=self.step, disable=not show, desc=self.task.name)
        if self.out_dir is not None and self.ctx.is_main:
            # Lines past the step we start from were written by a run that died after its last
            # checkpoint; this run writes those steps again, so drop them (no step twice).
            RunLog.drop_after(self.out_dir / "log.jsonl", self.step)
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
    @property
    def _can_evaluate(self) -> bool:
        return self.val_batches is not None or callable(getattr(self.task, "evaluate", None))

    @torch.no_grad()
    def evaluate(self, max_batches: int | None = None) -> dict[str, float]:
        """The task's loss and metrics on the validation data, as ``val_*`` (for a language
        model: nats/token, perplexity and, given ``bytes_per_token``, bits/byte), plus the
        task's own ``evaluate(model)`` numbers if it has one.

        Every process scores its share of the validation set in order; the sums are combined,
        so the result is the mean over all scored units whatever the number of processes.
        """
        check_int("max_batches", max_batches, 1, optional=True)
        if not self._can_evaluate:
            raise ValueError("No validation data: pass val_data to Trainer.")
        result: dict[str, float] = {}
        with eval_mode(self.model):
            if self.val_batches is not None:
                result.update(self._validation_loss(max_batches))
            task_evaluate = getattr(self.task, "evaluate", None)
            if callable(task_evaluate):
                numbers = task_evaluate(unwrap(self.model))
                result.update({f"val_{name}": float(value) for name, value in numbers.items()})
        return result

    def _validation_loss(self, max_batches: int | None) -> dict[str, float]:
        task, device = self.task, self.ctx.device
        self.val_batches.seek(0)
        n_batches = self.val_batches.batches_per_epoch
        if max_batches is not None:
            n_batches = min(n_batches, max_batches)
        totals = torch.zeros(2, device=device, dtype=torch.float64)
        metric_sums: dict[str, torch.Tensor] = {}
        for _ in range(n_batches):
            batch = to_device(next(self.val_batches), device)
            with self._autocast():
                loss, task_metrics = task.loss(self.model, batch)
            totals[0] += loss.double()
            totals[1] += _as_tensor(task.count(batch), device)
            for name, value in task_metrics.items():
                value = _as_tensor(value, device).double()
                metric_sums[name] = metric_sums.get(name, 0.0) + value
        names = sorted(metric_sums)
        totals = torch.cat([totals, *(metric_sums[name].reshape(1) for name in names)])
        if self.ctx.is_distributed:
            dist.all_reduce(totals)
        count = totals[1].clamp(min=1)
        val_loss = (totals[0] / count).item()
        result = {"val_loss": val_loss}
        if task.nats_per_token:
            result["val_perplexity"] = perplexity_from_loss(val_loss)
            if self.config.bytes_per_token:
                result["val_bits_per_byte"] = bits_per_byte_from_loss(
                    val_loss, self.config.bytes_per_token
                )
        for index, name in enumerate(names):
            result[f"val_{name}"] = (totals[2 + index] / count).item()
        return result

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write the full training state atomically (every process must call this).

        Holds the unsharded weights (``state["model"]`` loads into a single-process model),
        optimizer moments, schedule, rank 0's RNG state, the data position, and each process's
        task state and current rollout. Frozen models are inputs, not state: only a fingerprint
        of their weights is kept, to refuse a resume with different ones.
        """
        path = self._checkpoint_path(path)
        model_state, optimizer_state = gather_state(self.model, self.optimizer, self.ctx)
        rollout = (
            self.train_batches.state_dict()
            if isinstance(self.train_batches, RolloutBatches)
            else None
        )
        per_process = self._gather_objects({"task": self.task.state_dict(), "rollout": rollout})
        fingerprints = self._frozen_fingerprints()
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
                "task": type(self.task).__name__,
                "frozen_models": fingerprints,
            }
            state = {
                "model": model_state,
                "optimizer": optimizer_state,
                "scheduler": self.scheduler.state_dict(),
                "rng": rng_state(),
                "task": [entry["task"] for entry in per_process],
                "extra": extra,
            }
            if rollout is not None:
                state["rollout"] = [entry["rollout"] for entry in per_process]
            save_checkpoint(path, state)
        if self.ctx.is_distributed:
            dist.barrier()
        return path

    def load_checkpoint(
        self, path: str | Path | None = None, *, check: bool = True
    ) -> dict[str, Any]:
        """Resume from a checkpoint: weights, optimizer, schedule, RNG, step, data position,
        task state and rollout.

        The data position counts micro-batches per process, so resume with the same number of
        processes and batch size; the weights alone load under any layout. The checkpoint must
        come from the same model config and the same ``TrainConfig`` (up to
        ``RESUME_MAY_CHANGE``), with weights of the model's shapes; ``check=False`` skips the
        checksum and finiteness checks of ``llmcourse.utils.load_checkpoint``.
        """
        path = self._checkpoint_path(path)
        state = load_checkpoint(path, check=check)
        if not isinstance(state, dict) or not isinstance(state.get("extra"), dict):
            raise ValueError(
                f"{path} is not a Trainer checkpoint (no training state in it); load its weights "
                "with model.load_state_dict instead."
            )
        extra = state["extra"]
        self._check_same_run(path, extra)
        _check_shapes(path, state.get("model", {}), unwrap(self.model))
        if extra.get("world_size", 1) != self.ctx.world_size:
            raise ValueError(
                f"{path} was written by {extra['world_size']} process(es), this run has "
                f"{self.ctx.world_size}: the data position would not line up. Resume with the "
                "same number of processes (or load only state['model'] into a fresh model)."
            )
        saved = extra.get("frozen_models") or {}
        for name, digest in self._frozen_fingerprints().items():
            if name in saved and saved[name] != digest:
                raise ValueError(
                    f"The frozen {name} model differs from the one {path} was trained with "
                    "(its weights' fingerprint changed): resume with the same model."
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
        rank = self.ctx.rank
        self.task.load_state_dict(state.get("task", [{}] * (rank + 1))[rank])
        if isinstance(self.train_batches, RolloutBatches):
            if "rollout" not in state:
                raise ValueError(f"{path} holds no rollout state: it is not from a rollout task.")
            self.train_batches.load_state_dict(state["rollout"][rank])
        else:
            self.train_batches.seek(extra["data_position"])
        return extra

    def _check_same_run(self, path: Path, extra: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model or another recipe, naming what differs."""
        config = getattr(unwrap(self.model), "config", None)
        saved_model = extra.get("model_config")
        # An llmcourse ModelConfig; a transformers config also records library versions, so
        # those models are compared by their weights' shapes only (_check_shapes).
        if saved_model is not None and isinstance(config, ModelConfig):
            _refuse_differences(path, "model config", saved_model, config.to_dict(), ())
        saved_train = extra.get("train_config")
        if saved_train is not None:
            current = self.config.to_dict()
            _refuse_differences(path, "TrainConfig", saved_train, current, RESUME_MAY_CHANGE)

    def model_state(self) -> dict[str, torch.Tensor]:
        """The full (unsharded) weights on rank 0; every process must call this."""
        return gather_model_state(self.model, self.ctx)

    def _checkpoint_path(self, path: str | Path | None) -> Path:
        if path is not None:
            return Path(path)
        if self.out_dir is None:
            raise ValueError("Give a checkpoint path or set TrainConfig.out_dir.")
        return self.out_dir / CHECKPOINT_NAME

    def _gather_objects(self, value: Any) -> list[Any]:
        """``value`` from every process, in rank order (a list of one without torchrun)."""
        if not self.ctx.is_distributed:
            return [value]
        gathered: list[Any] = [None] * self.ctx.world_size
        dist.all_gather_object(gathered, to_device(value, torch.device("cpu")))
        return gathered

    def _frozen_fingerprints(self) -> dict[str, str]:
        """SHA-256 of each frozen model's weights (computed once: they never change)."""
        if self._fingerprints is None:
            self._fingerprints = {name: fingerprint(module) for name, module in self.frozen.items()}
        return self._fingerprints

    # -- helpers --------------------------------------------------------------------------------

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


def _refuse_differences(
    path: Path, what: str, saved: dict[str, Any], current: dict[str, Any], allowed: frozenset
) -> None:
    names = sorted(set(saved) | set(current))
    differ = [n for n in names if n not in allowed and saved.get(n) != current.get(n)]
    if differ:
        changes = ", ".join(f"{n}: {saved.get(n)!r} → {current.get(n)!r}" for n in differ)
        raise ValueError(
            f"{path} was written with another {what} ({changes}): resuming would not continue "
            "that run. Resume with the settings it was trained with, or start a fresh run in "
            "another out_dir."
        )


def _check_shapes(path: Path, saved: dict[str, Any], model: nn.Module) -> None:
    """Compare the checkpoint's weights with the model's before anything is loaded."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    wrong = [
        f"{name} {tuple(t.shape)} (model: {expected[name]})"
        for name, t in saved.items()
        if name in expected and tuple(t.shape) != expected[name]
    ]
    if wrong:
        raise ValueError(
            f"{path} holds weights of other shapes than this model's: {'; '.join(wrong[:5])}"
            f"{' …' if len(wrong) > 5 else ''}. Build the model with the config it was saved with."
        )


def _as_tensor(value: Any, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(value, device=device)


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


_LAST_VALUE = ("lr", "grad_norm", "tokens", "seq_len", "rollout")  # logged as they are


@dataclass
class _Throughput:
    """Training steps' losses and metrics, tokens and seconds (evaluations and checkpoints
    excluded)."""

    values: dict[str, list[float]] = field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0

    def add(self, record: dict[str, Any], seconds: float) -> None:
        for name, value in record.items():
            if name not in _LAST_VALUE and isinstance(value, float):
                self.values.setdefault(name, []).append(value)
        self.tokens += record["tokens"]
        self.seconds += seconds

    def means(self) -> dict[str, float]:
        return {name: sum(values) / len(values) for name, values in self.values.items()}

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0
