"""Log-probabilities of given tokens under a causal LM: what SFT, DPO, PPO and scoring share.

    log π(y | x) = Σ_t log π(y_t | x, y_<t)

``token_logprobs`` returns the per-position terms (PPO needs one per generated token);
``sequence_logprobs`` sums them over the positions a label mask selects (DPO compares whole
responses). Labels follow the package convention: aligned with ``input_ids``, ``-100`` where a
position is not scored, and the logits at position t predict the token at t + 1.
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.data.collators import IGNORE_INDEX


def gather_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[..., target]``: ``(batch, seq, vocab)``, ``(batch, seq)`` → ``(batch,
    seq)``, in float32. Targets of ``-100`` give 0 (they are masked out later anyway)."""
    safe = targets.clamp(min=0)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    picked = log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return picked.masked_fill(targets == IGNORE_INDEX, 0.0)


def token_logprobs(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log π(x_{t+1} | x_≤t)`` for every position: ``(batch, seq - 1)``.

    Entry ``t`` scores token ``t + 1``; mask the prompt and padding yourself.
    """
    output = model(input_ids, attention_mask=attention_mask)
    logits = output if isinstance(output, torch.Tensor) else output.logits
    return gather_logprobs(logits[:, :-1], input_ids[:, 1:])


def sequence_logprobs(
    model: nn.Module,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    average: bool = False,
) -> torch.Tensor:
    """``Σ_t log π(labels_t | input_<t)`` over labelled positions: ``(batch,)``.

    ``labels`` ``(batch, seq)`` aligned with ``input_ids`` (``-100`` on prompt and padding), as
    ``SFTCollator`` makes them. ``average=True`` divides by the number of scored tokens.
    """
    if labels.shape != input_ids.shape:
        raise ValueError(
            f"labels {tuple(labels.shape)} must have input_ids' shape {tuple(input_ids.shape)}."
        )
    output = model(input_ids, attention_mask=attention_mask)
    logits = output if isinstance(output, torch.Tensor) else output.logits
    targets = labels[:, 1:]
    per_token = gather_logprobs(logits[:, :-1], targets)
    total = per_token.sum(-1)
    if average:
        return total / (targets != IGNORE_INDEX).sum(-1).clamp(min=1)
    return total
