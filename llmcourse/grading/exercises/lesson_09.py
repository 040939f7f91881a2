"""Exercise tests of lesson 09 (reward modelling, PPO, DPO): each compares the learner's function
with the package's own in ``llmcourse.train``."""

from __future__ import annotations

import math

import torch

from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.train.dpo import dpo_loss as reference_dpo_loss
from llmcourse.train.ppo import gae as reference_gae
from llmcourse.train.ppo import ppo_policy_loss as reference_ppo_policy_loss
from llmcourse.train.reward import bradley_terry_loss as reference_bradley_terry


@exercise_test(
    "09.bradley_terry",
    points=2,
    hint="−mean(log σ(r_chosen − r_rejected)); use F.logsigmoid so large margins stay finite.",
)
def bradley_terry_matches(ns: Namespace) -> None:
    loss = ns.function("bradley_terry_loss")
    torch.manual_seed(0)
    for _ in range(5):
        chosen, rejected = torch.randn(8) * 3, torch.randn(8) * 3
        assert_close(loss(chosen, rejected), reference_bradley_terry(chosen, rejected),
                     what="bradley_terry_loss")  # fmt: skip
    far = loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert math.isfinite(float(far)), "A margin of −400 gave a non-finite loss: use logsigmoid."


@exercise_test(
    "09.gae",
    points=3,
    hint="δ_t = r_t + γ·V_{t+1} − V_t with V after the last step = 0; A_t = δ_t + γλ·A_{t+1} "
    "(loop backwards); returns = A + V. Work on (batch, seq) tensors.",
)
def gae_matches(ns: Namespace) -> None:
    gae = ns.function("gae")
    torch.manual_seed(0)
    for gamma, lam, shape in [(1.0, 0.95, (2, 5)), (0.9, 0.0, (1, 4)), (0.99, 1.0, (3, 1))]:
        rewards, values = torch.randn(*shape), torch.randn(*shape)
        advantages, returns = gae(rewards, values, gamma, lam)
        expected_adv, expected_ret = reference_gae(rewards, values, gamma, lam)
        assert_close(advantages, expected_adv, what=f"advantages (γ={gamma}, λ={lam})")
        assert_close(returns, expected_ret, what=f"returns (γ={gamma}, λ={lam})")


@exercise_test(
    "09.ppo_clipped_loss",
    points=3,
    hint="ratio = exp(logp − old_logp); loss = −masked mean of"
    " min(ratio·A, clip(ratio, 1−ε, 1+ε)·A);"
    " clip fraction = masked mean of (clipped term < unclipped term).",
)
def ppo_loss_matches(ns: Namespace) -> None:
    ppo_policy_loss = ns.function("ppo_policy_loss")
    torch.manual_seed(0)
    for clip in (0.1, 0.2):
        old = torch.randn(3, 6)
        new = old + 0.4 * torch.randn(3, 6)
        advantages = torch.randn(3, 6)
        mask = (torch.rand(3, 6) > 0.3).float()
        loss, fraction = ppo_policy_loss(new, old, advantages, mask, clip)
        expected_loss, expected_fraction = reference_ppo_policy_loss(
            new, old, advantages, mask, clip
        )
        assert_close(loss, expected_loss, what=f"loss (clip={clip})")
        assert_close(fraction, expected_fraction, what=f"clip fraction (clip={clip})")
    loss, fraction = ppo_policy_loss(old, old.clone(), advantages, mask, 0.2)
    assert_close(loss, -(advantages * mask).sum() / mask.sum(), what="loss at ratio 1")


@exercise_test(
    "09.dpo_loss",
    points=2,
    hint="−mean(logsigmoid(β · ((π_c − ref_c) − (π_r − ref_r)))); it equals ln 2 when the policy "
    "equals the reference.",
)
def dpo_loss_matches(ns: Namespace) -> None:
    dpo_loss = ns.function("dpo_loss")
    torch.manual_seed(0)
    for beta in (0.1, 0.5):
        logps = [torch.randn(6) * 5 for _ in range(4)]
        assert_close(dpo_loss(*logps, beta=beta), reference_dpo_loss(*logps, beta=beta),
                     what=f"dpo_loss(beta={beta})")  # fmt: skip
    same = torch.randn(4)
    assert_close(dpo_loss(same, same, same, same, beta=0.1), math.log(2), what="step-0 loss")
