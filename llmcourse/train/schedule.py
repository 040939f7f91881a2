"""Learning-rate schedules: linear warm-up, then cosine or linear decay to a floor, or constant.

    warm-up (step < W):  lr = max_lr · (step + 1) / W
    cosine  (W ≤ step):  lr = min_lr + ½ (max_lr − min_lr) (1 + cos(π p)),  p = (step − W)/(T − W)
    linear  (W ≤ step):  lr = max_lr − (max_lr − min_lr) · p
    after T steps:       lr = min_lr

Warm-up lets Adam's second-moment estimates settle before large steps are taken (Liu et al.
2020, "On the variance of the adaptive learning rate"); the decay anneals towards a minimum.
Cosine decay to 10% of the peak over the whole run is what GPT-3 (Brown et al. 2020, App. B),
Chinchilla (Hoffmann et al. 2022, which found the cycle must match the run's length) and
LLaMA (Touvron et al. 2023) used.

The ``warmup_*`` functions give the learning rate at a step (plot them, or write your own
loop). ``lr_lambda`` gives a multiplier of the optimizer's base learning rate for
``torch.optim.lr_scheduler.LambdaLR``, which works with any torch optimizer; it is a small
dataclass, so the scheduler's ``state_dict`` saves it and a resumed run continues exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ScheduleKind = Literal["cosine", "linear", "constant"]
KINDS: tuple[str, ...] = ("cosine", "linear", "constant")


def _check(step: int, warmup_steps: int, total_steps: int) -> None:
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step}.")
    if warmup_steps < 0 or total_steps < 1 or warmup_steps > total_steps:
        raise ValueError(
            f"Need 0 ≤ warmup_steps ≤ total_steps and total_steps ≥ 1, got warmup_steps="
            f"{warmup_steps}, total_steps={total_steps}."
        )


def _progress(step: int, warmup_steps: int, total_steps: int) -> float:
    """Fraction of the decay phase done, in [0, 1]."""
    return min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))


def warmup_cosine(
    step: int, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int
) -> float:
    """Learning rate at ``step``: linear warm-up to ``max_lr``, cosine decay to ``min_lr``."""
    _check(step, warmup_steps, total_steps)
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = _progress(step, warmup_steps, total_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def warmup_linear(
    step: int, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int
) -> float:
    """Learning rate at ``step``: linear warm-up to ``max_lr``, linear decay to ``min_lr``."""
    _check(step, warmup_steps, total_steps)
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    return max_lr - (max_lr - min_lr) * _progress(step, warmup_steps, total_steps)


def warmup_constant(step: int, max_lr: float, warmup_steps: int = 0) -> float:
    """Learning rate at ``step``: linear warm-up to ``max_lr``, then constant."""
    _check(step, warmup_steps, max(warmup_steps, 1))
    return max_lr * (step + 1) / warmup_steps if step < warmup_steps else max_lr


@dataclass(frozen=True)
class LRLambda:
    """Multiplier of the base learning rate at a step, for ``LambdaLR`` (see ``lr_lambda``)."""

    kind: str
    warmup_steps: int
    total_steps: int
    min_ratio: float

    def __call__(self, step: int) -> float:
        if self.kind == "cosine":
            return warmup_cosine(step, 1.0, self.min_ratio, self.warmup_steps, self.total_steps)
        if self.kind == "linear":
            return warmup_linear(step, 1.0, self.min_ratio, self.warmup_steps, self.total_steps)
        return warmup_constant(step, 1.0, self.warmup_steps)


def lr_lambda(
    kind: ScheduleKind = "cosine",
    warmup_steps: int = 0,
    total_steps: int = 1,
    min_ratio: float = 0.1,
) -> LRLambda:
    """A ``LambdaLR`` multiplier: ``LambdaLR(optimizer, lr_lambda("cosine", 100, 2000))``.

    ``min_ratio`` is the floor as a fraction of the peak (0.1: decay to 10%).
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown schedule {kind!r}; use one of {', '.join(KINDS)}.")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}.")
    _check(0, warmup_steps, total_steps)
    return LRLambda(kind, warmup_steps, total_steps, min_ratio)
