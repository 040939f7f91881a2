"""Sparse mixture of experts: each token is processed by the top-k of ``n_expert`` MLPs.

    g(x) = softmax(top-k(W_router x))            weights of the chosen experts
    y    = Σ_{e ∈ top-k} g_e(x) · Expert_e(x)    (Shazeer et al. 2017; Mixtral: Jiang et al. 2024)

Parameters grow with ``n_expert`` but compute per token with ``k``: Mixtral 8x7B holds 46.7B
parameters and uses 12.9B per token. Without help the router collapses onto a few experts, so
training adds the load-balancing loss of Switch Transformer (Fedus et al. 2022, eq. 4):

    L_balance = n_expert · Σ_e f_e · P_e

``f_e`` is the fraction of routing slots sent to expert ``e`` and ``P_e`` the mean router
probability of ``e``; it equals 1 when routing is uniform and grows as it concentrates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.nn.feedforward import make_mlp


def load_balancing_loss(router_probs: torch.Tensor, expert_index: torch.Tensor) -> torch.Tensor:
    """``router_probs`` ``(tokens, n_expert)``, ``expert_index`` ``(tokens, k)`` → scalar loss."""
    n_expert = router_probs.shape[-1]
    slots = F.one_hot(expert_index, n_expert).float().sum(dim=1)  # (tokens, n_expert)
    fraction = slots.mean(dim=0) / expert_index.shape[-1]
    return n_expert * torch.sum(fraction * router_probs.float().mean(dim=0))


class MixtureOfExperts(nn.Module):
    """Top-k routed experts; ``forward`` returns ``(output, load_balancing_loss)``.

    The router is ``router`` (``nn.Linear(d_model, n_expert, bias=False)``); the experts are
    ``experts[e]``, each the MLP the config names.
    """

    def __init__(
        self, d_model: int, d_ff: int, n_expert: int, top_k: int, mlp: str, bias: bool = False
    ) -> None:
        super().__init__()
        if not 0 < top_k <= n_expert:
            raise ValueError(f"top_k={top_k} must be between 1 and n_expert={n_expert}.")
        self.top_k = top_k
        self.router = nn.Linear(d_model, n_expert, bias=False)
        self.experts = nn.ModuleList(make_mlp(mlp, d_model, d_ff, bias) for _ in range(n_expert))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, seq, d_model)`` → same shape, and the scalar balancing loss."""
        tokens = x.reshape(-1, x.shape[-1])
        router_probs = torch.softmax(self.router(tokens).float(), dim=-1)
        top_probs, expert_index = router_probs.topk(self.top_k, dim=-1)
        # Renormalising the chosen probabilities = softmax over the top-k logits (Mixtral).
        top_probs = (top_probs / top_probs.sum(dim=-1, keepdim=True)).to(x.dtype)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            token_ids, slot = torch.where(expert_index == e)
            if token_ids.numel() == 0:
                continue
            weighted = expert(tokens[token_ids]) * top_probs[token_ids, slot, None]
            out.index_add_(0, token_ids, weighted)
        return out.view_as(x), load_balancing_loss(router_probs, expert_index)
