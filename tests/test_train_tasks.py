"""Every objective is a task on the one Trainer: each reproduces the loop it replaced, resumes
exactly from a checkpoint, and accumulates exactly; rollouts, frozen models and the contract."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from llmcourse.config import ModelConfig
from llmcourse.embeddings import SkipGram
from llmcourse.infer import generate
from llmcourse.models import DecoderLM, EncoderLM
from llmcourse.tokenizers import CharTokenizer
from llmcourse.train import TrainConfig, Trainer, causal_lm_loss
from llmcourse.train.batches import TensorRows, rows
from llmcourse.train.distill import DistillationTask, causal_distillation_loss
from llmcourse.train.dpo import DPOTask, dpo_loss, implicit_rewards, preference_batches
from llmcourse.train.heads import ClassificationCollator, ClassificationTask, SequenceClassifier
from llmcourse.train.logprobs import gather_logprobs, sequence_logprobs
from llmcourse.train.masked import masked_mean
from llmcourse.train.ppo import (
    entropy_from_logits,
    kl_estimate,
    ppo_policy_loss,
    ppo_value_loss,
)
from llmcourse.train.ppo_task import PolicyWithValue, PPOConfig, PPOTask
from llmcourse.train.preferences import PreferencePair
from llmcourse.train.reward import RewardModel, RewardModelTask, bradley_terry_loss, pair_tensors
from llmcourse.train.rollouts import RolloutBatches
from llmcourse.train.sgns import SGNSTask
from llmcourse.train.tasks import LanguageModelTask, Task
from llmcourse.utils.checkpoint import load_checkpoint

VOCAB = 12
TOKENIZER = CharTokenizer().train("abcdefg")
PAIRS = [
    PreferencePair("ab", "cd" * (k % 3 + 1), "ef" * (k % 2 + 1) + "g" * (k % 4)) for k in range(8)
]


def tiny_lm(vocab: int = VOCAB, seed: int = 0, dropout: float = 0.0) -> DecoderLM:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=vocab, context_length=32, d_model=16, n_layer=1, n_head=2, position="rope",
        norm="rmsnorm", mlp="swiglu", bias=False, dropout=dropout,
    )  # fmt: skip
    return DecoderLM(config)


def adam(**changes) -> TrainConfig:
    """The optimiser the pre-Trainer loops used: Adam(W) with torch's betas, constant lr."""
    base = {
        "max_steps": 5, "batch_size": 8, "lr": 3e-3, "betas": (0.9, 0.999), "weight_decay": 0.0,
        "schedule": "constant", "warmup_steps": 0, "grad_clip": 1.0, "log_every": 1,
        "progress_bar": False, "shuffle": False,
    }  # fmt: skip
    return TrainConfig(**{**base, **changes})


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float = 0.0) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if atol == 0.0:
            assert torch.equal(x, y), name
        else:
            torch.testing.assert_close(x, y, atol=atol, rtol=0, msg=name)


# ---- each task reproduces the loop it replaced ------------------------------------------------
# The references below are the bodies of the removed train_dpo / train_reward_model / distill /
# train_classifier / PPOTrainer.step / train_sgns loops. Each step sees the whole (fixed) data
# in order, where the old loops drew random minibatches; what remains is float rounding (a sum
# divided by a count instead of a mean, rows in another order), hence atol 1e-5.


