"""Reward modelling, PPO and DPO (llmcourse.train.preferences/reward/ppo/ppo_task/dpo); their
parity with the loops they replaced and exact resume are in test_train_tasks.py."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.tokenizers import CharTokenizer
from llmcourse.train import (
    TrainConfig,
    Trainer,
    bradley_terry_loss,
    dpo_loss,
    gae,
    kl_estimate,
    ppo_policy_loss,
)
from llmcourse.train.batches import TensorRows
from llmcourse.train.dpo import DPOTask, preference_batches
from llmcourse.train.ppo import (
    AdaptiveKLController,
    gae_loop,
    ppo_value_loss,
    token_rewards,
    whiten,
)
from llmcourse.train.ppo_task import PolicyWithValue, PPOConfig, PPOTask
from llmcourse.train.preferences import (
    LipogramRule,
    PreferencePair,
    RealWordRule,
    label_pair,
    label_pairs,
)
from llmcourse.train.reward import (
    RewardModel,
    RewardModelTask,
    pair_tensors,
    preference_accuracy,
)

torch.manual_seed(0)


def tiny_lm(vocab: int = 30, seed: int = 0) -> DecoderLM:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab,
        context_length=32,
        d_model=32,
        n_layer=2,
        n_head=4,
        position="rope",
        norm="rmsnorm",
        mlp="swiglu",
        bias=False,
    )
    return DecoderLM(config)


# ---- GAE ----------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 4),
    steps=st.integers(1, 12),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_vectorised_gae_equals_the_loop(batch, steps, gamma, lam, seed):
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randn(batch, steps, generator=generator, dtype=torch.float64)
    values = torch.randn(batch, steps, generator=generator, dtype=torch.float64)
    advantages, returns = gae(rewards, values, gamma, lam)
    loop_advantages, loop_returns = gae_loop(rewards, values, gamma, lam)
    torch.testing.assert_close(advantages, loop_advantages)
    torch.testing.assert_close(returns, loop_returns)


def test_gae_by_hand():
    # Two steps, γ = 0.5, λ = 1: δ_1 = 1 − 2 = −1, δ_0 = 0 + 0.5·2 − 1 = 0; A_0 = 0 + 0.5·(−1).
    advantages, returns = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 2.0]]), 0.5, 1.0)
    torch.testing.assert_close(advantages, torch.tensor([[-0.5, -1.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.5, 1.0]]))


def test_gae_with_lambda_one_and_gamma_one_is_return_minus_value():
    rewards, values = torch.randn(3, 6), torch.randn(3, 6)
    advantages, _ = gae(rewards, values, 1.0, 1.0)
    reward_to_go = rewards.flip(-1).cumsum(-1).flip(-1)
    torch.testing.assert_close(advantages, reward_to_go - values)


def test_gae_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must match"):
        gae(torch.zeros(2, 3), torch.zeros(2, 4))


# ---- PPO losses ---------------------------------------------------------------------------------


def test_clipped_loss_equals_unclipped_when_ratio_is_one():
    logprobs = torch.randn(4, 7)
    advantages = torch.randn(4, 7)
    mask = (torch.rand(4, 7) > 0.3).float()
    loss, clip_fraction = ppo_policy_loss(logprobs, logprobs.clone(), advantages, mask, 0.2)
    expected = -(advantages * mask).sum() / mask.sum()
    torch.testing.assert_close(loss, expected)
    assert float(clip_fraction) == 0.0


def test_clipping_stops_the_gain_beyond_one_plus_epsilon():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    advantages = torch.tensor([[1.0, -1.0]])
    loss, clip_fraction = ppo_policy_loss(new, old, advantages, None, 0.2)
    # Positive advantage: min(1.5, 1.2)·1 = 1.2; negative: min(−0.5, −0.8) = −0.8.
    torch.testing.assert_close(loss, -torch.tensor((1.2 - 0.8) / 2))
    assert float(clip_fraction) == 1.0
    new.requires_grad_(True)
    loss, _ = ppo_policy_loss(new, old, advantages, None, 0.2)
    loss.backward()
    assert torch.all(new.grad == 0)  # both tokens are clipped: no gradient flows


def test_value_loss_takes_the_worse_of_clipped_and_raw():
    old, returns = torch.tensor([0.0]), torch.tensor([1.0])
    # New value 1.0 moves beyond the clip range 0.2: clipped prediction 0.2 has error 0.8.
    loss = ppo_value_loss(torch.tensor([1.0]), old, returns, None, 0.2)
    torch.testing.assert_close(loss, torch.tensor(0.5 * 0.8**2))


def test_whiten_gives_zero_mean_unit_variance_on_the_mask():
    values = torch.randn(5, 9) * 3 + 2
    mask = (torch.rand(5, 9) > 0.4).float()
    white = whiten(values, mask)
    selected = white[mask > 0]
    assert abs(float(selected.mean())) < 1e-5
    assert abs(float(selected.var(unbiased=False)) - 1.0) < 1e-3
    assert torch.all(white[mask == 0] == 0)


def test_token_rewards_put_the_score_on_the_last_response_token():
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
    kl = torch.ones(2, 4)
    rewards = token_rewards(torch.tensor([5.0, 7.0]), kl, 0.1, mask)
    expected = torch.tensor([[0.0, -0.1, 4.9, 0.0], [0.0, -0.1, -0.1, 6.9]])
    torch.testing.assert_close(rewards, expected)


# ---- KL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_kl_is_zero_when_policy_equals_reference(estimator):
    logprobs = torch.log_softmax(torch.randn(3, 8), -1)
    assert torch.all(kl_estimate(logprobs, logprobs.clone(), estimator) == 0)


def test_k1_and_k3_are_unbiased_and_k3_is_never_negative():
    generator = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.tensor([2.0, 0.5, -1.0, 0.0]), -1)
    q = torch.softmax(torch.tensor([0.0, 1.0, 0.0, 0.5]), -1)
    true_kl = float((p * (p / q).log()).sum())
    samples = torch.multinomial(p, 200_000, replacement=True, generator=generator)
    logp, logq = p.log()[samples], q.log()[samples]
    k1, k3 = kl_estimate(logp, logq, "k1"), kl_estimate(logp, logq, "k3")
    assert abs(float(k1.mean()) - true_kl) < 0.01
    assert abs(float(k3.mean()) - true_kl) < 0.01
    assert float(k3.min()) >= 0.0
    assert float(k3.var()) < float(k1.var())  # Schulman (2020): k3 has the lower variance here
    with pytest.raises(ValueError, match="k1"):
        kl_estimate(logp, logq, "k4")


def test_adaptive_kl_controller_moves_towards_the_target():
    controller = AdaptiveKLController(kl_coef=0.1, target=6.0, horizon=100)
    assert controller.update(kl=12.0, n_steps=10) == pytest.approx(0.1 * (1 + 0.2 * 0.1))
    controller = AdaptiveKLController(kl_coef=0.1, target=6.0, horizon=100)
    assert controller.update(kl=3.0, n_steps=10) == pytest.approx(0.1 * (1 - 0.2 * 0.1))
    fixed = AdaptiveKLController(kl_coef=0.1, target=None)
    assert fixed.update(kl=100.0, n_steps=10) == 0.1


# ---- PPO loop -----------------------------------------------------------------------------------


def test_ppo_starts_with_zero_kl_and_logs_its_statistics():
    lm = tiny_lm()
    policy, reference = PolicyWithValue(copy.deepcopy(lm)), copy.deepcopy(lm)

    def prompts(n, generator):
        return torch.randint(0, 30, (n, 4), generator=generator)

    def reward(prompts, responses):  # prefer token 7
        return torch.tensor([sum(t == 7 for t in r) / len(r) for r in responses])

    config = PPOConfig(batch_size=8, minibatch_size=4, max_new_tokens=6, lr=1e-3, ppo_epochs=2)
    task = PPOTask(reference, reward, prompts, config)
    trainer = Trainer(policy, config.train_config(rollouts=2, progress_bar=False), task=task)
    trainer.fit()
    first, second = trainer.history  # one log line per rollout
    assert first["kl"] == 0.0 and first["kl_k3"] == 0.0  # the first rollout: policy == reference
    assert set(first) >= {"reward", "kl", "entropy", "clip_fraction", "kl_coef", "value_loss"}
    assert second["kl"] != 0.0  # the update moved the policy away from the reference
    assert first["step"] == config.steps_per_rollout == 4 and second["rollout"] == 2
    for p_ref, p_lm in zip(reference.parameters(), lm.parameters(), strict=True):
        assert torch.equal(p_ref, p_lm)  # the reference stays frozen


def test_ppo_config_validates_and_gives_the_train_config():
    with pytest.raises(ValueError, match="multiple"):
        PPOConfig(batch_size=10, minibatch_size=4)
    with pytest.raises(ValueError, match="kl_estimator"):
        PPOConfig(kl_estimator="k5")
    config = PPOConfig(batch_size=32, minibatch_size=8, ppo_epochs=3, lr=2e-4).train_config(5)
    assert (config.max_steps, config.batch_size, config.lr, config.log_every) == (60, 8, 2e-4, 12)
    assert isinstance(config, TrainConfig) and config.schedule == "constant"


# ---- preferences and the reward model --------------------------------------------------------


def test_identical_pairs_are_rejected():
    with pytest.raises(ValueError, match=r"identical|itself"):
        label_pair("p", "same", "same", len)
    with pytest.raises(ValueError, match="same text"):
        PreferencePair("p", "same", "same")


def test_label_pair_orders_by_score_and_drops_ties():
    rule = RealWordRule("the king is dead long live the king " * 5, min_count=2)
    assert rule("the king") == 1.0 and rule("the kxng") == 0.5 and rule("...") == 0.0
    pair = label_pair("p", "the kxng", "the king", rule)
    assert pair == PreferencePair("p", "the king", "the kxng")
    assert label_pair("p", "the king", "long live", rule) is None
    pairs = label_pairs(["a", "b", "c"], ["x", "the king", "y"], ["x", "zz", "y"], rule)
    assert [p.chosen for p in pairs] == ["the king"]


def test_lipogram_rule_counts_letters_other_than_the_one_avoided():
    rule = LipogramRule("e")
    assert rule("the quick brown fox") == pytest.approx(15 / 16)  # one "e" among 16 letters
    assert rule("A QUICK BROWN FOX!") == 1.0
    assert rule("EEEE") == 0.0 and rule("123 ...") == 0.0  # no letters: no lipogram
    assert LipogramRule("a")("banana") == pytest.approx(0.5)
    for bad in ("", "ee", "3"):
        with pytest.raises(ValueError, match="single letter"):
            LipogramRule(bad)


def test_min_margin_drops_near_ties_and_keeps_clear_preferences():
    rule = LipogramRule("e")  # "tea" 2/3, "ten" 2/3, "tan" 1, "tee" 1/3
    assert label_pair("p", "tea", "ten", rule) is None  # an exact tie
    assert label_pair("p", "tan", "tea", rule, min_margin=0.2).chosen == "tan"  # 1/3 apart
    assert label_pair("p", "tan", "tea", rule, min_margin=0.4) is None  # too close to call
    pairs = label_pairs(["a", "b"], ["tan", "tee"], ["tea", "tan"], rule, min_margin=0.5)
    assert pairs == [PreferencePair("b", "tan", "tee")]  # 2/3 apart survives, 1/3 does not
    with pytest.raises(ValueError, match="min_margin"):
        label_pair("p", "tan", "tea", rule, min_margin=-0.1)


def test_bradley_terry_loss_matches_its_formula_and_is_ln2_at_a_tie():
    chosen, rejected = torch.randn(6), torch.randn(6)
    expected = -torch.log(torch.sigmoid(chosen - rejected)).mean()
    torch.testing.assert_close(bradley_terry_loss(chosen, rejected), expected)
    assert float(bradley_terry_loss(chosen, chosen)) == pytest.approx(math.log(2))
    assert math.isfinite(float(bradley_terry_loss(torch.tensor([-500.0]), torch.tensor([500.0]))))
    with pytest.raises(ValueError, match="same shape"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))


def test_reward_model_reads_the_last_real_token():
    model = RewardModel(tiny_lm()).eval()
    ids = torch.randint(0, 30, (1, 5))
    padded = torch.cat((ids, torch.zeros(1, 3, dtype=torch.long)), 1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    torch.testing.assert_close(model(padded, mask), model(ids))


def test_mean_pooled_reward_model_averages_per_token_scores_over_the_response():
    model = RewardModel(tiny_lm(), pooling="mean").eval()
    ids = torch.randint(0, 30, (2, 6))
    response_mask = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 0]])
    attention_mask = torch.tensor([[1] * 6, [1] * 5 + [0]])
    with torch.no_grad():
        per_token = model.head(model.backbone(ids).hidden_states).squeeze(-1)
        expected = torch.stack((per_token[0, 2:].mean(), per_token[1, 3:5].mean()))
        torch.testing.assert_close(model(ids, attention_mask, response_mask), expected)
        torch.testing.assert_close(model(ids), per_token.mean(-1))  # no mask: every token
    with pytest.raises(ValueError, match="pooling"):
        RewardModel(tiny_lm(), pooling="max")


def test_pair_tensors_mark_the_response_tokens():
    tokenizer = CharTokenizer().train("abcde")
    batch = pair_tensors(
        tokenizer, [PreferencePair("ab", "cde", "c"), PreferencePair("a", "b", "dd")]
    )
    assert batch["chosen_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch["chosen_response_mask"].tolist() == [[0, 0, 1, 1, 1], [0, 1, 0, 0, 0]]
    assert batch["rejected_response_mask"].tolist() == [[0, 0, 1], [0, 1, 1]]


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_reward_model_score_equals_the_forward_pass_on_prompt_plus_response(pooling):
    model = RewardModel(tiny_lm(), pooling=pooling).eval()
    prompts = torch.randint(0, 30, (2, 3))
    responses = [[4, 5, 6, 7], [8, 9]]
    scores = model.score(prompts, responses)
    for row, response in enumerate(responses):
        ids = torch.cat((prompts[row], torch.tensor(response)))[None]
        mask = torch.tensor([[0] * 3 + [1] * len(response)])
        with torch.no_grad():
            torch.testing.assert_close(scores[row], model(ids, None, mask)[0])
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        model.score(prompts, responses[:1])


def test_reward_model_learns_a_rule():
    tokenizer = CharTokenizer().train("abc")
    text = [(k * "b" + "c" * 4)[:4] for k in range(5)]  # "cccc", "bccc", ..., "bbbb"
    more_b = [PreferencePair("a", text[i], text[j]) for i in range(5) for j in range(i)]
    fewer_b = [PreferencePair("a", p.rejected, p.chosen) for p in more_b]
    for pooling in ("last", "mean"):
        before = []
        for pairs in (more_b, fewer_b):  # an untrained model cannot be right about both
            batch = pair_tensors(tokenizer, pairs)
            model = RewardModel(tiny_lm(vocab=tokenizer.vocab_size), pooling=pooling)
            before.append(preference_accuracy(model, batch))
            config = TrainConfig(
                max_steps=40, batch_size=8, lr=3e-3, weight_decay=0.0, warmup_steps=0,
                schedule="constant", progress_bar=False,
            )  # fmt: skip
            Trainer(model, config, TensorRows(batch), task=RewardModelTask()).fit()
            assert preference_accuracy(model, batch) == 1.0, pooling
        assert min(before) < 1.0


# ---- DPO -----------------------------------------------------------------------------------------


def test_dpo_loss_is_ln2_when_policy_equals_reference():
    chosen, rejected = torch.randn(5), torch.randn(5)
    loss = dpo_loss(chosen, rejected, chosen.clone(), rejected.clone(), beta=0.1)
    assert float(loss) == pytest.approx(math.log(2), abs=1e-7)


def test_dpo_loss_matches_its_formula_and_its_gradient_favours_the_chosen():
    pc, pr, rc, rr = (torch.randn(4) for _ in range(4))
    expected = -torch.nn.functional.logsigmoid(0.5 * ((pc - rc) - (pr - rr))).mean()
    torch.testing.assert_close(dpo_loss(pc, pr, rc, rr, beta=0.5), expected)
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    dpo_loss(pc, pr, rc, rr).backward()
    assert torch.all(pc.grad < 0) and torch.all(pr.grad > 0)  # raise chosen, lower rejected
    with pytest.raises(ValueError, match="one shape"):
        dpo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2))


def test_dpo_training_starts_at_ln2_and_separates_the_pairs():
    tokenizer = CharTokenizer().train("abcdefg")
    pairs = [PreferencePair("ab", "cd" * (k % 3 + 1), "ef" * (k % 2 + 1)) for k in range(8)]
    batches = preference_batches(tokenizer, pairs)
    reference = tiny_lm(vocab=tokenizer.vocab_size)
    policy = copy.deepcopy(reference)
    config = TrainConfig(
        max_steps=15, batch_size=8, lr=3e-3, weight_decay=0.0, warmup_steps=0,
        schedule="constant", log_every=1, progress_bar=False,
    )  # fmt: skip
    trainer = Trainer(policy, config, TensorRows(batches), task=DPOTask(reference, beta=0.5))
    history = trainer.fit().history
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert history[-1]["loss"] < 0.5 and history[-1]["accuracy"] == 1.0
