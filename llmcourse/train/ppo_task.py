"""PPO for a language model as a ``Trainer`` task: rollouts, rewards, advantages, clipped losses.

``PPOTask.rollout`` (what the trainer calls once per rollout, with the current policy):

1. **sample** responses to a batch of prompts with ``llmcourse.infer.generate``;
2. **score**: the reward function rates each whole response given its prompt (a reward model's
   ``score`` or a rule); the frozen reference model gives per-token log-probs for the KL
   penalty (``llmcourse.train.ppo``);
3. **advantages**: per-token rewards → GAE with the value head's estimates → whitened;
4. **adapt β** with the adaptive KL controller from this rollout's KL.

``Trainer`` then runs ``ppo_epochs`` passes over shuffled minibatches of the rollout, each an
optimizer step on ``PPOTask.loss``: the clipped policy loss + ``vf_coef`` × the clipped value
loss, with the rollout's log-probs fixed as π_old. The log carries the reward, the KL per
response under each estimator, β, the losses, the policy's entropy and the clip fraction.

The policy and the value function share one transformer (``PolicyWithValue``: a ``DecoderLM``
plus a linear value head), as in Ziegler et al. (2019); InstructGPT used a separate value model
initialised from the reward model. Prompts in a batch have equal length (no left padding);
responses may end early at ``stop_token``, after which tokens are masked out. Every random draw
(prompts, sampling) comes from the task's own generators, which checkpoints keep with β.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

import torch
from torch import nn

from llmcourse.infer import generate
from llmcourse.train.config import TrainConfig
from llmcourse.train.logprobs import gather_logprobs
from llmcourse.train.ppo import (
    AdaptiveKLController,
    KLEstimator,
    entropy_from_logits,
    gae,
    kl_estimate,
    ppo_policy_loss,
    ppo_value_loss,
    token_rewards,
    whiten,
)
from llmcourse.train.rollouts import response_ids, response_mask
from llmcourse.train.tasks import Metrics, Task
from llmcourse.utils.checks import check_bool, check_int, check_number


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
    """Hyper-parameters of PPO (defaults: a tiny GPT on a CPU); ``train_config`` turns the
    optimisation ones into the ``TrainConfig`` of the run."""

    batch_size: int = 32  # responses per rollout
    max_new_tokens: int = 32
    temperature: float = 1.0
    ppo_epochs: int = 4  # passes over each rollout
    minibatch_size: int = 16  # responses per optimizer step
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
        for name in ("batch_size", "max_new_tokens", "ppo_epochs", "minibatch_size", "kl_horizon"):
            check_int(f"PPOConfig.{name}", getattr(self, name), 1)
        check_int("PPOConfig.stop_token", self.stop_token, 0, optional=True)
        check_bool("PPOConfig.whiten_advantages", self.whiten_advantages)
        for name in ("lr", "clip", "value_clip", "max_grad_norm"):
            check_number(f"PPOConfig.{name}", getattr(self, name), 0, low_open=True)
        for name in ("vf_coef", "kl_coef"):
            check_number(f"PPOConfig.{name}", getattr(self, name), 0)
        for name in ("gamma", "lam"):  # discount and GAE's λ (Schulman et al. 2016)
            check_number(f"PPOConfig.{name}", getattr(self, name), 0, 1)
        check_number("PPOConfig.target_kl", self.target_kl, 0, low_open=True, optional=True)
        check_number("PPOConfig.temperature", self.temperature)  # its range: below
        if self.batch_size % self.minibatch_size:
            raise ValueError(
                f"batch_size={self.batch_size} must be a multiple of minibatch_size="
                f"{self.minibatch_size}."
            )
        if self.kl_coef < 0 or self.clip <= 0:
            raise ValueError("Need kl_coef ≥ 0 and clip > 0.")
        estimators = get_args(KLEstimator)
        if self.kl_estimator not in estimators:
            raise ValueError(
                f"kl_estimator={self.kl_estimator!r}; use one of {', '.join(estimators)}."
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature={self.temperature}: PPO samples, so it must be > 0.")
        if self.ppo_epochs < 1 or self.max_new_tokens < 1:
            raise ValueError("Need ppo_epochs ≥ 1 and max_new_tokens ≥ 1.")

    @property
    def steps_per_rollout(self) -> int:
        return self.ppo_epochs * self.batch_size // self.minibatch_size

    def train_config(self, rollouts: int, **changes: Any) -> TrainConfig:
        """The ``TrainConfig`` of ``rollouts`` rollouts: Adam (β₂ = 0.999, no weight decay) at a
        constant ``lr``, clipping at ``max_grad_norm``, one log line per rollout."""
        if rollouts < 1:
            raise ValueError(f"rollouts must be positive, got {rollouts}.")
        settings = {
            "max_steps": rollouts * self.steps_per_rollout,
            "batch_size": self.minibatch_size,
            "lr": self.lr,
            "weight_decay": 0.0,
            "betas": (0.9, 0.999),
            "grad_clip": self.max_grad_norm,
            "schedule": "constant",
            "warmup_steps": 0,
            "log_every": self.steps_per_rollout,
        }
        return TrainConfig(**{**settings, **changes})


class PPOTask(Task):
    """RLHF with PPO. ``reward_fn(prompts (batch, prompt_len), responses: list[list[int]]) ->
    (batch,)`` rates the responses (``RewardModel.score`` is one; pass that model as
    ``reward_model`` so the trainer puts it on the device too); ``prompt_fn(n, generator) ->
    (n, prompt_len)`` draws prompts with the task's generator. The model trained is a
    ``PolicyWithValue``; ``reference`` (frozen) is the model it started from.

    Under several processes each samples its own rollout: give each process its own ``seed``.
    """

    name = "PPO"

    def __init__(
        self,
        reference: nn.Module,
        reward_fn: Callable[[torch.Tensor, list[list[int]]], torch.Tensor],
        prompt_fn: Callable[[int, torch.Generator], torch.Tensor],
        config: PPOConfig | None = None,
        *,
        reward_model: nn.Module | None = None,
        seed: int = 0,
    ) -> None:
        self.reference, self.reward_fn, self.prompt_fn = reference, reward_fn, prompt_fn
        self.reward_model = reward_model
        self.config = config or PPOConfig()
        self.rollout_epochs = self.config.ppo_epochs
        self.kl_controller = AdaptiveKLController(
            self.config.kl_coef, self.config.target_kl, self.config.kl_horizon
        )
        self.seed = seed
        self.prompt_generator = torch.Generator().manual_seed(seed)
        self.sample_generator: torch.Generator | None = None  # made on the policy's device
        self._sample_state: torch.Tensor | None = None  # restored state, applied when made

    def frozen_models(self) -> dict[str, nn.Module]:
        frozen = {"reference": self.reference}
        if self.reward_model is not None:
            frozen["reward_model"] = self.reward_model
        return frozen

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "kl_coef": self.kl_controller.kl_coef,
            "prompt_generator": self.prompt_generator.get_state(),
        }
        if self.sample_generator is not None:
            state["sample_generator"] = self.sample_generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kl_controller.kl_coef = state["kl_coef"]
        self.prompt_generator.set_state(state["prompt_generator"])
        self._sample_state = state.get("sample_generator")
        self.sample_generator = None

    def _sampler(self, device: torch.device) -> torch.Generator:
        if self.sample_generator is None:
            self.sample_generator = torch.Generator(device).manual_seed(self.seed)
            if self._sample_state is not None:
                self.sample_generator.set_state(self._sample_state)
        return self.sample_generator

    # -- collect ------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, model: PolicyWithValue) -> tuple[dict[str, torch.Tensor], Metrics]:
        """Steps 1-4 of the module docstring: rows ``(batch, seq - 1)`` over prompt + response
        positions (entry t scores token t + 1) and the rollout's statistics."""
        config = self.config
        device = model.value_head.weight.device
        prompts = self.prompt_fn(config.batch_size, self.prompt_generator).to(device)
        tokens = generate(
            model.lm,
            prompts,
            config.max_new_tokens,
            temperature=config.temperature,
            stop_tokens=config.stop_token,
            generator=self._sampler(device),
        )
        prompt_len = prompts.shape[1]
        mask = response_mask(tokens, prompt_len, config.stop_token)  # t scores token t + 1
        logits, values = model(tokens)
        logits = logits / config.temperature  # the distribution the tokens were drawn from
        logprobs = gather_logprobs(logits[:, :-1], tokens[:, 1:])
        values = values[:, :-1].float() * mask
        ref_logits = self.reference(tokens).logits[:, :-1] / config.temperature
        ref_logprobs = gather_logprobs(ref_logits, tokens[:, 1:])
        responses = response_ids(tokens, mask, prompt_len)
        scores = torch.as_tensor(
            self.reward_fn(prompts, responses), dtype=torch.float32, device=device
        )
        kl_coef = self.kl_controller.kl_coef
        kl = kl_estimate(logprobs, ref_logprobs, config.kl_estimator) * mask
        rewards = token_rewards(scores, kl, kl_coef, mask)
        advantages, returns = gae(rewards, values, config.gamma, config.lam)
        if config.whiten_advantages:
            advantages = whiten(advantages, mask)
        kl_per_response = {
            name: float((kl_estimate(logprobs, ref_logprobs, name) * mask).sum(-1).mean())
            for name in get_args(KLEstimator)
        }
        self.kl_controller.update(kl_per_response[config.kl_estimator], config.batch_size)
        rows = {
            "tokens": tokens,
            "mask": mask,
            "logprobs": logprobs,
            "values": values,
            "advantages": advantages,
            "returns": returns,
        }
        metrics = {
            "reward": float(scores.mean()),
            "kl": kl_per_response[config.kl_estimator],
            **{f"kl_{name}": value for name, value in kl_per_response.items()},
            "kl_coef": kl_coef,  # the β these rewards were computed with
            "response_length": float(mask.sum(-1).mean()),
        }
        return rows, metrics

    # -- learn --------------------------------------------------------------------------------
    def count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["mask"].sum()

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["tokens"].numel()

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, Metrics]:
        """Clipped policy loss + ``vf_coef`` × clipped value loss, summed over response tokens."""
        config, mask = self.config, batch["mask"]
        logits, values = model(batch["tokens"])
        logits = logits / config.temperature
        logprobs = gather_logprobs(logits[:, :-1], batch["tokens"][:, 1:])
        policy_loss, clipped = ppo_policy_loss(
            logprobs, batch["logprobs"], batch["advantages"], mask, config.clip, reduction="sum"
        )
        value_loss = ppo_value_loss(
            values[:, :-1].float(),
            batch["values"],
            batch["returns"],
            mask,
            config.value_clip,
            reduction="sum",
        )
        with torch.no_grad():
            entropy = (entropy_from_logits(logits[:, :-1]) * mask).sum()
        metrics = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "clip_fraction": clipped,
            "entropy": entropy,
        }
        return policy_loss + config.vf_coef * value_loss, metrics
