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

``DPOTask`` trains with it on ``Trainer``: rows of ``preference_batches`` (``TensorRows``) are
the data, the frozen reference scores each minibatch without gradients, and the logged
``margin`` and ``accuracy`` are the implicit reward margin and the share of pairs it orders
right. The loss only asks the chosen response to gain on the rejected one, so both can lose
likelihood together; on maths, Pang et al. (2024, iterative RPO) add the chosen response's
negative log-likelihood per token, α·(−log π_θ(y_c|x)/|y_c|), which ``nll_coef`` = α does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.data.collators import IGNORE_INDEX, SFTCollator
from llmcourse.train.logprobs import sequence_logprobs
from llmcourse.train.preferences import PreferencePair
from llmcourse.train.sft import encode_text
from llmcourse.train.tasks import Metrics, Task


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> torch.Tensor:
    """DPO loss over a batch (its mean, sum or per pair); every argument ``(batch,)`` of summed
    response log-probs."""
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
    losses = -F.logsigmoid(beta * (chosen - rejected))
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")


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


def _logps(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return sequence_logprobs(model, batch["input_ids"], batch["labels"], batch["attention_mask"])


class DPOTask(Task):
    """DPO on ``Trainer``: batches ``{"chosen": ..., "rejected": ...}`` (``preference_batches``
    rows); the unit is a pair. ``reference`` is the frozen π_ref (a copy of the starting policy).
    """

    name = "DPO"

    def __init__(self, reference: nn.Module, beta: float = 0.1, nll_coef: float = 0.0) -> None:
        if beta <= 0:
            raise ValueError(f"beta must be positive, got {beta}.")
        if nll_coef < 0:
            raise ValueError(f"nll_coef must be ≥ 0, got {nll_coef}.")
        self.reference, self.beta, self.nll_coef = reference, beta, nll_coef

    def frozen_models(self) -> dict[str, nn.Module]:
        return {"reference": self.reference}

    def count(self, batch: dict[str, Any]) -> int:
        return batch["chosen"]["input_ids"].shape[0]

    def tokens(self, batch: dict[str, Any]) -> int:
        return batch["chosen"]["input_ids"].numel() + batch["rejected"]["input_ids"].numel()

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, Metrics]:
        chosen, rejected = _logps(model, batch["chosen"]), _logps(model, batch["rejected"])
        with torch.no_grad():
            ref_chosen = _logps(self.reference, batch["chosen"])
            ref_rejected = _logps(self.reference, batch["rejected"])
        loss = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, self.beta, reduction="sum")
        with torch.no_grad():
            margin = implicit_rewards(chosen, ref_chosen, self.beta) - implicit_rewards(
                rejected, ref_rejected, self.beta
            )
        metrics = {"margin": margin.sum(), "accuracy": (margin > 0).sum()}
        if self.nll_coef:
            lengths = (batch["chosen"]["labels"][:, 1:] != IGNORE_INDEX).sum(-1).clamp(min=1)
            nll = (-chosen / lengths).sum()  # per-token NLL of each chosen response, summed
            loss = loss + self.nll_coef * nll
            metrics["chosen_nll"] = nll.detach()
        return loss, metrics