def test_dpo_task_reproduces_the_old_loop():
    batches = preference_batches(TOKENIZER, PAIRS)
    reference = tiny_lm(TOKENIZER.vocab_size)
    policy, old_policy = copy.deepcopy(reference), copy.deepcopy(reference)
    trainer = Trainer(policy, adam(), TensorRows(batches), task=DPOTask(reference, beta=0.5))
    trainer.fit()

    def logps(model, side):
        b = batches[side]
        return sequence_logprobs(model, b["input_ids"], b["labels"], b["attention_mask"])

    with torch.no_grad():
        ref_chosen, ref_rejected = logps(reference, "chosen"), logps(reference, "rejected")
    optimizer = torch.optim.AdamW(old_policy.parameters(), lr=3e-3, weight_decay=0.0)
    old_policy.train()
    for step in range(5):
        chosen, rejected = logps(old_policy, "chosen"), logps(old_policy, "rejected")
        loss = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, 0.5)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(old_policy.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        margin = implicit_rewards(chosen, ref_chosen, 0.5) - implicit_rewards(
            rejected, ref_rejected, 0.5
        )
        record = trainer.history[step]
        assert record["loss"] == pytest.approx(loss.item(), abs=1e-5)
        assert record["margin"] == pytest.approx(margin.mean().item(), abs=1e-5)
        assert record["accuracy"] == (margin > 0).float().mean().item()
    assert trainer.history[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert_same_weights(policy, old_policy, atol=1e-5)
    assert not policy.training  # fit leaves the model ready to use


def test_reward_model_task_reproduces_the_old_loop():
    batch = pair_tensors(TOKENIZER, PAIRS)
    model = RewardModel(tiny_lm(TOKENIZER.vocab_size), pooling="mean")
    old_model = copy.deepcopy(model)
    trainer = Trainer(model, adam(), TensorRows(batch), task=RewardModelTask())
    trainer.fit()

    optimizer = torch.optim.AdamW(old_model.parameters(), lr=3e-3, weight_decay=0.0)
    old_model.train()
    for step in range(5):
        chosen = old_model(batch["chosen_ids"], batch["chosen_mask"], batch["chosen_response_mask"])
        rejected = old_model(
            batch["rejected_ids"], batch["rejected_mask"], batch["rejected_response_mask"]
        )
        loss = bradley_terry_loss(chosen, rejected)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(old_model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        assert trainer.history[step]["loss"] == pytest.approx(loss.item(), abs=1e-5)
        accuracy = (chosen > rejected).float().mean().item()
        assert trainer.history[step]["accuracy"] == accuracy
    assert_same_weights(model, old_model, atol=1e-5)


def test_distillation_task_reproduces_the_old_loop():
    teacher, student = tiny_lm(seed=1), tiny_lm(seed=2)
    old_student = copy.deepcopy(student)
    ids = torch.randint(0, VOCAB, (8, 12), generator=torch.Generator().manual_seed(0))
    data = TensorRows({"input_ids": ids, "labels": ids})
    task = DistillationTask(teacher, temperature=2.0, alpha=0.7)
    Trainer(student, adam(), data, task=task).fit()

    optimizer = torch.optim.AdamW(old_student.parameters(), lr=3e-3, weight_decay=0.0)
    old_student.train()
    for _ in range(5):
        with torch.no_grad():
            teacher_logits = teacher(ids).logits
        loss = causal_distillation_loss(old_student(ids).logits, teacher_logits, ids, 2.0, 0.7)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(old_student.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    assert_same_weights(student, old_student, atol=1e-5)


def test_classification_task_reproduces_the_old_loop():
    torch.manual_seed(0)
    config = ModelConfig(
        architecture="encoder", vocab_size=30, context_length=16, d_model=16, n_layer=1,
        n_head=2, mlm_head=False,
    )  # fmt: skip
    model = SequenceClassifier(EncoderLM(config), n_classes=2, dropout=0.0)
    old_model = copy.deepcopy(model)
    ids = torch.randint(1, 30, (16, 6), generator=torch.Generator().manual_seed(0))
    labels = (ids == 5).any(-1).long()
    examples = [{"input_ids": i, "labels": y} for i, y in zip(ids, labels, strict=True)]
    collate = ClassificationCollator(pad_id=0)
    trainer = Trainer(
        model, adam(grad_clip=None), examples, task=ClassificationTask(), collate_fn=collate
    )
    trainer.fit()

    optimizer = torch.optim.AdamW(old_model.parameters(), lr=3e-3, weight_decay=0.0)
    old_model.train()
    for start in range(0, 40, 8):
        rows_ = slice(start % 16, start % 16 + 8)
        loss = F.cross_entropy(old_model(ids[rows_], None), labels[rows_])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    assert_same_weights(model, old_model, atol=1e-5)


def test_sgns_task_reproduces_the_old_loop():
    torch.manual_seed(0)
    model = SkipGram(20, 8)
    old_model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    data = TensorRows(
        {"centers": torch.randint(0, 20, (64,), generator=generator),
         "contexts": torch.randint(0, 20, (64,), generator=generator)}
    )  # fmt: skip
    noise = torch.softmax(torch.randn(20, generator=generator), 0)
    config = adam(batch_size=16, max_steps=6, lr=0.01, grad_clip=None)
    torch.manual_seed(5)  # the negatives come from the global generator, as before
    Trainer(model, config, data, task=SGNSTask(noise, negatives=3)).fit()

    torch.manual_seed(5)
    optimizer = torch.optim.Adam(old_model.parameters(), lr=0.01)
    for step in range(6):
        batch = rows(data.batch, slice(step % 4 * 16, step % 4 * 16 + 16))
        sampled = torch.multinomial(noise, 16 * 3, replacement=True).view(16, 3)
        loss = old_model(batch["centers"], batch["contexts"], sampled)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert_same_weights(model, old_model, atol=1e-6)


# ---- PPO -----------------------------------------------------------------------------------------


def prompt_fn(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, 3), generator=generator)


def prefer_seven(prompts, responses):
    return torch.tensor([sum(t == 7 for t in r) / max(1, len(r)) for r in responses])


def test_ppo_task_reproduces_the_old_step():
    lm = tiny_lm()
    reference = copy.deepcopy(lm)
    config = PPOConfig(batch_size=8, minibatch_size=8, max_new_tokens=5, lr=1e-3, ppo_epochs=2)
    policy = PolicyWithValue(copy.deepcopy(lm))
    trainer = Trainer(
        policy,
        config.train_config(rollouts=1, progress_bar=False),
        task=PPOTask(reference, prefer_seven, prompt_fn, config),
    )
    trainer.fit()

    # The old PPOTrainer.step on the same rollout: two epochs of one minibatch (every row).
    old_policy = PolicyWithValue(copy.deepcopy(lm)).eval()
    data, stats = PPOTask(reference, prefer_seven, prompt_fn, config).rollout(old_policy)
    optimizer = torch.optim.AdamW(old_policy.parameters(), lr=1e-3, weight_decay=0)
    old_policy.train()
    logged = {"policy_loss": [], "value_loss": [], "clip_fraction": [], "entropy": []}
    for _ in range(2):
        mask = data["mask"]
        logits, values = old_policy(data["tokens"])
        logprobs = gather_logprobs(logits[:, :-1], data["tokens"][:, 1:])
        policy_loss, clip_fraction = ppo_policy_loss(
            logprobs, data["logprobs"], data["advantages"], mask, 0.2
        )
        value_loss = ppo_value_loss(values[:, :-1], data["values"], data["returns"], mask, 0.2)
        optimizer.zero_grad(set_to_none=True)
        (policy_loss + 0.5 * value_loss).backward()
        torch.nn.utils.clip_grad_norm_(old_policy.parameters(), 1.0)
        optimizer.step()
        entropy = masked_mean(entropy_from_logits(logits[:, :-1]), mask)
        for name, value in zip(
            logged, (policy_loss, value_loss, clip_fraction, entropy), strict=True
        ):
            logged[name].append(float(value.detach()))
    assert_same_weights(policy, old_policy, atol=1e-5)
    (record,) = trainer.history  # one log line per rollout
    assert record["rollout"] == 1 and record["kl"] == 0.0 and record["kl_k3"] == 0.0
    for name in ("reward", "kl_coef", "response_length"):
        assert record[name] == stats[name]
    for name, values in logged.items():
        assert record[name] == pytest.approx(sum(values) / 2, abs=1e-5), name


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_ppo_trains_with_every_kl_estimator(estimator):
    lm = tiny_lm()
    config = PPOConfig(
        batch_size=4, minibatch_size=4, max_new_tokens=4, ppo_epochs=1, lr=1e-2,
        kl_estimator=estimator, target_kl=0.01, kl_horizon=10,
    )  # fmt: skip
    task = PPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config)
    trainer = Trainer(
        PolicyWithValue(lm), config.train_config(rollouts=3, progress_bar=False), task=task
    )
    trainer.fit()
    first, last = trainer.history[0], trainer.history[-1]
    assert first["kl"] == 0.0 and last["kl"] == last[f"kl_{estimator}"] != 0.0
    assert last["kl_coef"] < first["kl_coef"]  # KL below target: β shrinks


def test_kl_estimators_by_hand():
    # π_θ(y) = 1/2, π_ref(y) = 1/4: ℓ = log(π_ref/π_θ) = −ln 2.
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    ln2 = math.log(2)
    assert kl_estimate(logp, ref, "k1").item() == pytest.approx(ln2)  # −ℓ
    assert kl_estimate(logp, ref, "k2").item() == pytest.approx(ln2**2 / 2)  # ℓ²/2
    assert kl_estimate(logp, ref, "k3").item() == pytest.approx(0.5 - 1 + ln2)  # e^ℓ − 1 − ℓ
    # π_θ(y) = 1/4, π_ref(y) = 3/4: ℓ = ln 3.
    logp, ref = torch.log(torch.tensor([0.25])), torch.log(torch.tensor([0.75]))
    ln3 = math.log(3)
    assert kl_estimate(logp, ref, "k1").item() == pytest.approx(-ln3)
    assert kl_estimate(logp, ref, "k2").item() == pytest.approx(ln3**2 / 2)
    assert kl_estimate(logp, ref, "k3").item() == pytest.approx(3 - 1 - ln3)
    with pytest.raises(ValueError, match="kl_estimator='k4'"):
        PPOConfig(kl_estimator="k4")


def test_ppo_rollout_masks_tokens_after_the_stop_token():
    lm = tiny_lm()
    with torch.no_grad():
        lm.lm_head.weight.zero_()
        lm.lm_head.weight[3] = 1.0  # make token 3 (the stop token) very likely
    config = PPOConfig(batch_size=4, minibatch_size=2, max_new_tokens=5, stop_token=3)
    task = PPOTask(
        lm,
        lambda prompts, responses: torch.tensor([float(len(r)) for r in responses]),
        lambda n, generator: torch.ones(n, 2, dtype=torch.long),
        config,
    )
    data, stats = task.rollout(PolicyWithValue(copy.deepcopy(lm)).eval())
    lengths = data["mask"].sum(-1)
    assert torch.all(lengths >= 1) and torch.all(lengths <= 5)
    assert stats["reward"] == pytest.approx(lengths.mean().item())  # the reward saw the mask
    assert stats["response_length"] == pytest.approx(lengths.mean().item())


# ---- exact resume --------------------------------------------------------------------------------


def resume_matches(make, config, tmp_path, stop_at: int):
    """Train straight through; train to ``stop_at``, checkpoint, resume in fresh objects;
    both must end bit for bit the same."""
    torch.manual_seed(0)  # dropout draws from the global generator
    model, trainer = make(config)
    trainer.fit()
    torch.manual_seed(0)
    _, first = make(config.replace(out_dir=str(tmp_path)))
    first.fit(steps=stop_at)
    torch.manual_seed(123)  # disturb the global RNG: the checkpoint must restore it
    resumed_model, second = make(config.replace(out_dir=str(tmp_path)), seed=7)
    second.load_checkpoint()
    second.fit()
    assert second.step == trainer.step == config.max_steps
    assert_same_weights(resumed_model, model)
    assert [r["loss"] for r in second.history] == [r["loss"] for r in trainer.history[stop_at:]]
    return trainer, second


def test_dpo_resumes_exactly(tmp_path):
    batches = preference_batches(TOKENIZER, PAIRS)
    start = tiny_lm(TOKENIZER.vocab_size, dropout=0.1)  # dropout draws from the RNG

    def make(config, seed=0):
        policy = copy.deepcopy(start) if seed == 0 else tiny_lm(TOKENIZER.vocab_size, seed, 0.1)
        task = DPOTask(copy.deepcopy(start), beta=0.5)
        return policy, Trainer(policy, config, TensorRows(batches), task=task)

    config = adam(max_steps=8, batch_size=3, shuffle=True)  # epochs of 2 steps roll over
    resume_matches(make, config, tmp_path, stop_at=3)
    saved = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert saved["extra"]["task"] == "DPOTask" and "reference" in saved["extra"]["frozen_models"]
    assert not any(key.startswith("reference") for key in saved["model"])  # an input, not state
    other = tiny_lm(TOKENIZER.vocab_size, seed=9)
    trainer = Trainer(copy.deepcopy(start), config, TensorRows(batches), task=DPOTask(other))
    with pytest.raises(ValueError, match="frozen reference model differs"):
        trainer.load_checkpoint(tmp_path / "checkpoint.safetensors")


def test_reward_model_resumes_exactly(tmp_path):
    batch = pair_tensors(TOKENIZER, PAIRS)
    start = RewardModel(tiny_lm(TOKENIZER.vocab_size, dropout=0.1), pooling="last")

    def make(config, seed=0):
        model = copy.deepcopy(start)
        if seed:
            torch.manual_seed(seed)
            model.head.reset_parameters()
        return model, Trainer(model, config, TensorRows(batch), task=RewardModelTask())

    resume_matches(make, adam(max_steps=7, batch_size=4, shuffle=True), tmp_path, stop_at=4)


def test_ppo_resumes_exactly_mid_rollout(tmp_path):
    lm = tiny_lm()
    # β adapts (a task state) and each rollout gives 2 epochs x 2 minibatches = 4 steps.
    config = PPOConfig(
        batch_size=8, minibatch_size=4, max_new_tokens=4, ppo_epochs=2, lr=3e-3, target_kl=0.05,
        kl_horizon=20,
    )  # fmt: skip

    def make(train_config, seed=0):
        policy = PolicyWithValue(copy.deepcopy(lm) if seed == 0 else tiny_lm(seed=seed))
        task = PPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config)
        return policy, Trainer(policy, train_config, task=task)

    train_config = config.train_config(rollouts=3, progress_bar=False, log_every=1)
    straight, resumed = resume_matches(make, train_config, tmp_path, stop_at=6)
    assert [r["kl_coef"] for r in resumed.history] == [r["kl_coef"] for r in straight.history[6:]]
    assert len({r["kl_coef"] for r in straight.history}) == 3  # one β per rollout


# ---- accumulation is exact for non-LM tasks ------------------------------------------------------


def test_accumulating_reward_model_micro_batches_equals_one_big_batch():
    batch = pair_tensors(TOKENIZER, PAIRS)
    start = RewardModel(tiny_lm(TOKENIZER.vocab_size), pooling="mean")
    # A shift of every reward leaves the loss unchanged: the head's bias gets a zero gradient
    # up to rounding, which Adam's g/√v would blow up to full steps of random sign.
    start.head.bias.requires_grad_(False)
    models = []
    for batch_size, accumulate in ((8, 1), (4, 2), (2, 4)):
        model = copy.deepcopy(start)
        config = adam(max_steps=3, batch_size=batch_size, grad_accum_steps=accumulate)
        Trainer(model, config, TensorRows(batch), task=RewardModelTask()).fit()
        models.append(model)
    for model in models[1:]:
        assert_same_weights(model, models[0], atol=2e-6)


def test_accumulating_ppo_micro_batches_with_uneven_token_counts_is_exact():
    lm = tiny_lm()
    with torch.no_grad():
        lm.lm_head.weight[3] += 1.5  # stop early, at different lengths: token counts differ

    def train(batch_size, accumulate):
        config = PPOConfig(
            batch_size=8, minibatch_size=8, max_new_tokens=6, ppo_epochs=2, lr=3e-3, stop_token=3
        )
        task = PPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config)
        policy = PolicyWithValue(copy.deepcopy(lm))
        train_config = config.train_config(
            rollouts=2, batch_size=batch_size, grad_accum_steps=accumulate, progress_bar=False
        )
        Trainer(policy, train_config, task=task).fit()
        return policy, task

    whole, task = train(8, 1)
    data, _ = task.rollout(PolicyWithValue(copy.deepcopy(lm)).eval())
    assert len(set(data["mask"].sum(-1).tolist())) > 1  # the rows do differ in length
    for batch_size, accumulate in ((4, 2), (2, 4)):
        assert_same_weights(train(batch_size, accumulate)[0], whole, atol=2e-6)


