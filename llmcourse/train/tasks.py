"""Tasks: *what* ``Trainer`` optimises; the trainer owns *how* (device, AMP, accumulation, ...).

A task is a small object with a loss on a batch. Every objective of the course is one: the
language model (``LanguageModelTask``, the default), a classifier head, distillation, a reward
model, DPO, PPO and skip-gram embeddings. The contract, in the order the loop uses it:

``count(batch) -> tensor``
    How many *units* the batch's loss is a sum over: target tokens, pairs, examples.
``loss(model, batch) -> (loss, metrics)``
    ``loss``: the **sum** over those units (a 0-d tensor with a graph); ``metrics``: a dict of
    0-d tensors (or floats), also sums over the same units (e.g. correct pairs).
``tokens(batch) -> int``
    Token positions the model read, for throughput (default: ``input_ids.numel()``, else 0).

The trainer sums ``count`` over the micro-batches of a step *and* over processes (one
all-reduce), then backpropagates ``loss · world_size / global_count`` for each micro-batch; DDP
averages over the world, so the gradient is Σ loss / Σ count over the whole global batch. A
task never divides by its own count, and 1 process × 8 rows, 2 × 4 and 1 × 2 × 4 (accumulated)
give the same gradient even when padding makes the micro-batches' counts differ. Metrics are
divided by the same global count: the logged ``accuracy`` is the share of all pairs of the step.
A loss that is a mean over *sequences* of per-token means (GRPO's "sequence" averaging) counts
sequences and sums the per-sequence means; a constant normaliser (Dr. GRPO) counts sequences
and sums each sequence's token sum divided by the constant (``llmcourse.train.grpo``).

Optional parts (defaults here do nothing):

``rollout(model) -> (batch, metrics)``
    Reinforcement learning: new rows sampled from the current policy (``model``, in eval mode,
    without gradients), a dict of tensors whose first dimension is the row. The trainer then
    runs ``rollout_epochs`` shuffled passes of ``batch_size``-row micro-batches over them (one
    optimizer step per ``grad_accum_steps`` of those) before asking for the next rollout; the
    metrics (mean reward, KL, ...) are logged with every step trained on that rollout.
``frozen_models() -> {name: module}``
    Models the task runs but never trains (a reference policy, a teacher, a reward model). The
    trainer puts them on the device in eval mode, checks that they share no parameter with the
    trained model, and records a fingerprint of their weights in every checkpoint; resuming
    with different frozen weights is an error (they are inputs, like the data, not state).
``state_dict() / load_state_dict(state)``
    Task state a checkpoint must keep for an exact resume (PPO's adaptive KL coefficient, the
    generator its rollouts sample with): tensors, numbers, strings, lists and dicts.
``evaluate(model) -> {name: float}``
    Held-out numbers beyond the validation loss (accuracy of sampled answers, say); called with
    the other evaluations every ``eval_every`` steps.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from llmcourse.train.objectives import batch_loss, target_count

Batch = Any  # a dict of tensors (possibly nested), as the task's collate function builds it
Metrics = dict[str, Any]


class Task:
    """Base class of the objectives ``Trainer`` runs; subclass and define ``count`` and
    ``loss`` (see the module docstring for the contract and the optional parts)."""

    name: str = "training"  # the progress bar's label
    nats_per_token: bool = False  # the loss is an NLL per token: report perplexity, bits/byte
    rollout_epochs: int = 1  # passes over each rollout (tasks that define ``rollout``)

    def count(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define count(batch).")

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, Metrics]:
        raise NotImplementedError(f"{type(self).__name__} must define loss(model, batch).")

    def tokens(self, batch: Batch) -> int:
        ids = batch.get("input_ids") if isinstance(batch, dict) else None
        return ids.numel() if isinstance(ids, torch.Tensor) else 0

    def frozen_models(self) -> dict[str, nn.Module]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got keys {sorted(state)}.")

    @property
    def has_rollout(self) -> bool:
        return callable(getattr(self, "rollout", None))


class LanguageModelTask(Task):
    """Next-token (``"causal"``), masked-token (``"masked"``) or encoder-decoder (``"seq2seq"``)
    cross-entropy, the objectives of ``llmcourse.train.objectives`` (``batch_loss``).

    Units are target tokens (labels other than -100). A mixture-of-experts model's balancing
    loss (Fedus et al. 2022) joins the training loss as ``aux_loss_weight · aux`` per token of
    the micro-batch, so the step's objective is the token-weighted mean over micro-batches
    (with equal-sized micro-batches, the plain mean); it is logged as ``aux_loss`` and left out
    of evaluations, which report the cross-entropy alone.
    """

    nats_per_token = True

    def __init__(
        self,
        objective: str = "causal",
        *,
        label_smoothing: float = 0.0,
        decoder_start_id: int = 0,
        aux_loss_weight: float = 0.01,
    ) -> None:
        if objective not in ("causal", "masked", "seq2seq"):
            raise ValueError(
                f"objective must be 'causal', 'masked' or 'seq2seq', got {objective!r}."
            )
        self.objective, self.label_smoothing = objective, label_smoothing
        self.decoder_start_id, self.aux_loss_weight = decoder_start_id, aux_loss_weight

    @classmethod
    def from_config(cls, config: Any) -> LanguageModelTask:
        """The task ``TrainConfig``'s objective fields describe (the ``Trainer`` default)."""
        return cls(
            config.objective,
            label_smoothing=config.label_smoothing,
            decoder_start_id=config.decoder_start_id,
            aux_loss_weight=config.aux_loss_weight,
        )

    def count(self, batch: Batch) -> torch.Tensor:
        return target_count(batch, self.objective)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, Metrics]:
        loss, aux = batch_loss(
            model,
            batch,
            self.objective,
            label_smoothing=self.label_smoothing,
            decoder_start_id=self.decoder_start_id,
        )
        if aux is None or not model.training:
            return loss, {}
        weighted_aux = aux * self.count(batch)  # a sum over tokens, like the loss
        return loss + self.aux_loss_weight * weighted_aux, {"aux_loss": weighted_aux.detach()}


