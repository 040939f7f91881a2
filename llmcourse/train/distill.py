"""Knowledge distillation: a small student learns from a large teacher's soft targets.

    L = α · T² · KL( softmax(z_teacher / T) ‖ softmax(z_student / T) ) + (1 − α) · CE(z_student, y)

(Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network", §2.) The teacher's
full distribution says more than the one correct token: which wrong answers are nearly right.
The temperature ``T > 1`` softens both distributions so those small probabilities carry weight;
the gradient of the soft term scales as 1/T², hence the ``T²`` that keeps the two terms
balanced when T changes. Teacher and student must share a tokenizer (the same vocabulary rows).

``distillation_loss`` works on any ``(..., vocab)`` logits; ``causal_distillation_loss`` aligns
an LM's logits with next-token labels first; ``DistillationTask`` trains a causal-LM student
with it on ``Trainer`` (the labels-only baseline is the default language-model task).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.data.collators import IGNORE_INDEX
from llmcourse.train.objectives import target_count
from llmcourse.train.tasks import Metrics, Task

Reduction = Literal["mean", "sum"]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    alpha: float = 0.5,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Hinton et al.'s loss (module docstring), averaged over positions whose label is not -100
    (or summed over them, ``reduction="sum"``).

    ``student_logits`` and ``teacher_logits``: ``(..., vocab)``; ``labels``: ``(...)`` hard
    targets. ``alpha=1`` is pure distillation, ``alpha=0`` ordinary cross-entropy.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"Student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ: distillation needs the same positions and the "
            "same vocabulary (one shared tokenizer)."
        )
    if labels.shape != student_logits.shape[:-1]:
        raise ValueError(
            f"labels {tuple(labels.shape)} must match the logits without the vocabulary axis, "
            f"{tuple(student_logits.shape[:-1])}."
        )
    if temperature <= 0 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"Need temperature > 0 and 0 ≤ alpha ≤ 1, got {temperature}, {alpha}.")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
    vocab = student_logits.shape[-1]
    student = student_logits.reshape(-1, vocab).float()
    teacher = teacher_logits.reshape(-1, vocab).float().detach()
    flat_labels = labels.reshape(-1)
    keep = flat_labels != IGNORE_INDEX
    count = keep.sum().clamp(min=1) if reduction == "mean" else 1
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)  # KL(teacher‖student)
    soft = (kl * keep).sum() / count * temperature**2
    hard = F.cross_entropy(student, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum") / count
    return alpha * soft + (1.0 - alpha) * hard


def causal_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    alpha: float = 0.5,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """``distillation_loss`` for causal LMs: logits at t are scored against ``labels[:, t + 1]``."""
    return distillation_loss(
        student_logits[:, :-1],
        teacher_logits[:, :-1],
        labels[:, 1:],
        temperature,
        alpha,
        reduction,
    )


class DistillationTask(Task):
    """``causal_distillation_loss`` on ``Trainer`` for a causal-LM student.

    Batches are language-model batches (``input_ids``, ``labels``, optionally
    ``attention_mask``; ``RandomWindows`` or ``SFTCollator`` make them); the unit is a target
    token. ``teacher`` is frozen and must share the student's tokenizer.
    """

    name = "distillation"

    def __init__(self, teacher: nn.Module, temperature: float = 2.0, alpha: float = 0.5) -> None:
        if temperature <= 0 or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Need temperature > 0 and 0 ≤ alpha ≤ 1, got {temperature}, {alpha}.")
        self.teacher, self.temperature, self.alpha = teacher, temperature, alpha

    def frozen_models(self) -> dict[str, nn.Module]:
        return {"teacher": self.teacher}

    def count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return target_count(batch, "causal")

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, Metrics]:
        mask = batch.get("attention_mask")
        kwargs = {} if mask is None else {"attention_mask": mask}
        logits = model(batch["input_ids"], **kwargs).logits
        with torch.no_grad():
            teacher_logits = self.teacher(batch["input_ids"], **kwargs).logits
        loss = causal_distillation_loss(
            logits, teacher_logits, batch["labels"], self.temperature, self.alpha, "sum"
        )
        return loss, {}
