"""Reward model: a scalar score for (prompt, response), trained on preference pairs.

Bradley & Terry (1952) model a comparison as P(a ≻ b) = σ(r(a) − r(b)). Fitting r to pairs where
the chosen response y_c beat the rejected y_r is logistic regression on the score difference:

    L = −E[ log σ( r(x, y_c) − r(x, y_r) ) ]     (Ouyang et al. 2022, eq. 1; Stiennon et al. 2020)

The model is a pretrained LM with its vocabulary head replaced by a linear layer to one number.
``pooling="last"`` reads that number at the last real token of ``prompt + response``, the
position that has seen everything (Ouyang et al. 2022); ``pooling="mean"`` averages a score
per response token, r = (1/|y|) Σ_t w·h_t + b, which a small model learns far faster when the
preference is a sum of local features (as for the lessons' letter-counting rater).
Only differences of rewards are identified: adding a constant to every reward leaves the loss
unchanged. Held-out pair accuracy (how often r(y_c) > r(y_r)) is the usual quality measure.
``RewardModelTask`` trains it on ``Trainer`` from the rows of ``pair_tensors`` (``TensorRows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.data.collators import pad_batch
from llmcourse.train.batches import to_device
from llmcourse.train.preferences import PreferencePair
from llmcourse.train.sft import encode_text
from llmcourse.train.tasks import Metrics, Task


def bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """``−mean log σ(r_chosen − r_rejected)`` over a batch of pairs, each ``(batch,)`` (or the
    sum, ``reduction="sum"``).

    Written with ``logsigmoid``, which stays finite for large negative margins where
    ``log(sigmoid(x))`` underflows to −inf.
    """
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(
            f"chosen {tuple(chosen_rewards.shape)} and rejected {tuple(rejected_rewards.shape)} "
            "rewards must have the same shape (one of each per pair)."
        )
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
    return losses.mean() if reduction == "mean" else losses.sum()


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token for right-padded ``(batch, seq)`` masks."""
    return attention_mask.long().sum(-1) - 1


class RewardModel(nn.Module):
    """``backbone`` (a ``DecoderLM``; its ``lm_head`` is not used) + ``nn.Linear(d_model, 1)``.

    ``forward(input_ids, attention_mask=None, response_mask=None)`` → rewards ``(batch,)``:
    the head at the last real token (``pooling="last"``) or its mean over the positions where
    ``response_mask`` is 1 (``pooling="mean"``; without a mask, over all real tokens).
    """

    def __init__(self, backbone: nn.Module, pooling: Literal["last", "mean"] = "last") -> None:
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}.")
        self.backbone, self.pooling = backbone, pooling
        self.head = nn.Linear(backbone.config.d_model, 1)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=1.0 / (backbone.config.d_model + 1) ** 0.5)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        response_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden = self.backbone(input_ids, attention_mask=attention_mask).hidden_states
        if self.pooling == "mean":
            weights = response_mask if response_mask is not None else attention_mask
            if weights is None:
                weights = torch.ones_like(input_ids)
            weights = weights.to(hidden.dtype)
            per_token = self.head(hidden).squeeze(-1)  # (batch, seq)
            return (per_token * weights).sum(-1) / weights.sum(-1).clamp(min=1)
        if attention_mask is None:
            last = hidden[:, -1]
        else:
            last = hidden[torch.arange(hidden.shape[0]), last_token_index(attention_mask)]
        return self.head(last).squeeze(-1)

    @torch.no_grad()
    def score(self, prompts: torch.Tensor, responses: Sequence[Sequence[int]]) -> torch.Tensor:
        """Rewards ``(batch,)`` of ``prompts`` ``(batch, prompt_len)`` followed by ``responses``
        (lists of ids, possibly of different lengths): the ``reward_fn`` ``PPOTask`` takes."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses.")
        prompt_len = prompts.shape[1]
        ids = [
            prompt.tolist() + list(response)
            for prompt, response in zip(prompts, responses, strict=True)
        ]
        device = self.head.weight.device  # where the model is, whatever the prompts' device
        input_ids = pad_batch(ids, 0).to(device)
        lengths = torch.tensor([len(i) for i in ids], device=device)
        positions = torch.arange(input_ids.shape[1], device=device)
        attention_mask = (positions < lengths[:, None]).long()
        response_mask = attention_mask * (positions >= prompt_len).long()
        self.eval()
        return self(input_ids, attention_mask, response_mask)


def pair_tensors(
    tokenizer: Any, pairs: Sequence[PreferencePair], pad_id: int = 0
) -> dict[str, torch.Tensor]:
    """Right-padded ``{side}_ids``, ``{side}_mask`` (1 on real tokens) and
    ``{side}_response_mask`` (1 on response tokens) for ``side`` in chosen and rejected."""
    if not pairs:
        raise ValueError("No preference pairs given.")
    batch: dict[str, torch.Tensor] = {}
    prompts = [encode_text(tokenizer, p.prompt) for p in pairs]
    for side in ("chosen", "rejected"):
        responses = [encode_text(tokenizer, getattr(p, side)) for p in pairs]
        lengths = list(zip(map(len, prompts), map(len, responses), strict=True))
        batch[f"{side}_ids"] = pad_batch(
            [p + r for p, r in zip(prompts, responses, strict=True)], pad_id
        )
        batch[f"{side}_mask"] = pad_batch([[1] * (p + r) for p, r in lengths], 0)
        batch[f"{side}_response_mask"] = pad_batch([[0] * p + [1] * r for p, r in lengths], 0)
    return batch


def _rewards(model: nn.Module, batch: dict[str, torch.Tensor], side: str) -> torch.Tensor:
    return model(batch[f"{side}_ids"], batch[f"{side}_mask"], batch[f"{side}_response_mask"])


class RewardModelTask(Task):
    """The Bradley-Terry loss on ``Trainer``: batches are rows of ``pair_tensors``, the unit a
    pair; ``accuracy`` is the share of pairs where the chosen response scores higher."""

    name = "reward model"

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["chosen_ids"].shape[0]

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["chosen_ids"].numel() + batch["rejected_ids"].numel()

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, Metrics]:
        chosen = _rewards(model, batch, "chosen").float()  # float32 under autocast too
        rejected = _rewards(model, batch, "rejected").float()
        loss = bradley_terry_loss(chosen, rejected, reduction="sum")
        return loss, {"accuracy": (chosen > rejected).detach().sum()}


@torch.no_grad()
def preference_accuracy(model: RewardModel, batch: dict[str, torch.Tensor]) -> float:
    """Fraction of pairs where the chosen response gets the higher reward."""
    model.eval()
    batch = to_device(batch, model.head.weight.device)
    chosen, rejected = _rewards(model, batch, "chosen"), _rewards(model, batch, "rejected")
    return float((chosen > rejected).float().mean())