# ---- the rollout schedule, frozen models and the contract ----------------------------------------


def test_rollout_batches_run_epochs_over_each_rollout_then_collect_again():
    collected = []

    def collect():
        collected.append(len(collected))
        return {"x": torch.arange(6) + 100 * len(collected)}, {"n": float(len(collected))}

    stream = RolloutBatches(collect, batch_size=2, epochs=2, seed=0)
    seen = [next(stream)["x"] for _ in range(6)]
    assert len(collected) == 1 and stream.metrics == {"n": 1.0}
    first_epoch, second_epoch = torch.cat(seen[:3]), torch.cat(seen[3:])
    assert sorted(first_epoch.tolist()) == sorted(second_epoch.tolist()) == list(range(100, 106))
    assert not torch.equal(first_epoch, second_epoch)  # reshuffled each epoch
    assert next(stream)["x"].min() >= 200 and len(collected) == 2
    with pytest.raises(ValueError, match="grad_accum_steps=4 must divide"):
        next(RolloutBatches(collect, batch_size=2, epochs=1, group=4))


def test_frozen_models_are_put_in_eval_mode_and_must_not_be_trained():
    lm = tiny_lm()
    batches = preference_batches(TOKENIZER, PAIRS)
    reference = tiny_lm(TOKENIZER.vocab_size).train()
    Trainer(tiny_lm(TOKENIZER.vocab_size), adam(), TensorRows(batches), task=DPOTask(reference))
    assert not reference.training
    with pytest.raises(ValueError, match="shares parameters"):
        Trainer(lm, adam(), TensorRows(batches), task=DPOTask(lm))


