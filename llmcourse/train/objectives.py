"""Pre-training objectives as loss functions: what the model is asked to predict, and from what.

Every objective is a cross-entropy between the model's logits and target token ids; they differ
in which tokens are targets and which tokens each position may see:

| objective | model | targets | sees |
|---|---|---|---|
| causal LM (GPT) | decoder | every next token | the tokens to its left |
| masked LM (BERT) | encoder | ~15% selected tokens | the whole corrupted sequence |
| span corruption (T5) | encoder-decoder | the dropped spans | the source, then the spans so far |
| prefix LM (UniLM, T5 §3.2) | decoder | tokens after the prefix | the whole prefix, then the left |

Label convention (shared with ``llmcourse.data`` and ``transformers``): ``labels`` are aligned
with ``input_ids`` and ``-100`` marks a position the loss ignores; ``causal_lm_loss`` does the
one-position shift itself. Losses return the mean over counted tokens (``reduction="mean"``) or
their sum (``"sum"``): the trainer sums and divides by the token count of the whole batch, so
gradient accumulation and several processes give the same gradient as one big batch.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.data.collators import IGNORE_INDEX

Reduction = Literal["mean", "sum", "none"]


def token_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Cross-entropy of ``logits`` ``(..., vocab)`` against ``targets`` ``(...)``.

    Computed in float32 whatever the logits' dtype (a bf16 log-softmax over 50k classes loses
    the small probabilities). ``reduction="mean"`` averages over non-ignored targets; with none
    counted it returns 0 rather than NaN, so an all-padding micro-batch does no harm.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree: logits "
            "need one extra last dimension (the vocabulary) and otherwise the targets' shape."
        )
    if targets.is_floating_point():
        raise TypeError(f"targets must be integer token ids, got dtype {targets.dtype}.")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_targets = targets.reshape(-1)
    losses = F.cross_entropy(
        flat_logits,
        flat_targets,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    if reduction == "none":
        return losses.view(targets.shape)
    total = losses.sum()
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / (flat_targets != ignore_index).sum().clamp(min=1)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")


def smoothed_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1
) -> torch.Tensor:
    """Label smoothing written out (Szegedy et al. 2016, §7): mean over ``targets`` ``(n,)``.

        q = (1 − ε)·onehot(y) + ε/K        loss = −Σ_k q_k log p_k
                                                = (1 − ε)·(−log p_y) + ε·mean_k(−log p_k)

    The target keeps 1 − ε of its probability and the rest is spread over all K classes, so the
    model is never pushed towards infinite logits. Equals ``F.cross_entropy(...,
    label_smoothing=ε)``; ``token_cross_entropy`` uses that fused form.
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (n, vocab)
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    uniform = -log_probs.mean(dim=-1)
    return ((1.0 - epsilon) * nll + epsilon * uniform).mean()


def causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Next-token prediction: position t's logits predict ``labels[:, t + 1]``.

        L = −1/|T| Σ_{t ∈ T} log P(x_{t+1} | x_≤t)        (Radford et al. 2018)

    ``logits`` ``(batch, seq, vocab)``, ``labels`` ``(batch, seq)`` aligned with the inputs. The
    last position has no next token and the first label is never a target; ``-100`` labels
    (padding, prompts in SFT) are not counted.
    """
    if logits.dim() != 3 or labels.dim() != 2:
        raise ValueError(
            f"causal_lm_loss expects logits (batch, seq, vocab) and labels (batch, seq), got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}."
        )
    return token_cross_entropy(
        logits[:, :-1],
        labels[:, 1:],
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )


def masked_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """BERT's masked LM (Devlin et al. 2019, §3.1): predict the selected tokens in place.

    No shift: position t's logits predict ``labels[:, t]``, which ``MLMCollator`` sets to the
    original token at the ~15% selected positions and to -100 everywhere else.
    """
    return token_cross_entropy(logits, labels, ignore_index=ignore_index, reduction=reduction)


def seq2seq_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Encoder-decoder loss (T5's span corruption, translation): no shift here.

    The decoder reads ``shift_right(labels)``, so its position t already predicts ``labels[:, t]``.
    """
    return token_cross_entropy(
        logits,
        labels,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )


def shift_right(labels: torch.Tensor, start_id: int, pad_id: int) -> torch.Tensor:
    """Decoder inputs from targets: ``[start, y_0, …, y_{n−2}]``, -100 replaced by ``pad_id``.

    "Teacher forcing": during training the decoder sees the true previous target, not its own
    guess. T5 uses its pad id (0) as the start token.
    """
    shifted = labels.new_full(labels.shape, pad_id)
    shifted[:, 0] = start_id
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad_id)


def prefix_lm_labels(input_ids: torch.Tensor, prefix_lengths: torch.Tensor) -> torch.Tensor:
    """Labels for ``causal_lm_loss`` that score only the continuation: -100 over each prefix.

    The token right after the prefix is a target (predicted from the last prefix position);
    the prefix tokens are inputs the model conditions on, not text it must produce. The
    matching attention mask is ``llmcourse.nn.masks.prefix_lm_mask``.
    """
    prefix_lengths = torch.as_tensor(prefix_lengths).reshape(-1, 1)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
    return input_ids.masked_fill(positions < prefix_lengths, IGNORE_INDEX)


def target_count(batch: dict[str, torch.Tensor], objective: str = "causal") -> torch.Tensor:
    """How many tokens of ``batch`` the objective's loss scores (a 0-d tensor)."""
    labels = batch["labels"][:, 1:] if objective == "causal" else batch["labels"]
    return (labels != IGNORE_INDEX).sum()


def batch_loss(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    objective: str = "causal",
    *,
    label_smoothing: float = 0.0,
    decoder_start_id: int = 0,
) -> tuple[torch.Tensor, Any]:
    """``(sum of token losses, auxiliary loss or None)`` of ``model`` on one batch.

    ``batch`` holds ``input_ids``, ``labels`` and optionally ``attention_mask`` (and, for
    ``"seq2seq"``, ``decoder_input_ids``, else ``shift_right(labels)``). ``objective`` is
    ``"causal"``, ``"masked"`` or ``"seq2seq"``; the auxiliary loss is a mixture-of-experts
    model's balancing loss (``None`` for dense models).
    """
    mask = batch.get("attention_mask")
    kwargs = {} if mask is None else {"attention_mask": mask}
    labels = batch["labels"]
    if objective == "seq2seq":
        decoder_ids = batch.get("decoder_input_ids")
        if decoder_ids is None:
            decoder_ids = shift_right(labels, decoder_start_id, decoder_start_id)
        output = model(batch["input_ids"], decoder_ids, **kwargs)
        loss = seq2seq_lm_loss(
            output.logits, labels, label_smoothing=label_smoothing, reduction="sum"
        )
    elif objective == "masked":
        output = model(batch["input_ids"], **kwargs)
        loss = masked_lm_loss(output.logits, labels, reduction="sum")
    elif objective == "causal":
        output = model(batch["input_ids"], **kwargs)
        loss = causal_lm_loss(
            output.logits, labels, label_smoothing=label_smoothing, reduction="sum"
        )
    else:
        raise ValueError(f"objective must be 'causal', 'masked' or 'seq2seq', got {objective!r}.")
    return loss, getattr(output, "aux_loss", None)
