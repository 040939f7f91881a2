"""GRPO (llmcourse.train.grpo), the masked reductions it ends with (llmcourse.train.masked), and
``python -m llmcourse.train grpo`` with its results file (llmcourse.train.rlvr, rlvr_cli)."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.train import (
    GRPOConfig,
    GRPOTask,
    Trainer,
    aggregate_loss,
    group_normalized_rewards,
    masked_mean,
    masked_normalize,
    policy_gradient_loss,
)
from llmcourse.train.logprobs import gather_logprobs
from llmcourse.train.ppo import clipped_surrogate, kl_estimate, kl_from_logits

VOCAB = 12
STOP = 3


def tiny_lm(seed: int = 0) -> DecoderLM:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=VOCAB, context_length=32, d_model=16, n_layer=1, n_head=2, position="rope",
        norm="rmsnorm", mlp="swiglu", bias=False,
    )  # fmt: skip
    return DecoderLM(config)


def prompt_fn(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(4, VOCAB, (n, 3), generator=generator)


def prefer_seven(prompts, responses):
    return torch.tensor([sum(t == 7 for t in r) / max(1, len(r)) for r in responses])


# ---- masked reductions ---------------------------------------------------------------------------

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
M = torch.tensor([[1, 1, 0], [1, 0, 0]])


def test_masked_mean_over_all_and_along_each_dim():
    assert masked_mean(X, M).item() == pytest.approx((1 + 2 + 4) / 3)
    assert masked_mean(X, M, dim=-1).tolist() == pytest.approx([1.5, 4.0])
    assert masked_mean(X, M, dim=0).tolist() == pytest.approx([2.5, 2.0, 0.0])  # empty: 0
    assert masked_mean(X, None, dim=1).tolist() == pytest.approx([2.0, 5.0])
    assert masked_mean(X, torch.ones(3)).item() == pytest.approx(3.5)  # the mask broadcasts


def test_masked_mean_of_an_empty_selection_is_zero_with_a_finite_gradient():
    x = X.clone().requires_grad_()
    value = masked_mean(x, torch.zeros_like(M), dim=-1).sum()
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(x.grad).all()


def test_masked_normalize_divides_the_masked_sum_by_the_constant():
    assert masked_normalize(X, M, constant=2.0).item() == pytest.approx(3.5)
    assert masked_normalize(X, M, dim=-1, constant=4.0).tolist() == pytest.approx([0.75, 1.0])
    assert masked_normalize(X, M, dim=0).tolist() == pytest.approx([5.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="constant must be positive"):
        masked_normalize(X, M, constant=0.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        masked_mean(X, torch.ones(4))


# ---- group-normalised rewards --------------------------------------------------------------------


def test_group_normalized_rewards_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    # Group 1: mean 1/4, unbiased std 1/2; group 2: mean 1/2, std √(1/3); group 3: all equal.
    advantages = group_normalized_rewards(rewards, 4, eps=0.0)
    s = math.sqrt(1 / 3)
    expected = [1.5, -0.5, -0.5, -0.5, 0.5 / s, 0.5 / s, -0.5 / s, -0.5 / s, 0, 0, 0, 0]
    assert advantages[:8].tolist() == pytest.approx(expected[:8])
    assert torch.all(group_normalized_rewards(rewards, 4)[8:] == 0)  # eps keeps it finite
    plain = group_normalized_rewards(rewards, 4, normalize_by_std=False)
    assert plain.tolist() == pytest.approx(
        [0.75, -0.25, -0.25, -0.25, 0.5, 0.5, -0.5, -0.5] + [0] * 4
    )
    with pytest.raises(ValueError, match="divide the 12 rewards"):
        group_normalized_rewards(rewards, 5)


# ---- the three losses ----------------------------------------------------------------------------


def test_no_baseline_and_reinforce_with_baseline_by_hand():
    logprobs = torch.tensor([[-1.0, -2.0], [-0.5, -0.25]])
    loss, clipped = policy_gradient_loss(logprobs, "no_baseline", rewards=torch.tensor([2.0, 0.0]))
    assert loss.tolist() == [[2.0, 4.0], [0.0, 0.0]] and clipped is None
    loss, _ = policy_gradient_loss(
        logprobs, "reinforce_with_baseline", advantages=torch.tensor([0.5, -1.0])
    )
    assert loss.tolist() == [[0.5, 1.0], [-0.5, -0.25]]
    with pytest.raises(ValueError, match="needs advantages"):
        policy_gradient_loss(logprobs, "reinforce_with_baseline", rewards=torch.ones(2))


def test_grpo_clip_by_hand():
    # Ratios 1.5 and 0.5 against π_old, each with A = +1 and A = −1; ε = 0.2.
    old = torch.zeros(4, 1)
    logprobs = torch.log(torch.tensor([[1.5], [1.5], [0.5], [0.5]]))
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, clipped = policy_gradient_loss(
        logprobs, "grpo_clip", advantages=advantages, old_logprobs=old, clip=0.2
    )
    # min(ρA, clip(ρ)A): 1.2 (clipped), −1.5, 0.5, −0.8 (clipped); the loss is its negative.
    assert loss.squeeze(-1).tolist() == pytest.approx([-1.2, 1.5, -0.5, 0.8])
    assert clipped.squeeze(-1).tolist() == [True, False, False, True]
    # The clipped tokens pass no gradient; PPO's loss uses the same surrogate.
    grad_logprobs = logprobs.clone().requires_grad_()
    policy_gradient_loss(grad_logprobs, "grpo_clip", advantages=advantages, old_logprobs=old)[
        0
    ].sum().backward()
    assert grad_logprobs.grad.squeeze(-1).tolist() == pytest.approx([0.0, 1.5, -0.5, 0.0])
    objective, _ = clipped_surrogate(logprobs, old, advantages[:, None])
    assert torch.equal(objective, -loss)


def test_at_ratio_one_grpo_clip_has_the_gradient_of_reinforce_with_baseline():
    logprobs = torch.randn(3, 4, requires_grad=True)
    advantages = torch.tensor([1.0, -2.0, 0.5])
    grads = []
    for loss_type in ("grpo_clip", "reinforce_with_baseline"):
        logprobs.grad = None
        loss, _ = policy_gradient_loss(
            logprobs, loss_type, advantages=advantages, old_logprobs=logprobs.detach()
        )
        loss.sum().backward()
        grads.append(logprobs.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


# ---- averaging and the length bias ---------------------------------------------------------------


def test_aggregations_by_hand():
    assert [t.item() for t in aggregate_loss(X, M, "token")] == pytest.approx([7.0, 3.0])
    assert [t.item() for t in aggregate_loss(X, M, "sequence")] == pytest.approx([5.5, 2.0])
    total, units = aggregate_loss(X, M, "constant", constant=4.0)
    assert [total.item(), units.item()] == pytest.approx([1.75, 2.0])
    with pytest.raises(ValueError, match="needs the constant"):
        aggregate_loss(X, M, "constant")


def test_per_token_weights_show_the_length_bias_of_the_sequence_mean():
    lengths = [1, 2, 4]
    mask = torch.tensor([[1.0] * n + [0.0] * (4 - n) for n in lengths])
    weights = {}
    for aggregation in ("sequence", "token", "constant"):
        per_token = torch.ones(3, 4, requires_grad=True)
        total, units = aggregate_loss(per_token, mask, aggregation, constant=4.0)
        (total / units).backward()
        weights[aggregation] = [per_token.grad[i, 0].item() for i in range(3)]
    # Sequence mean: 1/(B·|o|), a token of a long response weighs less. The others: the same.
    assert weights["sequence"] == pytest.approx([1 / 3, 1 / 6, 1 / 12])
    assert weights["token"] == pytest.approx([1 / 7] * 3)
    assert weights["constant"] == pytest.approx([1 / 12] * 3)


# ---- KL ------------------------------------------------------------------------------------------


def test_exact_kl_from_logits_by_hand_and_as_the_mean_of_k1():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert kl_from_logits(p.log(), q.log()).item() == pytest.approx(expected)
    # k1 and k3 of samples from p are unbiased estimates of the same number.
    samples = torch.multinomial(
        p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0)
    )
    for name in ("k1", "k3"):
        estimate = kl_estimate(p.log()[samples], q.log()[samples], name).mean().item()
        assert estimate == pytest.approx(expected, abs=0.01)


# ---- the task on Trainer -------------------------------------------------------------------------


def grpo_config(**changes) -> GRPOConfig:
    settings = {
        "prompts_per_rollout": 4, "group_size": 4, "max_new_tokens": 5, "minibatch_size": 16,
        "lr": 3e-3, "stop_token": STOP,
    }  # fmt: skip
    return GRPOConfig(**{**settings, **changes})


def test_rollout_groups_prompts_and_centres_advantages_per_group():
    lm = tiny_lm()
    config = grpo_config()
    task = GRPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config)
    rows, metrics = task.rollout(copy.deepcopy(lm).eval())
    prompts = rows["tokens"][:, :3].view(4, 4, 3)
    assert torch.all(prompts == prompts[:, :1])  # each group shares its prompt
    assert torch.allclose(rows["advantages"].view(4, 4).sum(-1), torch.zeros(4), atol=1e-5)
    assert torch.equal(rows["old_logprobs"], rows["ref_logprobs"])  # the policy is the reference
    assert metrics["kl"] == metrics["kl_k1"] == 0.0
    assert 1 <= metrics["response_length"] <= 5


def test_grpo_raises_the_reward():
    lm = tiny_lm()
    # 25 rollouts take the share of 7s from ≈ 0.05 to ≥ 0.9 for model seeds 0, 1 and 2.
    config = grpo_config(prompts_per_rollout=8, minibatch_size=32, lr=1e-2)
    trainer = Trainer(
        copy.deepcopy(lm),
        config.train_config(rollouts=25, progress_bar=False),
        task=GRPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config),
    )
    trainer.fit()
    first = sum(r["reward"] for r in trainer.history[:3]) / 3
    last = sum(r["reward"] for r in trainer.history[-3:]) / 3
    assert first < 0.2 and last > first + 0.5 and trainer.history[-1]["kl"] > 0


@pytest.mark.parametrize("aggregation", ["token", "sequence", "constant"])
def test_task_loss_over_its_count_is_the_formula_of_its_aggregation(aggregation):
    lm = tiny_lm()
    with torch.no_grad():
        lm.lm_head.weight[STOP] += 1.0
    config = grpo_config(aggregation=aggregation, constant=7.0, kl_coef=0.1)
    task = GRPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config)
    rows, _ = task.rollout(copy.deepcopy(lm).eval())
    rows["advantages"] = torch.linspace(-1.0, 2.0, 16)  # group means are 0: make them not
    total, metrics = task.loss(lm, rows)
    # By hand: ratio 1 at sampling time, so the clipped loss is −A per token, plus β·k3 (= 0).
    per_token, mask = -rows["advantages"][:, None].expand_as(rows["mask"]), rows["mask"]
    lengths = mask.sum(-1)
    expected = {
        "token": (per_token * mask).sum() / lengths.sum(),
        "sequence": ((per_token * mask).sum(-1) / lengths).mean(),
        "constant": ((per_token * mask).sum(-1) / 7.0).mean(),
    }[aggregation]
    assert (total / task.count(rows)).item() == pytest.approx(expected.item(), abs=1e-6)
    assert metrics["clip_fraction"].item() == 0.0


@pytest.mark.parametrize("aggregation", ["token", "sequence", "constant"])
@pytest.mark.parametrize("kl_placement", ["loss", "reward"])
def test_accumulated_micro_batches_give_the_gradient_of_one_batch(aggregation, kl_placement):
    """1 × 16 rows, 2 × 8 and 4 × 4 (accumulated) train the same weights, whatever the
    aggregation, although the rows differ in length (so the micro-batches' token counts do)."""
    lm = tiny_lm()
    with torch.no_grad():
        lm.lm_head.weight[STOP] += 1.0  # stop early, at different lengths

    def train(accumulate: int) -> tuple[DecoderLM, GRPOTask]:
        config = grpo_config(
            aggregation=aggregation, kl_coef=0.1, kl_placement=kl_placement, epochs=2
        )
        task = GRPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config)
        policy = copy.deepcopy(lm)
        train_config = config.train_config(
            rollouts=2, grad_accum_steps=accumulate, progress_bar=False
        )
        Trainer(policy, train_config, task=task).fit()
        return policy, task

    whole, task = train(1)
    rows, _ = task.rollout(copy.deepcopy(lm).eval())
    assert len(set(rows["mask"].sum(-1).tolist())) > 1
    for accumulate in (2, 4):
        policy, _ = train(accumulate)
        for (name, a), b in zip(
            policy.state_dict().items(), whole.state_dict().values(), strict=True
        ):
            torch.testing.assert_close(a, b, atol=2e-6, rtol=0, msg=name)


