"""GRPO: policy gradients with a group of answers per prompt as the baseline, no value model.

Group relative policy optimisation (Shao et al. 2024, DeepSeekMath §4; used for DeepSeek-R1)
samples G responses to each prompt, scores them with a checker, and uses the group's mean
reward as the baseline: no value head, no GAE. With rewards r_1 … r_G of one prompt,

    A_i = (r_i − mean(r)) / (std(r) + eps)          (``normalize_by_std``; else r_i − mean(r))

is every token's advantage in response i. Three per-token losses (``policy_gradient_loss``):

    no_baseline              −r_i · log π_θ(o_t)              REINFORCE (Williams 1992)
    reinforce_with_baseline  −A_i · log π_θ(o_t)              the group mean as baseline
    grpo_clip                −min(ρ_t A_i, clip(ρ_t, 1 ± ε) A_i),  ρ_t = π_θ(o_t) / π_old(o_t)

and three ways to average them over a batch (``aggregate_loss``), which differ in how much each
token of a long response weighs:

    "sequence"   (1/B) Σ_i (1/|o_i|) Σ_t l_it     DeepSeekMath: a long response's tokens weigh less
    "token"      Σ_i Σ_t l_it / Σ_i |o_i|         DAPO (Yu et al. 2025): every token weighs the same
    "constant"   (1/B) Σ_i (1/C) Σ_t l_it         Dr. GRPO (Liu et al. 2025): C = max_new_tokens

The per-sequence mean carries a length bias: a wrong answer (A < 0) is penalised less per token
the longer it is, so long wrong answers are discouraged least (Liu et al. 2025); the
per-sequence std adds a difficulty bias (groups that are nearly all right or all wrong are
scaled up). Lesson 09 measures both.

The KL to the frozen reference goes into the loss, β·k3 per token (DeepSeekMath's choice,
``kl_placement="loss"``), or into the reward before the group normalisation, −β·Σ_t k per
response (InstructGPT's, ``"reward"``). ``GRPOTask`` runs all of this on ``Trainer``: its
``rollout`` samples the groups and keeps π_old and π_ref's log-probs; ``count`` and ``loss``
follow the aggregation, so accumulation and several processes are exact (``tasks`` docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import nn

from llmcourse.infer import generate
from llmcourse.train.config import TrainConfig
from llmcourse.train.logprobs import gather_logprobs
from llmcourse.train.masked import masked_mean, masked_normalize
from llmcourse.train.ppo import KLEstimator, clipped_surrogate, entropy_from_logits, kl_estimate
from llmcourse.train.rollouts import response_ids, response_mask
from llmcourse.train.tasks import Metrics, Task
from llmcourse.utils.checks import check_bool, check_int, check_number

LossType = Literal["no_baseline", "reinforce_with_baseline", "grpo_clip"]
Aggregation = Literal["token", "sequence", "constant"]
KLPlacement = Literal["loss", "reward"]


def group_normalized_rewards(
    rewards: torch.Tensor,
    group_size: int,
    normalize_by_std: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Advantages ``(n,)`` of rewards ``(n,)`` laid out as consecutive groups of ``group_size``.

    A_i = (r_i − mean_group) / (std_group + eps), with the unbiased (n − 1) standard deviation
    as DeepSeekMath computes it; without ``normalize_by_std``, A_i = r_i − mean_group. A group
    whose rewards are all equal gets advantage 0: it teaches nothing.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-d (one per response), got {tuple(rewards.shape)}.")
    if group_size < 2 or len(rewards) % group_size:
        raise ValueError(
            f"group_size={group_size} must be at least 2 and divide the {len(rewards)} rewards "
            "(the responses to one prompt are consecutive)."
        )
    groups = rewards.float().view(-1, group_size)
    advantages = groups - groups.mean(-1, keepdim=True)
    if normalize_by_std:
        advantages = advantages / (groups.std(-1, keepdim=True) + eps)
    return advantages.view(-1)


def policy_gradient_loss(
    logprobs: torch.Tensor,
    loss_type: LossType,
    *,
    rewards: torch.Tensor | None = None,
    advantages: torch.Tensor | None = None,
    old_logprobs: torch.Tensor | None = None,
    clip: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token loss ``(batch, seq)`` (see the module docstring) and, for ``"grpo_clip"``, where
    the clip was active (else None).

    ``logprobs`` ``(batch, seq)`` of the sampled tokens under π_θ (with a graph); ``rewards``
    (for ``"no_baseline"``) and ``advantages`` are one per response, ``(batch,)`` or
    ``(batch, 1)``; ``old_logprobs`` ``(batch, seq)`` are π_old's, fixed at sampling time.
    """

    def per_row(values: torch.Tensor | None, name: str) -> torch.Tensor:
        if values is None:
            raise ValueError(f"loss_type={loss_type!r} needs {name}.")
        values = values.to(logprobs.dtype)
        return values.unsqueeze(-1) if values.dim() == 1 else values

    if loss_type == "no_baseline":
        return -per_row(rewards, "rewards") * logprobs, None
    if loss_type == "reinforce_with_baseline":
        return -per_row(advantages, "advantages") * logprobs, None
    if loss_type == "grpo_clip":
        if old_logprobs is None:
            raise ValueError("loss_type='grpo_clip' needs old_logprobs (π_old at sampling time).")
        objective, clipped = clipped_surrogate(
            logprobs, old_logprobs, per_row(advantages, "advantages"), clip
        )
        return -objective, clipped
    raise ValueError(
        f"loss_type must be one of {', '.join(get_args(LossType))}, got {loss_type!r}."
    )


