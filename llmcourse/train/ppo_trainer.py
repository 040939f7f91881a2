"""The PPO loop for a language model: rollouts, rewards, advantages, several epochs of updates.

One ``PPOTrainer.step``:

1. **rollout**: sample responses to a batch of prompts with ``llmcourse.infer.generate`` from
   the current policy;
2. **score**: the reward function rates each whole response given its prompt (a reward model's
   ``score`` or a rule); the frozen reference model gives
   per-token log-probs for the KL penalty (``llmcourse.train.ppo``);
3. **advantages**: per-token rewards → GAE with the value head's estimates → whitened;
4. **update**: ``ppo_epochs`` passes over shuffled minibatches, each minimising the clipped
   policy loss + ``vf_coef`` × the clipped value loss; the rollout's log-probs stay fixed as
   π_old;
5. **adapt β** with the adaptive KL controller, and log reward, KL, entropy, clip fraction.

The policy and the value function share one transformer (``PolicyWithValue``: a ``DecoderLM``
plus a linear value head), as in Ziegler et al. (2019); InstructGPT used a separate value model
initialised from the reward model. Prompts in a batch have equal length (no left padding);
responses may end early at ``stop_token``, after which tokens are masked out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from llmcourse.infer import generate
from llmcourse.train.logprobs import gather_logprobs
from llmcourse.train.ppo import (
    AdaptiveKLController,
    KLEstimator,
    entropy_from_logits,
    gae,
    kl_estimate,
    masked_mean,
    ppo_policy_loss,
    ppo_value_loss,
    token_rewards,
    whiten,
)


class PolicyWithValue(nn.Module):
    """A ``DecoderLM`` (``lm``) and a value head on its last hidden states.

    ``forward(ids)`` → ``(logits (batch, seq, vocab), values (batch, seq))``; ``lm`` alone is
    what ``generate`` samples from.
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm
        self.value_head = nn.Linear(lm.config.d_model, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.lm(input_ids)
        return output.logits, self.value_head(output.hidden_states).squeeze(-1)


@dataclass
class PPOConfig:
    """Hyper-parameters of ``PPOTrainer`` (defaults: a tiny GPT on a CPU)."""

    batch_size: int = 32  # rollouts per step
    max_new_tokens: int = 32
    temperature: float = 1.0
    ppo_epochs: int = 4
    minibatch_size: int = 16
    lr: float = 1e-4
    clip: float = 0.2
    value_clip: float = 0.2
    vf_coef: float = 0.5
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.1  # β at the start; 0 switches the KL penalty off
    target_kl: float | None = 6.0  # nats per response; None: keep β fixed
    kl_horizon: int = 10_000
    kl_estimator: KLEstimator = "k1"
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    stop_token: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size % self.minibatch_size:
            raise ValueError(
                f"batch_size={self.batch_size} must be a multiple of minibatch_size="
                f"{self.minibatch_size}."
            )
        if self.kl_coef < 0 or self.clip <= 0:
            raise ValueError("Need kl_coef ≥ 0 and clip > 0.")


@dataclass
class Rollout:
    """One batch of experience: ``(batch, seq)`` tensors over prompt + response positions."""

    tokens: torch.Tensor  # prompt + response ids
    mask: torch.Tensor  # 1 on response tokens that count (up to and including a stop token)
    logprobs: torch.Tensor  # log π_old of each token given the ones before it
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor  # (batch,)
    rewards: torch.Tensor = field(default=None)
    advantages: torch.Tensor = field(default=None)
    returns: torch.Tensor = field(default=None)


class PPOTrainer:
    """RLHF with PPO. ``reward_fn(prompts (batch, prompt_len), responses: list[list[int]])
    -> (batch,) tensor`` rates the responses (``RewardModel.score`` is one);
    ``prompt_fn(batch_size) -> (batch, prompt_len)`` draws prompts."""

    def __init__(
        self,
        policy: PolicyWithValue,
        reference: nn.Module,
        reward_fn: Callable[[torch.Tensor, list[list[int]]], torch.Tensor],
        prompt_fn: Callable[[int], torch.Tensor],
        config: PPOConfig | None = None,
        seed: int = 0,
    ) -> None:
        # The reference is only ever run under no_grad (in rollout); its parameters are left as
        # they are, since the caller may go on training a copy of the same model.
        self.policy, self.reference = policy, reference.eval()
        self.reward_fn, self.prompt_fn = reward_fn, prompt_fn
        self.config = config or PPOConfig()
        self.kl_controller = AdaptiveKLController(
            self.config.kl_coef, self.config.target_kl, self.config.kl_horizon
        )
        self.optimizer = torch.optim.AdamW(policy.parameters(), lr=self.config.lr, weight_decay=0)
        self.generator = torch.Generator().manual_seed(seed)
        self.history: list[dict[str, Any]] = []

    @torch.no_grad()
    def rollout(self) -> Rollout:
        """Steps 1-3: sample, score, and compute advantages."""
        config = self.config
        prompts = self.prompt_fn(config.batch_size)
        self.policy.eval()
        tokens = generate(
            self.policy.lm,
            prompts,
            config.max_new_tokens,
            temperature=config.temperature,
            stop_tokens=config.stop_token,
            generator=self.generator,
        )
        prompt_len = prompts.shape[1]
        mask = torch.zeros_like(tokens, dtype=torch.float32)
        mask[:, prompt_len:] = 1.0
        if config.stop_token is not None:  # nothing after the first stop token counts
            stopped = (tokens[:, prompt_len:] == config.stop_token).long().cumsum(-1)
            after_stop = torch.cat((torch.zeros_like(stopped[:, :1]), stopped[:, :-1]), -1) > 0
            mask[:, prompt_len:] *= (~after_stop).float()
        mask = mask[:, 1:]  # position t scores token t + 1
        logits, values = self.policy(tokens)
        logprobs = gather_logprobs(logits[:, :-1], tokens[:, 1:])
        values = values[:, :-1] * mask
        ref_logprobs = gather_logprobs(self.reference(tokens).logits[:, :-1], tokens[:, 1:])
        responses = [
            row[prompt_len:][m[prompt_len - 1 :] > 0].tolist()
            for row, m in zip(tokens, mask, strict=True)
        ]
        scores = torch.as_tensor(self.reward_fn(prompts, responses), dtype=torch.float32)
        rollout = Rollout(tokens, mask, logprobs, ref_logprobs, values, scores)
        kl = kl_estimate(logprobs, ref_logprobs, config.kl_estimator) * mask
        rollout.rewards = token_rewards(scores, kl, self.kl_controller.kl_coef, mask)
        advantages, rollout.returns = gae(rollout.rewards, values, config.gamma, config.lam)
        rollout.advantages = whiten(advantages, mask) if config.whiten_advantages else advantages
        return rollout

    def step(self) -> dict[str, Any]:
        """One rollout and its PPO updates (steps 1-5); returns the logged statistics."""
        config = self.config
        rollout = self.rollout()
        self.policy.train()
        stats = {"policy_loss": [], "value_loss": [], "clip_fraction": [], "entropy": []}
        for _ in range(config.ppo_epochs):
            order = torch.randperm(config.batch_size, generator=self.generator)
            for start in range(0, config.batch_size, config.minibatch_size):
                rows = order[start : start + config.minibatch_size]
                mask = rollout.mask[rows]
                logits, values = self.policy(rollout.tokens[rows])
                logprobs = gather_logprobs(logits[:, :-1], rollout.tokens[rows, 1:])
                policy_loss, clip_fraction = ppo_policy_loss(
                    logprobs, rollout.logprobs[rows], rollout.advantages[rows], mask, config.clip
                )
                value_loss = ppo_value_loss(
                    values[:, :-1],
                    rollout.values[rows],
                    rollout.returns[rows],
                    mask,
                    config.value_clip,
                )
                loss = policy_loss + config.vf_coef * value_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), config.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    entropy = masked_mean(entropy_from_logits(logits[:, :-1]), mask)
                stats["policy_loss"].append(float(policy_loss.detach()))
                stats["value_loss"].append(float(value_loss.detach()))
                stats["clip_fraction"].append(float(clip_fraction))
                stats["entropy"].append(float(entropy))
        kl_per_sequence = {
            name: float((kl_estimate(rollout.logprobs, rollout.ref_logprobs, name) * rollout.mask)
                        .sum(-1).mean())
            for name in ("k1", "k3")
        }  # fmt: skip
        kl_coef = self.kl_controller.kl_coef
        self.kl_controller.update(kl_per_sequence[config.kl_estimator], config.batch_size)
        record = {
            "step": len(self.history),
            "reward": float(rollout.scores.mean()),
            "kl": kl_per_sequence[config.kl_estimator],
            "kl_k1": kl_per_sequence["k1"],
            "kl_k3": kl_per_sequence["k3"],
            "kl_coef": kl_coef,
            **{name: sum(values) / len(values) for name, values in stats.items()},
        }
        self.history.append(record)
        return record
