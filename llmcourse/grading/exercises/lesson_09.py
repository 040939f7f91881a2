"""Exercises of lesson 09 (reward modelling, PPO, DPO): each compares the learner's function
with the package's own in ``llmcourse.train``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmcourse.grading.compare import close
from llmcourse.grading.spec import Case, Draw, Exercise
from llmcourse.train.dpo import dpo_loss as reference_dpo_loss
from llmcourse.train.ppo import gae as reference_gae
from llmcourse.train.ppo import ppo_policy_loss as reference_ppo_policy_loss
from llmcourse.train.reward import bradley_terry_loss as reference_bradley_terry

# ---- 09.bradley_terry -------------------------------------------------------------------------

bradley_terry = Exercise(
    "09.bradley_terry",
    answer="bradley_terry_loss",
    reference=reference_bradley_terry,
    section="A Bradley–Terry reward model",
)


@bradley_terry.variant("the margin has the wrong sign (rejected minus chosen)")
def _reversed_margin(chosen_rewards, rejected_rewards):
    return -F.logsigmoid(rejected_rewards - chosen_rewards).mean()


@bradley_terry.test(
    points=2,
    hint="−mean(log σ(r_chosen − r_rejected)), with a numerically stable log σ so that large "
    "margins stay finite.",
)
def bradley_terry_matches(draw: Draw) -> list[Case]:
    cases = [Case((draw.randn(8) * 3, draw.randn(8) * 3), label="8 random pairs") for _ in range(5)]
    far = draw.uniform(150, 300)
    cases.append(
        Case((torch.tensor([-far]), torch.tensor([far])), label=f"a margin of {-2 * far:.0f}")
    )
    return cases


# ---- 09.gae -----------------------------------------------------------------------------------

gae = Exercise(
    "09.gae",
    answer="gae",
    reference=reference_gae,
    forbid=["llmcourse.train.ppo.gae_loop"],
    compare=close(names=("advantages", "returns")),
    section="PPO, piece by piece",
)


@gae.variant("the value after the last step is the last value instead of 0")
def _bootstrapped_end(rewards, values, gamma=1.0, lam=0.95):
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    steps = rewards.shape[1]
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else values[:, t]
        running = rewards[:, t] + gamma * next_value - values[:, t] + gamma * lam * running
        advantages[:, t] = running
    return advantages, advantages + values


@gae.test(
    points=3,
    hint="δ_t = r_t + γ·V_{t+1} − V_t with V after the last step = 0; A_t = δ_t + γλ·A_{t+1}, "
    "computed from the last step backwards; returns = A + V. Work on (batch, seq) tensors.",
)
def gae_matches(draw: Draw) -> list[Case]:
    settings = [(1.0, 0.95, (2, 5)), (0.9, 0.0, (1, 4)), (0.99, 1.0, (3, 1))]
    settings.append(
        (round(draw.uniform(0.8, 1), 3), round(draw.uniform(0, 1), 3), (2, draw.integer(2, 9)))
    )
    return [
        Case(
            (draw.randn(*shape), draw.randn(*shape), gamma, lam),
            label=f"γ={gamma}, λ={lam}, shape {shape}",
        )
        for gamma, lam, shape in settings
    ]


# ---- 09.ppo_clipped_loss ----------------------------------------------------------------------

ppo_clipped_loss = Exercise(
    "09.ppo_clipped_loss",
    answer="ppo_policy_loss",
    reference=reference_ppo_policy_loss,
    compare=close(names=("loss", "clip fraction")),
    section="PPO, piece by piece",
)


@ppo_clipped_loss.variant("the maximum of the two surrogate terms is taken instead of the minimum")
def _maximum(logprobs, old_logprobs, advantages, mask, clip=0.2):
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped, clipped = ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages
    mask = mask.float()
    loss = -(torch.maximum(unclipped, clipped) * mask).sum() / mask.sum()
    return loss, ((clipped < unclipped).float() * mask).sum() / mask.sum()


@ppo_clipped_loss.test(
    points=3,
    hint="ratio = exp(logp − old_logp); the loss is minus the masked mean of the smaller of "
    "ratio·A and the clipped ratio times A; the clip fraction is the masked share of tokens "
    "where the clipped term is the smaller one.",
)
def ppo_loss_matches(draw: Draw) -> list[Case]:
    cases = []
    for clip in (0.1, 0.2, round(draw.uniform(0.05, 0.3), 3)):
        old = draw.randn(3, 6)
        new = old + 0.4 * draw.randn(3, 6)
        mask = (draw.rand(3, 6) > 0.3).float()
        mask[0, 0] = 1.0
        cases.append(Case((new, old, draw.randn(3, 6), mask, clip), label=f"clip={clip}"))
    old = draw.randn(2, 5)
    mask = torch.ones(2, 5)
    cases.append(Case((old, old.clone(), draw.randn(2, 5), mask, 0.2), label="ratio 1 everywhere"))
    return cases


# ---- 09.dpo_loss ------------------------------------------------------------------------------

dpo_loss = Exercise(
    "09.dpo_loss",
    answer="dpo_loss",
    reference=reference_dpo_loss,
    section="DPO on the same preferences",
)


@dpo_loss.variant("beta is left out (the margin is not scaled)")
def _no_beta(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1
):
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(margin).mean()


@dpo_loss.test(
    points=2,
    hint="−mean(log σ(β · (policy's log-ratio on the chosen minus on the rejected answer))); it "
    "equals ln 2 when the policy equals the reference.",
)
def dpo_loss_matches(draw: Draw) -> list[Case]:
    cases = [
        Case(tuple(draw.randn(6) * 5 for _ in range(4)), {"beta": beta}, label=f"beta={beta}")
        for beta in (0.1, 0.5, round(draw.uniform(0.01, 1), 3))
    ]
    same = draw.randn(4)
    cases.append(
        Case((same, same, same, same), {"beta": 0.1}, label="the policy equals the reference")
    )
    return cases
