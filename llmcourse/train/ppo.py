"""The mathematics of PPO for language models: KL estimators, rewards, GAE, clipped losses.

RLHF with PPO (Ziegler et al. 2019; Ouyang et al. 2022) treats each generated token as an action.
The reward of a response is a score r(x, y) at its last token, and every token pays a KL penalty
against a **frozen reference model** (the SFT model), never against the previous policy:

    r_t = −β · KL_t(π_θ ‖ π_ref) + [t = T] · r(x, y)

``kl_estimate`` gives the per-token KL in three forms (Schulman 2020, "Approximating KL
Divergence"), with log-ratio ℓ = log π_ref(y_t) − log π_θ(y_t) for tokens sampled from π_θ:

    k1 = −ℓ               unbiased, high variance, can be negative on a single token
    k2 = ℓ² / 2           biased, low variance, ≥ 0
    k3 = (e^ℓ − 1) − ℓ    unbiased, low variance, ≥ 0

Advantages come from generalised advantage estimation (Schulman et al. 2016):

    δ_t = r_t + γ V(s_{t+1}) − V(s_t),    A_t = Σ_l (γλ)^l δ_{t+l},    returns R_t = A_t + V(s_t)

and the policy and value losses are PPO's clipped surrogates (Schulman et al. 2017, eq. 7), with
ratio ρ_t = π_θ(y_t) / π_old(y_t):

    L_policy = −E[ min(ρ_t A_t, clip(ρ_t, 1 − ε, 1 + ε) A_t) ]
    L_value  = ½ E[ max((V − R)², (clip(V, V_old − ε_v, V_old + ε_v) − R)²) ]

β follows Ziegler et al.'s adaptive controller: it grows when the measured KL exceeds a target
and shrinks when it falls below. All losses average over response tokens (``mask`` = 1), or sum
over them with ``reduction="sum"`` (what ``PPOTask`` gives ``Trainer``, which divides by the
response tokens of the whole step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from llmcourse.train.masked import masked_mean, masked_normalize
from llmcourse.utils.checks import check_number

KLEstimator = Literal["k1", "k2", "k3"]
Reduction = Literal["mean", "sum"]


def _reduce(values: torch.Tensor, mask: torch.Tensor | None, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return masked_mean(values, mask)
    if reduction == "sum":
        return masked_normalize(values, mask)
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")


def whiten(values: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8):
    """``(x − mean) / std`` over the masked entries (advantage normalisation); 0 elsewhere."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(variance + eps)
    return whitened if mask is None else whitened * mask.to(values.dtype)


def kl_estimate(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: KLEstimator = "k1"
) -> torch.Tensor:
    """Per-token estimate of KL(π_θ ‖ π_ref) from log-probs of tokens sampled from π_θ.

    ``logprobs``, ``ref_logprobs``: ``(batch, seq)``; returns the same shape (see the module
    docstring for k1, k2, k3). Zero wherever the two models agree.
    """
    log_ratio = ref_logprobs - logprobs  # ℓ = log(π_ref / π_θ)
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"estimator must be 'k1', 'k2' or 'k3', got {estimator!r}.")