def test_grpo_resumes_exactly_mid_rollout(tmp_path):
    lm = tiny_lm()
    config = grpo_config(epochs=2, minibatch_size=8)  # 4 steps per rollout

    def make(out_dir=None):
        policy = copy.deepcopy(lm)
        task = GRPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config)
        train_config = config.train_config(rollouts=2, progress_bar=False, out_dir=out_dir)
        return policy, Trainer(policy, train_config, task=task)

    straight, trainer = make()
    trainer.fit()
    _, first = make(str(tmp_path))
    first.fit(steps=3)
    resumed, second = make(str(tmp_path))
    second.load_checkpoint()
    second.fit()
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_grpo_config_errors_say_what_to_do():
    with pytest.raises(ValueError, match="only loss_type='grpo_clip' corrects"):
        GRPOConfig(epochs=2, loss_type="reinforce_with_baseline")
    with pytest.raises(ValueError, match="aggregation='mean'"):
        GRPOConfig(aggregation="mean")
    with pytest.raises(ValueError, match="multiple of minibatch_size=48"):
        GRPOConfig(minibatch_size=48)
    with pytest.raises(ValueError, match="group_size must be at least 2"):
        GRPOConfig(group_size=1)
    assert GRPOConfig(minibatch_size=32).train_config(3, grad_accum_steps=4).batch_size == 8