def aggregate_loss(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    aggregation: Aggregation = "token",
    constant: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(total, units)``: the batch's loss is ``total / units``, and ``Trainer`` divides the
    totals of all micro-batches of a step by their summed units (``Task.count``), so
    accumulation gives the same gradient as one big batch.

    "token": Σ l·m over Σ m tokens; "sequence": Σ_i masked_mean(l_i) over B rows; "constant":
    Σ_i masked_normalize(l_i, C) over B rows (Dr. GRPO, ``constant`` = C).
    """
    rows = torch.tensor(float(per_token.shape[0]), device=per_token.device)
    if aggregation == "token":
        return masked_normalize(per_token, mask), mask.sum()
    if aggregation == "sequence":
        return masked_mean(per_token, mask, dim=-1).sum(), rows
    if aggregation == "constant":
        if constant is None:
            raise ValueError("aggregation='constant' needs the constant (e.g. max_new_tokens).")
        return masked_normalize(per_token, mask, dim=-1, constant=constant).sum(), rows
    raise ValueError(
        f"aggregation must be one of {', '.join(get_args(Aggregation))}, got {aggregation!r}."
    )


@dataclass
class GRPOConfig:
    """Hyper-parameters of GRPO (defaults: the arithmetic task on a CPU); ``train_config`` turns
    the optimisation ones into the run's ``TrainConfig``."""

    prompts_per_rollout: int = 16
    group_size: int = 8  # responses per prompt
    max_new_tokens: int = 5
    temperature: float = 1.0
    epochs: int = 1  # passes over each rollout; > 1 is off-policy and needs grpo_clip
    minibatch_size: int = 64  # responses per optimizer step
    loss_type: LossType = "grpo_clip"
    normalize_by_std: bool = True
    advantage_eps: float = 1e-6
    aggregation: Aggregation = "token"
    constant: float | None = None  # Dr. GRPO's C; None: max_new_tokens
    clip: float = 0.2
    kl_coef: float = 0.0  # β; 0: no KL term (the KL to the reference is still logged)
    kl_placement: KLPlacement = "loss"
    kl_estimator: KLEstimator = "k3"
    lr: float = 3e-4
    max_grad_norm: float = 1.0
    stop_token: int | None = None

    def __post_init__(self) -> None:
        choices = {
            "loss_type": LossType,
            "aggregation": Aggregation,
            "kl_placement": KLPlacement,
            "kl_estimator": KLEstimator,
        }
        for name, kind in choices.items():
            if getattr(self, name) not in get_args(kind):
                raise ValueError(
                    f"GRPOConfig.{name}={getattr(self, name)!r}; use one of "
                    f"{', '.join(get_args(kind))}."
                )
        for name in ("prompts_per_rollout", "max_new_tokens", "epochs", "minibatch_size"):
            check_int(f"GRPOConfig.{name}", getattr(self, name), 1)
        check_int("GRPOConfig.group_size", self.group_size)
        check_int("GRPOConfig.stop_token", self.stop_token, 0, optional=True)
        check_bool("GRPOConfig.normalize_by_std", self.normalize_by_std)
        for name in ("clip", "lr", "max_grad_norm"):
            check_number(f"GRPOConfig.{name}", getattr(self, name), 0, low_open=True)
        check_number("GRPOConfig.temperature", self.temperature)  # its range: below
        check_number("GRPOConfig.advantage_eps", self.advantage_eps, 0)
        check_number("GRPOConfig.kl_coef", self.kl_coef, 0)
        check_number("GRPOConfig.constant", self.constant, 0, low_open=True, optional=True)
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be at least 2 (a group is the baseline), got {self.group_size}."
            )
        if self.rollout_size % self.minibatch_size:
            raise ValueError(
                f"prompts_per_rollout × group_size = {self.rollout_size} must be a multiple of "
                f"minibatch_size={self.minibatch_size}."
            )
        if self.epochs > 1 and self.loss_type != "grpo_clip":
            raise ValueError(
                f"epochs={self.epochs} reuses samples drawn by an older policy; only "
                "loss_type='grpo_clip' corrects for that (its ratio π_θ/π_old). Use epochs=1."
            )
        if self.kl_coef < 0 or self.clip <= 0 or self.max_new_tokens < 1 or self.epochs < 1:
            raise ValueError("Need kl_coef ≥ 0, clip > 0, max_new_tokens ≥ 1 and epochs ≥ 1.")
        if not self.temperature > 0:
            raise ValueError(
                f"temperature={self.temperature}: GRPO needs sampled answers (temperature > 0)."
            )

    @property
    def rollout_size(self) -> int:
        return self.prompts_per_rollout * self.group_size

    @property
    def steps_per_rollout(self) -> int:
        return self.epochs * self.rollout_size // self.minibatch_size

    @property
    def normalizer(self) -> float:
        return float(self.constant if self.constant is not None else self.max_new_tokens)

    def train_config(self, rollouts: int, **changes: Any) -> TrainConfig:
        """The ``TrainConfig`` of ``rollouts`` rollouts: Adam (no weight decay) at a constant
        ``lr``, clipping at ``max_grad_norm``, one log line per rollout. ``grad_accum_steps=k``
        splits each ``minibatch_size`` step into k micro-batches (the same gradient)."""
        if rollouts < 1:
            raise ValueError(f"rollouts must be positive, got {rollouts}.")
        accumulate = changes.pop("grad_accum_steps", 1)
        if self.minibatch_size % accumulate:
            raise ValueError(
                f"grad_accum_steps={accumulate} must divide minibatch_size={self.minibatch_size}."
            )
        settings = {
            "max_steps": rollouts * self.steps_per_rollout,
            "batch_size": self.minibatch_size // accumulate,
            "grad_accum_steps": accumulate,
            "lr": self.lr,
            "weight_decay": 0.0,
            "betas": (0.9, 0.999),
            "grad_clip": self.max_grad_norm,
            "schedule": "constant",
            "warmup_steps": 0,
            "log_every": self.steps_per_rollout,
        }
        return TrainConfig(**{**settings, **changes})


