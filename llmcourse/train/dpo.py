"""Direct preference optimisation: learn from preference pairs without a reward model or RL.

Rafailov et al. (2023) show that the KL-regularised RLHF objective has a closed-form optimum,
π*(y|x) ∝ π_ref(y|x)·exp(r(x, y)/β), so a reward is implied by any policy:
r(x, y) = β log(π(y|x) / π_ref(y|x)) + const. Putting that into the Bradley-Terry loss gives a
loss on the policy directly (their eq. 7):

    L_DPO = −E[ log σ( β [ (log π_θ(y_c|x) − log π_ref(y_c|x))
                          − (log π_θ(y_r|x) − log π_ref(y_r|x)) ] ) ]

At the start π_θ = π_ref, the margin is 0 and the loss is −log σ(0) = ln 2 ≈ 0.693 whatever the
data: a free check that the pipeline is wired correctly. β plays the role of the KL coefficient
(small β: the policy may move far from the reference).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.data.collators import SFTCollator
from llmcourse.train.logprobs import sequence_logprobs
from llmcourse.train.preferences import PreferencePair
from llmcourse.train.sft import encode_text


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Mean DPO loss over a batch; every argument ``(batch,)`` of summed response log-probs."""
    shapes = {
        tuple(t.shape)
        for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)
    }
    if len(shapes) != 1:
        raise ValueError(f"All four log-prob tensors must have one shape, got {sorted(shapes)}.")
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}.")
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    return -F.logsigmoid(beta * (chosen - rejected)).mean()


def implicit_rewards(
    policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float = 0.1
) -> torch.Tensor:
    """DPO's implied reward β·log(π_θ/π_ref) of each response ``(batch,)``."""
    return beta * (policy_logps - ref_logps)


def preference_batches(
    tokenizer: Any, pairs: Sequence[PreferencePair], pad_id: int = 0
) -> dict[str, dict[str, torch.Tensor]]:
    """``{"chosen": batch, "rejected": batch}``, each an ``SFTCollator`` batch (prompt masked)."""
    if not pairs:
        raise ValueError("No preference pairs given.")
    collate = SFTCollator(pad_id)
    batches = {}
    for side in ("chosen", "rejected"):
        batches[side] = collate(
            [
                {
                    "prompt_ids": encode_text(tokenizer, p.prompt),
                    "response_ids": encode_text(tokenizer, getattr(p, side)),
                }
                for p in pairs
            ]
        )
    return batches


def _rows(batch: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    return {key: value[rows] for key, value in batch.items()}


def _logps(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return sequence_logprobs(model, batch["input_ids"], batch["labels"], batch["attention_mask"])


def train_dpo(
    policy: nn.Module,
    reference: nn.Module,
    batches: dict[str, dict[str, torch.Tensor]],
    steps: int,
    beta: float = 0.1,
    batch_size: int = 16,
    lr: float = 1e-4,
    seed: int = 0,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """AdamW on ``dpo_loss`` over minibatches of ``preference_batches``; the reference's
    log-probs are computed once. Returns per-step loss, reward margin and pair accuracy."""
    reference.eval()
    with torch.no_grad():
        ref_chosen = _logps(reference, batches["chosen"])
        ref_rejected = _logps(reference, batches["rejected"])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        [p for p in policy.parameters() if p.requires_grad], lr=lr, weight_decay=0.0
    )
    n = ref_chosen.shape[0]
    history = []
    policy.train()
    for step in range(steps):
        rows = torch.randperm(n, generator=generator)[: min(batch_size, n)]
        chosen = _logps(policy, _rows(batches["chosen"], rows))
        rejected = _logps(policy, _rows(batches["rejected"], rows))
        loss = dpo_loss(chosen, rejected, ref_chosen[rows], ref_rejected[rows], beta)
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            margin = implicit_rewards(chosen, ref_chosen[rows], beta) - implicit_rewards(
                rejected, ref_rejected[rows], beta
            )
        record = {
            "step": step,
            "loss": float(loss.detach()),
            "margin": float(margin.mean()),
            "accuracy": float((margin > 0).float().mean()),
        }
        history.append(record)
        if on_step is not None:
            on_step(step, record)
    policy.eval()
    return history