# ---- the command and its results file ------------------------------------------------------------


@pytest.mark.slow
def test_compare_command_writes_the_results_file_at_a_tiny_size(tmp_path, capsys):
    from llmcourse.train.cli import main
    from llmcourse.train.rl_compare import METHODS, load_results

    out = tmp_path / "rl.json"
    main(["grpo", "--compare", "--size", "tiny", "--seeds", "0", "1", "--out", str(out)])
    results = load_results(out)
    assert results["command"].startswith("python -m llmcourse.train grpo --compare")
    assert list(results["methods"]) == list(METHODS) and results["seeds"] == [0, 1]
    for method, summary in results["methods"].items():
        assert [run["seed"] for run in summary["runs"]] == [0, 1]
        for name in ("accuracy", "pass@1", "pass@4", "reward"):
            assert 0.0 <= summary["mean"][name] <= 1.0, (method, name)
        assert summary["mean"]["pass@4"] >= summary["mean"]["pass@1"] - 1e-9
        assert summary["mean"]["kl"] >= -1e-6 and summary["std"]["accuracy"] >= 0
    assert results["methods"]["SFT start"]["mean"]["kl"] == pytest.approx(0.0, abs=1e-6)
    table = out.with_suffix(".md").read_text()
    assert results["config_hash"] in table and "SFT → GRPO" in table
    assert json.loads(out.read_text())["budget"]["sft_steps"] >= 1