class Halves(Task):
    """A toy task: the mean square of the model's output, per row."""

    def count(self, batch):
        return batch["x"].shape[0]

    def loss(self, model, batch):
        return model(batch["x"]).pow(2).sum(), {}


def test_task_contract_errors_say_what_to_do():
    data = TensorRows({"x": torch.randn(8, 3)})
    model = torch.nn.Linear(3, 1)
    with pytest.raises(TypeError, match="subclass Task"):
        Trainer(model, adam(), data, task=object())
    with pytest.raises(ValueError, match="objective and label_smoothing"):
        Trainer(model, adam(objective="masked"), data, task=Halves())
    with pytest.raises(ValueError, match="curriculum"):
        Trainer(model, adam(seq_len_warmup_steps=2), data, task=Halves())
    ppo = PPOTask(tiny_lm(), prefer_seven, prompt_fn)
    with pytest.raises(ValueError, match="pass no train_data"):
        Trainer(PolicyWithValue(tiny_lm()), adam(), data, task=ppo)
    with pytest.raises(ValueError, match="Pass train_data"):
        Trainer(model, adam(), task=Halves())
    with pytest.raises(NotImplementedError, match="count"):
        Task().count({})


def test_a_custom_task_trains_and_validates_with_its_own_metrics():
    class Regression(Task):
        name = "regression"

        def count(self, batch):
            return batch["x"].shape[0]

        def loss(self, model, batch):
            error = model(batch["x"]).squeeze(-1) - batch["y"]
            return error.pow(2).sum(), {"abs_error": error.abs().detach().sum()}

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=generator)
    data = TensorRows({"x": x, "y": x @ torch.tensor([1.0, -2.0, 0.5])})
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    config = adam(max_steps=60, lr=0.05, eval_every=60, shuffle=True)
    result = Trainer(model, config, data, data, task=Regression()).fit()
    assert result.val_loss < 0.01 * result.history[0]["loss"]
    assert "val_abs_error" in result.history[-1] and "val_perplexity" not in result.history[-1]


