"""Knowledge distillation: a small student learns from a large teacher's soft targets.

    L = α · T² · KL( softmax(z_teacher / T) ‖ softmax(z_student / T) ) + (1 − α) · CE(z_student, y)

(Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network", §2.) The teacher's
full distribution says more than the one correct token: which wrong answers are nearly right.
The temperature ``T > 1`` softens both distributions so those small probabilities carry weight;
the gradient of the soft term scales as 1/T², hence the ``T²`` that keeps the two terms
balanced when T changes. Teacher and student must share a tokenizer (the same vocabulary rows).

``distillation_loss`` works on any ``(..., vocab)`` logits; ``causal_distillation_loss`` aligns
an LM's logits with next-token labels first; ``distill`` is a small training loop for
``DecoderLM`` students over a stream of token batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.data.collators import IGNORE_INDEX
from llmcourse.train.objectives import causal_lm_loss


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """Hinton et al.'s loss (module docstring), averaged over positions whose label is not -100.

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
    vocab = student_logits.shape[-1]
    student = student_logits.reshape(-1, vocab).float()
    teacher = teacher_logits.reshape(-1, vocab).float().detach()
    flat_labels = labels.reshape(-1)
    keep = flat_labels != IGNORE_INDEX
    count = keep.sum().clamp(min=1)
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
) -> torch.Tensor:
    """``distillation_loss`` for causal LMs: logits at t are scored against ``labels[:, t + 1]``."""
    return distillation_loss(
        student_logits[:, :-1], teacher_logits[:, :-1], labels[:, 1:], temperature, alpha
    )


def distill(
    student: nn.Module,
    teacher: nn.Module | None,
    batches: Iterator[torch.Tensor] | Callable[[], torch.Tensor],
    steps: int,
    lr: float = 3e-3,
    temperature: float = 2.0,
    alpha: float = 0.5,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``student`` for ``steps`` AdamW steps on token batches ``(batch, seq)``.

    ``teacher=None`` trains the same student on the hard labels alone (the baseline a
    distillation result must beat). ``batches`` is an iterator or a function returning the next
    batch. Returns the loss of every step; ``on_step(step, loss)`` is called after each.
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}.")
    next_batch = batches if callable(batches) else lambda: next(batches)
    optimizer = torch.optim.AdamW(
        [p for p in student.parameters() if p.requires_grad], lr=lr, weight_decay=0.1
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 10) * (1 - 0.9 * step / steps)
    )
    if teacher is not None:
        teacher.eval()
    student.train()
    losses = []
    for step in range(steps):
        ids = next_batch()
        logits = student(ids).logits
        if teacher is None:
            loss = causal_lm_loss(logits, ids)
        else:
            with torch.no_grad():
                teacher_logits = teacher(ids).logits
            loss = causal_distillation_loss(logits, teacher_logits, ids, temperature, alpha)
        loss.backward()
        nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, float(loss.detach()))
    student.eval()
    return losses