@pytest.mark.slow
def test_grpo_command_prints_its_result_per_seed(capsys):
    from llmcourse.train.cli import main

    summary = main(["grpo", "--size", "tiny", "--seeds", "0", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert out.count("held-out accuracy") == 2 and "RESULT " in out
    assert [run["seed"] for run in summary["runs"]] == [0, 1]
    assert 0 <= summary["grpo_accuracy_mean"] <= 1 and summary["runs"][0]["rollouts"] == 3


def test_log_probs_are_those_of_the_tempered_distribution_that_sampled():
    lm = tiny_lm()
    config = grpo_config(temperature=2.0)
    task = GRPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config)
    rows, _ = task.rollout(copy.deepcopy(lm).eval())
    tempered = gather_logprobs(lm(rows["tokens"]).logits[:, :-1] / 2.0, rows["tokens"][:, 1:])
    torch.testing.assert_close(rows["old_logprobs"], tempered)
    _, metrics = task.loss(lm, rows)  # at the sampling policy the ratio is 1: nothing clipped
    assert metrics["clip_fraction"].item() == 0.0
    with pytest.raises(ValueError, match="temperature > 0"):
        grpo_config(temperature=0.0)


def test_dpo_with_an_nll_term_adds_the_chosen_answers_mean_nll():
    from llmcourse.tokenizers import CharTokenizer
    from llmcourse.train.dpo import DPOTask, preference_batches
    from llmcourse.train.logprobs import sequence_logprobs
    from llmcourse.train.preferences import PreferencePair

    tokenizer = CharTokenizer().train("abcdefg")
    pairs = [PreferencePair("ab", "cde", "f"), PreferencePair("ba", "g", "ccd")]
    batch = preference_batches(tokenizer, pairs)
    policy, reference = tiny_lm(seed=1), tiny_lm(seed=2)
    plain, _ = DPOTask(reference, beta=0.1).loss(policy, batch)
    with_nll, metrics = DPOTask(reference, beta=0.1, nll_coef=0.5).loss(policy, batch)
    chosen = batch["chosen"]
    mean_nll = -sequence_logprobs(
        policy, chosen["input_ids"], chosen["labels"], chosen["attention_mask"], average=True
    )
    assert with_nll.item() == pytest.approx(plain.item() + 0.5 * mean_nll.sum().item(), rel=1e-5)
    assert metrics["chosen_nll"].item() == pytest.approx(mean_nll.sum().item(), rel=1e-5)


def test_cached_sft_start_trains_once_then_loads(tmp_path, monkeypatch):
    from llmcourse.train.rlvr import RLVRConfig, cached_sft_start

    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    config = RLVRConfig.tiny().replace(sft_steps=10, sft_check_every=5)
    model, history = cached_sft_start(config, seed=3)
    again, history_again = cached_sft_start(config, seed=3)
    assert history == history_again and history[-1]["step"] == 10
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert len(list((tmp_path / "arithmetic-sft").iterdir())) == 1
    cached_sft_start(config, seed=4)  # another seed, another entry
    assert len(list((tmp_path / "arithmetic-sft").iterdir())) == 2


def test_committed_results_have_every_method_and_seed_and_match_their_table():
    """The file lesson 09 loads, made by `python -m llmcourse.train grpo --compare --seeds 0 1 2
    --jobs 3`: shape, ranges, and the markdown table written from it."""
    from llmcourse.train.rl_compare import METHODS, RESULTS, load_results, results_markdown
    from llmcourse.train.rlvr import RLVRConfig

    results = load_results()
    assert results["command"] == "python -m llmcourse.train grpo --compare --seeds 0 1 2 --jobs 3"
    assert results["config"] == RLVRConfig().to_dict()  # made with today's defaults
    assert results["config_hash"] == RLVRConfig().hash
    assert list(results["methods"]) == list(METHODS) and results["seeds"] == [0, 1, 2]
    for method, summary in results["methods"].items():
        assert [run["seed"] for run in summary["runs"]] == [0, 1, 2], method
        for run in summary["runs"]:
            for name in ("accuracy", "accuracy_contains", "pass@1", "pass@8", "reward"):
                assert 0.0 <= run[name] <= 1.0, (method, name)
            assert run["pass@1"] <= run["pass@4"] <= run["pass@8"]
            assert run["accuracy"] <= run["accuracy_contains"]  # exact implies contained
            assert run["kl"] >= -1e-6 and run["curve"] and len(run["examples"]) == 6
    assert RESULTS.with_suffix(".md").read_text() == results_markdown(results)