def check_task(task: Task | None, config: Any, train_data: Any) -> Task:
    """The task a ``Trainer`` runs (``config``'s language model by default), checked against
    the ``TrainConfig`` and the data."""
    if task is None:
        task = LanguageModelTask.from_config(config)
    elif not isinstance(task, Task):
        raise TypeError(
            f"task must be a llmcourse.train.tasks.Task, got {type(task).__name__}: subclass "
            "Task and define count(batch) and loss(model, batch)."
        )
    elif config.objective != "causal" or config.label_smoothing:
        raise ValueError(
            "TrainConfig.objective and label_smoothing configure the default language-model "
            f"task; with task={type(task).__name__} leave them at their defaults."
        )
    is_causal_lm = isinstance(task, LanguageModelTask) and task.objective == "causal"
    if config.seq_len_warmup_steps and not is_causal_lm:
        raise ValueError("The sequence-length curriculum cuts causal-LM batches only.")
    if task.has_rollout and train_data is not None:
        raise ValueError(
            f"{type(task).__name__} samples its own data with rollout(model): pass no train_data."
        )
    if not task.has_rollout and train_data is None:
        raise ValueError("Pass train_data (a dataset), or a task with a rollout step.")
    return task


def place_frozen_models(task: Task, model: nn.Module, device: torch.device) -> dict[str, nn.Module]:
    """Put the task's frozen models on the device in eval mode; refuse one that shares a
    parameter with the trained model (it would be trained after all)."""
    frozen = task.frozen_models()
    trained = {id(p) for p in model.parameters()}
    for name, module in frozen.items():
        if not isinstance(module, nn.Module):
            raise TypeError(f"frozen model {name!r} must be an nn.Module, got {type(module)}.")
        if any(id(p) in trained for p in module.parameters()):
            raise ValueError(
                f"The frozen {name} model shares parameters with the model being trained; give "
                "the task a copy (copy.deepcopy(model)) so that it stays fixed."
            )
        module.to(device).eval()
    return frozen


def fingerprint(module: nn.Module) -> str:
    """SHA-256 of a module's weights (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)  # 0-d tensors too
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