def test_max_seconds_stops_after_the_step_that_used_up_the_budget():
    data = TensorRows({"x": torch.randn(8, 3)})
    trainer = Trainer(
        torch.nn.Linear(3, 1), adam(max_steps=50, max_seconds=1e-9), data, task=Halves()
    )
    result = trainer.fit()
    assert result.step == 1 and not result.interrupted


def test_the_default_task_is_the_language_model_with_moe_balancing_in_training_only():
    ids = torch.randint(0, VOCAB, (8, 10), generator=torch.Generator().manual_seed(0))
    data = TensorRows({"input_ids": ids, "labels": ids})
    model = tiny_lm()
    trainer = Trainer(model, adam(max_steps=1), data, data)
    assert isinstance(trainer.task, LanguageModelTask) and trainer.task.nats_per_token
    with torch.no_grad():
        expected = causal_lm_loss(model(ids).logits, ids).item()
    assert trainer.evaluate()["val_loss"] == pytest.approx(expected, rel=1e-6)
    assert trainer.train_step()["loss"] == pytest.approx(expected, rel=1e-6)
    # A mixture of experts: the balancing loss joins the training loss, not the evaluation.
    torch.manual_seed(0)
    moe = DecoderLM(tiny_lm().config.replace(n_expert=4, n_expert_active=2))
    trainer = Trainer(moe, adam(max_steps=1, aux_loss_weight=0.5), data, data)
    with torch.no_grad():
        output = moe(ids)
    cross_entropy, aux = causal_lm_loss(output.logits, ids).item(), output.aux_loss.item()
    assert trainer.evaluate()["val_loss"] == pytest.approx(cross_entropy, rel=1e-6)
    record = trainer.train_step()
    assert record["aux_loss"] == pytest.approx(aux, rel=1e-5)
    assert record["loss"] == pytest.approx(cross_entropy + 0.5 * aux, rel=1e-5)


def test_generate_is_what_the_rollout_samples_with():
    # PPOTask samples with llmcourse.infer.generate and the task's own generator (seeded).
    lm = tiny_lm()
    config = PPOConfig(batch_size=4, minibatch_size=4, max_new_tokens=3)
    task = PPOTask(copy.deepcopy(lm), prefer_seven, prompt_fn, config, seed=3)
    data, _ = task.rollout(PolicyWithValue(copy.deepcopy(lm)).eval())
    prompts = prompt_fn(4, torch.Generator().manual_seed(3))
    expected = generate(lm.eval(), prompts, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(data["tokens"], expected)