class GRPOTask(Task):
    """GRPO on ``Trainer``. ``reward_fn(prompts (n, P), responses: list[list[int]]) -> (n,)``
    scores each response (``llmcourse.data.arithmetic.ArithmeticReward`` checks sums);
    ``prompt_fn(n, generator) -> (n, P)`` draws prompts; ``reference`` is the frozen model the
    policy started from (the KL is measured against it, and penalised when ``kl_coef`` > 0).
    The model trained is a plain language model (``model(ids).logits``). ``evaluate_fn(model)
    -> {name: float}``, if given, is the task's ``evaluate`` (held-out accuracy, say), which
    ``Trainer`` logs every ``eval_every`` steps.

    Under several processes each samples its own rollout: give each process its own ``seed``.
    """

    name = "GRPO"

    def __init__(
        self,
        reference: nn.Module,
        reward_fn: Callable[[torch.Tensor, list[list[int]]], torch.Tensor],
        prompt_fn: Callable[[int, torch.Generator], torch.Tensor],
        config: GRPOConfig | None = None,
        *,
        seed: int = 0,
        evaluate_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    ) -> None:
        self.reference, self.reward_fn, self.prompt_fn = reference, reward_fn, prompt_fn
        if evaluate_fn is not None:  # Trainer evaluates a task that has an evaluate method
            self.evaluate = evaluate_fn
        self.config = config or GRPOConfig()
        self.rollout_epochs = self.config.epochs
        self.seed = seed
        self.prompt_generator = torch.Generator().manual_seed(seed)
        self.sample_generator: torch.Generator | None = None  # made on the policy's device
        self._sample_state: torch.Tensor | None = None

    def frozen_models(self) -> dict[str, nn.Module]:
        return {"reference": self.reference}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"prompt_generator": self.prompt_generator.get_state()}
        if self.sample_generator is not None:
            state["sample_generator"] = self.sample_generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prompt_generator.set_state(state["prompt_generator"])
        self._sample_state = state.get("sample_generator")
        self.sample_generator = None

    def _sampler(self, device: torch.device) -> torch.Generator:
        if self.sample_generator is None:
            self.sample_generator = torch.Generator(device).manual_seed(self.seed)
            if self._sample_state is not None:
                self.sample_generator.set_state(self._sample_state)
        return self.sample_generator

    def _logits(self, model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(batch, seq - 1, vocab)`` of the distribution the rollout samples
        from: divided by the sampling temperature, so that π_old, π_θ and π_ref in the ratio
        and the KL are the distributions the tokens were drawn from (at T = 1, the model's)."""
        logits = model(tokens).logits[:, :-1]
        temperature = self.config.temperature
        return logits if temperature == 1.0 else logits / temperature

    # -- collect ------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, model: nn.Module) -> tuple[dict[str, torch.Tensor], Metrics]:
        """G responses to each of ``prompts_per_rollout`` prompts, scored, with π_old's and
        π_ref's log-probs and the group-normalised advantages; rows ``(n, seq - 1)``."""
        config = self.config
        device = next(model.parameters()).device
        prompts = self.prompt_fn(config.prompts_per_rollout, self.prompt_generator).to(device)
        prompts = prompts.repeat_interleave(config.group_size, dim=0)  # groups are consecutive
        tokens = generate(
            model,
            prompts,
            config.max_new_tokens,
            temperature=config.temperature,
            stop_tokens=config.stop_token,
            generator=self._sampler(device),
        )
        prompt_len = prompts.shape[1]
        mask = response_mask(tokens, prompt_len, config.stop_token)
        logits = self._logits(model, tokens)
        old_logprobs = gather_logprobs(logits, tokens[:, 1:])
        ref_logprobs = gather_logprobs(self._logits(self.reference, tokens), tokens[:, 1:])
        rewards = torch.as_tensor(
            self.reward_fn(prompts, response_ids(tokens, mask, prompt_len)),
            dtype=torch.float32,
            device=device,
        )
        kl = {
            name: (kl_estimate(old_logprobs, ref_logprobs, name) * mask).sum(-1)
            for name in get_args(KLEstimator)
        }  # per response
        shaped = rewards
        if config.kl_coef and config.kl_placement == "reward":
            shaped = rewards - config.kl_coef * kl[config.kl_estimator]
        advantages = group_normalized_rewards(
            shaped, config.group_size, config.normalize_by_std, config.advantage_eps
        )
        groups = rewards.view(-1, config.group_size)
        rows = {
            "tokens": tokens,
            "mask": mask,
            "old_logprobs": old_logprobs,
            "ref_logprobs": ref_logprobs,
            "rewards": shaped,
            "advantages": advantages,
        }
        metrics = {
            "reward": float(rewards.mean()),
            "reward_std": float(groups.std(-1).mean()),  # within a group, averaged
            "zero_advantage_groups": float((groups.std(-1) == 0).float().mean()),
            "kl": float(kl[config.kl_estimator].mean()),
            **{f"kl_{name}": float(value.mean()) for name, value in kl.items()},
            "entropy": float(masked_mean(entropy_from_logits(logits), mask)),
            "response_length": float(mask.sum(-1).mean()),
        }
        return rows, metrics

    # -- learn --------------------------------------------------------------------------------
    def count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.config.aggregation == "token":
            return batch["mask"].sum()
        return torch.tensor(float(batch["mask"].shape[0]), device=batch["mask"].device)

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["tokens"].numel()

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, Metrics]:
        """The per-token loss (+ β·k3 with ``kl_placement="loss"``), aggregated (a sum over the
        units ``count`` counts)."""
        config, mask = self.config, batch["mask"]
        logprobs = gather_logprobs(self._logits(model, batch["tokens"]), batch["tokens"][:, 1:])
        per_token, clipped = policy_gradient_loss(
            logprobs,
            config.loss_type,
            rewards=batch["rewards"],
            advantages=batch["advantages"],
            old_logprobs=batch["old_logprobs"],
            clip=config.clip,
        )
        if config.kl_coef and config.kl_placement == "loss":
            kl = kl_estimate(logprobs, batch["ref_logprobs"], config.kl_estimator)
            per_token = per_token + config.kl_coef * kl
        total, _ = aggregate_loss(per_token, mask, config.aggregation, config.normalizer)
        metrics: Metrics = {}
        if clipped is not None:  # the share of tokens (or rows) clipped, weighted like the loss
            metrics["clip_fraction"] = self._unit_sum(clipped.float(), mask)
        return total, metrics

    def _unit_sum(self, per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Σ over units of a per-token quantity's mean, so ``Trainer``'s division by the
        count gives a mean: per token, or per row for the row-counted aggregations."""
        if self.config.aggregation == "token":
            return masked_normalize(per_token, mask).detach()
        return masked_mean(per_token, mask, dim=-1).sum().detach()
