"""Turning next-token logits into a token: greedy, temperature, top-k, top-p, repetition penalty.

A language model gives logits ``z`` over the vocabulary; decoding picks one token per step.

- **Greedy** takes ``argmax z`` (``temperature=0``): deterministic, and prone to loops.
- **Temperature** samples from ``softmax(z / T)``: ``T < 1`` sharpens, ``T > 1`` flattens
  (Ackley, Hinton & Sejnowski 1985 gave the Boltzmann form).
- **Top-k** keeps the ``k`` largest logits (Fan, Lewis & Dauphin 2018).
- **Top-p** (nucleus) keeps the smallest set of most likely tokens whose probabilities add up
  to at least ``p`` (Holtzman et al. 2020), so the candidate count adapts to how sure the
  model is.
- **Repetition penalty** divides the positive logits (multiplies the negative ones) of tokens
  already present by ``θ > 1`` (Keskar et al. 2019, CTRL §4.1), making repeats less likely.

They are applied in that order (penalty, temperature, top-k, top-p), the order
``transformers``' ``generate`` uses, so the same seed draws the same tokens. Filters set the
removed logits to ``-inf``. Shapes: logits ``(batch, vocab)``.
"""

from __future__ import annotations

import torch


def apply_repetition_penalty(
    logits: torch.Tensor, previous_ids: torch.Tensor, penalty: float
) -> torch.Tensor:
    """CTRL's penalty: for every token in ``previous_ids`` ``(batch, seq)``, ``z / θ`` when
    ``z > 0`` and ``z · θ`` otherwise (either way the token becomes less likely for ``θ > 1``)."""
    if penalty == 1.0:
        return logits
    seen = torch.gather(logits, 1, previous_ids)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, previous_ids, seen)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row (ties with the k-th too); ``-inf`` the rest."""
    k = min(k, logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Nucleus filter: keep the most likely tokens until their probabilities sum to ``>= p``.

    Sorted by probability (largest first), token ``i`` is kept when the mass of the tokens
    *before* it is ``< p``: so the token that crosses ``p`` is kept too, and the most likely
    token always survives. Equivalently, a token goes when it and every less likely token
    together hold at most ``1 - p``; summing that tail from the least likely end keeps float32
    rounding from dropping tokens when ``p`` is close to 1.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    tail_mass = probs.flip(-1).cumsum(dim=-1).flip(-1)  # this token and all less likely ones
    remove_sorted = tail_mass <= 1.0 - p
    remove_sorted[..., :min_tokens_to_keep] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def process_logits(
    logits: torch.Tensor,
    previous_ids: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
) -> torch.Tensor:
    """All of the above, in ``transformers``' order; the result's softmax is the sampling
    distribution. With ``temperature=0`` only the penalty is applied (greedy ignores the rest)."""
    if previous_ids is not None and repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, previous_ids, repetition_penalty)
    if temperature == 0:
        return logits
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def next_token(
    logits: torch.Tensor,
    previous_ids: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token per row, ``(batch,)``: greedy when ``temperature == 0``, else a sample."""
    logits = process_logits(
        logits,
        previous_ids,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
    )
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
