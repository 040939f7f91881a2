"""Permutation language modelling (XLNet; Yang et al. 2019): autoregression in a random order.

A causal LM factorises P(x) left to right; a masked LM sees both sides but predicts masked
tokens independently of each other. XLNet keeps the autoregressive factorisation but samples
a random *order* z of the positions for every sequence:

    log P(x) = Σ_t log P(x_{z_t} | x_{z_<t})

Averaged over orders, every token learns from context on both sides. The tokens stay in place
(positions are unchanged); only the attention masks encode the order. Two streams are needed
because a position must not see its own token when predicting it, yet must expose it to the
positions that come later in the order:

- the **content stream** h_i sees the tokens z_≤t (itself included): ``rank[j] ≤ rank[i]``;
- the **query stream** g_i sees z_<t and knows only its own position: ``rank[j] < rank[i]``.

XLNet predicts only the last 1/K of each order (partial prediction, K = 6 or 7 in the paper),
where the context is long enough to be informative.
"""

from __future__ import annotations

import torch


def factorization_order(seq_len: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random order of the positions ``0 … seq_len − 1``: ``(seq_len,)``."""
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}.")
    return torch.randperm(seq_len, generator=generator)


def permutation_masks(order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(content_mask, query_mask)``, each ``(seq, seq)`` bool, True where query i sees key j.

    ``order[t]`` is the position predicted at step t. With ``order = arange(seq)`` the content
    mask is the ordinary causal mask and the query mask is causal without the diagonal.
    """
    order = torch.as_tensor(order)
    seq_len = order.numel()
    if order.dim() != 1 or not torch.equal(order.sort().values, torch.arange(seq_len)):
        raise ValueError(f"order must be a permutation of 0..{seq_len - 1}, got {order.tolist()}.")
    rank = torch.empty_like(order)
    rank[order] = torch.arange(seq_len)  # rank[i]: the step at which position i is predicted
    content = rank[None, :] <= rank[:, None]
    query = rank[None, :] < rank[:, None]
    return content, query


def partial_prediction_targets(order: torch.Tensor, k: int = 6) -> torch.Tensor:
    """Bool ``(seq,)``: True on the positions whose turn comes in the last 1/k of ``order``."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    order = torch.as_tensor(order)
    n_predict = max(1, order.numel() // k)
    targets = torch.zeros(order.numel(), dtype=torch.bool)
    targets[order[-n_predict:]] = True
    return targets