def kl_from_logits(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact KL(π_θ(·|prefix) ‖ π_ref(·|prefix)) of each next-token distribution: ``(..., vocab)``
    → ``(...)``. Summed over the positions of sampled responses it estimates the sequence KL
    with far less noise than k1 or k3 (it averages over every token, not only the sampled one);
    it needs the reference's full logits, which a small vocabulary makes cheap."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    log_ref = torch.log_softmax(ref_logits.float(), dim=-1)
    return (log_p.exp() * (log_p - log_ref)).sum(-1)


def token_rewards(
    scores: torch.Tensor, kl: torch.Tensor, kl_coef: float, mask: torch.Tensor
) -> torch.Tensor:
    """``r_t = −β·KL_t``, plus the sequence score at each row's last response token.

    ``scores`` ``(batch,)``; ``kl`` and ``mask`` ``(batch, seq)`` (mask 1 on response tokens).
    """
    rewards = -kl_coef * kl * mask
    last = mask.long().cumsum(-1).argmax(-1)  # the last position where mask is 1
    rewards[torch.arange(rewards.shape[0]), last] += scores.to(rewards.dtype)
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns, both ``(batch, seq)``, vectorised.

    ``rewards`` and ``values`` ``(batch, seq)``: V(s_t) for each step of an episode that ends
    after the last step (the value after it is 0). For padded steps set both reward and value
    to 0: their δ is then 0 and they add nothing. Instead of the backward loop (``gae_loop``)
    the discounted sums are one matrix product with the upper-triangular (γλ)^(l−t).
    """
    if rewards.shape != values.shape:
        raise ValueError(
            f"rewards {tuple(rewards.shape)} and values {tuple(values.shape)} must match."
        )
    check_number("gamma", gamma, 0, 1)  # a discount: γ > 1 makes the sums grow without bound
    check_number("lam", lam, 0, 1)
    next_values = torch.cat((values[..., 1:], torch.zeros_like(values[..., :1])), dim=-1)
    deltas = rewards + gamma * next_values - values
    steps = rewards.shape[-1]
    index = torch.arange(steps, device=rewards.device)
    offsets = index[:, None] - index[None, :]  # (l, t): l − t
    discounts = torch.where(
        offsets >= 0,
        torch.as_tensor(gamma * lam, dtype=deltas.dtype, device=deltas.device)
        ** offsets.clamp(min=0),
        torch.zeros((), dtype=deltas.dtype, device=deltas.device),
    )
    advantages = deltas @ discounts  # A_t = Σ_l δ_l (γλ)^(l − t) for l ≥ t
    return advantages, advantages + values


def gae_loop(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook backward recursion A_t = δ_t + γλ A_{t+1} (the reference ``gae`` is tested
    against)."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        next_value = values[..., t + 1] if t + 1 < rewards.shape[-1] else 0.0
        delta = rewards[..., t] + gamma * next_value - values[..., t]
        running = delta + gamma * lam * running
        advantages[..., t] = running
    return advantages, advantages + values


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor | None = None,
    clip: float = 0.2,
    reduction: Reduction = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate loss and the fraction of tokens where clipping was active
    (with ``reduction="sum"``: the summed loss and the number of clipped tokens).

    All inputs ``(batch, seq)``. When ρ = 1 (the first minibatch after a rollout) the loss is
    the plain policy-gradient loss −E[A].
    """
    objective, clipped = clipped_surrogate(logprobs, old_logprobs, advantages, clip)
    loss = -_reduce(objective, mask, reduction)
    clip_fraction = _reduce(clipped.float(), mask, reduction)
    return loss, clip_fraction


def clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's per-token objective min(ρA, clip(ρ, 1 − ε, 1 + ε)A), ρ = exp(log π − log π_old), and
    where the clipped term was the smaller one (the gradient is 0 there).

    ``advantages`` broadcasts to ``logprobs`` (GRPO gives one per sequence, ``(batch, 1)``).
    For A > 0 the objective stops growing at ρ = 1 + ε; for A < 0 it stops falling at 1 − ε:
    one update cannot move a token's probability far from where the samples came from.
    """
    if clip <= 0:
        raise ValueError(f"clip must be positive, got {clip}.")
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    return torch.minimum(unclipped, clipped), clipped < unclipped


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor | None = None,
    clip: float = 0.2,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Clipped value loss: the worse of the raw and the clipped prediction's squared error."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    worst = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * _reduce(worst, mask, reduction)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy −Σ p log p of each next-token distribution: ``(..., vocab)`` → ``(...)``."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(-1)


@dataclass
class AdaptiveKLController:
    """β ← β·(1 + K·e), e = clip(KL/target − 1, −0.2, 0.2), K = n_steps/horizon (Ziegler et al.
    2019, §2.2). ``target=None`` keeps β fixed."""

    kl_coef: float = 0.1
    target: float | None = 6.0
    horizon: int = 10_000

    def update(self, kl: float, n_steps: int) -> float:
        """Adjust β after a batch whose mean KL per sequence was ``kl``; returns the new β."""
        if self.target is not None:
            error = max(-0.2, min(0.2, kl / self.target - 1.0))
            self.kl_coef *= 1.0 + error * n_steps / self.horizon
        return self.kl_coef
