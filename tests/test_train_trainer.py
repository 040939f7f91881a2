"""The Trainer: exact resume, accumulation, a hand-written reference loop, evaluation, switches."""

import json
import math
import os
import signal

import numpy as np
import pytest
import torch
import transformers as tf
from torch.optim.lr_scheduler import LambdaLR

from llmcourse.config import ModelConfig
from llmcourse.data.collators import MLMCollator
from llmcourse.data.loaders import ContiguousBlocks, RandomWindows
from llmcourse.data.span_corruption import SpanCorruptionCollator
from llmcourse.models import DecoderLM, EncoderLM, Seq2SeqLM
from llmcourse.train import TrainConfig, Trainer, batch_loss, causal_lm_loss
from llmcourse.train.batches import curriculum_length
from llmcourse.train.objectives import target_count
from llmcourse.train.parallel import parameter_groups
from llmcourse.train.schedule import lr_lambda
from llmcourse.train.stopping import StopRequest
from llmcourse.utils.checkpoint import load_checkpoint, save_checkpoint
from llmcourse.utils.runlog import RunLog
from llmcourse.utils.seed import seed_everything

VOCAB, CONTEXT = 23, 16
TOKENS = np.random.default_rng(0).integers(0, VOCAB, 4000)


def tiny_model(seed: int = 0, **changes) -> DecoderLM:
    seed_everything(seed)
    config = ModelConfig(
        vocab_size=VOCAB, context_length=CONTEXT, d_model=16, n_layer=2, n_head=2, **changes
    )
    return DecoderLM(config)


def settings(**changes) -> TrainConfig:
    base = {
        "max_steps": 12,
        "batch_size": 4,
        "warmup_steps": 3,
        "lr": 3e-3,
        "progress_bar": False,
        "log_every": 1,
    }
    return TrainConfig(**{**base, **changes})


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    # Dropout draws from the RNG and 40 windows / 8 per step roll over epochs: all must resume.
    data = RandomWindows(TOKENS, CONTEXT, num_samples=40, seed=0)
    config = settings(grad_accum_steps=2)
    straight = Trainer(tiny_model(dropout=0.1), config, data)
    straight.fit()

    first = Trainer(tiny_model(dropout=0.1), config.replace(out_dir=str(tmp_path)), data)
    first.fit(steps=6)  # stops at step 6 and checkpoints
    assert first.step == 6
    torch.manual_seed(123)  # disturb the RNG: the checkpoint must restore it
    second = Trainer(tiny_model(seed=1, dropout=0.1), config.replace(out_dir=str(tmp_path)), data)
    second.load_checkpoint()
    second.fit()

    assert second.step == straight.step == 12
    for name, tensor in weights(straight).items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert [r["loss"] for r in second.history] == [r["loss"] for r in straight.history[6:]]


class PaddedExamples(torch.utils.data.Dataset):
    """Examples whose labels hide a different number of positions (like SFT prompts)."""

    def __init__(self, n: int = 16) -> None:
        rng = np.random.default_rng(1)
        self.items = []
        for i in range(n):
            ids = torch.from_numpy(rng.integers(0, VOCAB, CONTEXT))
            labels = ids.clone()
            labels[: 1 + (i * 5) % (CONTEXT - 2)] = -100
            self.items.append({"input_ids": ids, "labels": labels})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


@pytest.mark.parametrize(("batch_size", "accumulate"), [(4, 2), (2, 4)])
def test_gradient_accumulation_equals_one_big_batch(batch_size, accumulate):
    data = PaddedExamples()
    reference = Trainer(tiny_model(), settings(max_steps=4, batch_size=8, shuffle=False), data)
    reference.fit()
    config = settings(max_steps=4, batch_size=batch_size, grad_accum_steps=accumulate)
    accumulated = Trainer(tiny_model(), config.replace(shuffle=False), data)
    accumulated.fit()
    for name, tensor in weights(reference).items():
        torch.testing.assert_close(accumulated.model.state_dict()[name], tensor, atol=2e-6, rtol=0)


def test_averaging_micro_batch_means_would_be_wrong_here():
    # What the test above guards against: with uneven label counts, the mean of the
    # micro-batches' mean losses is not the mean over all tokens.
    model, data = tiny_model(), PaddedExamples()
    batch = {k: torch.stack([data[i][k] for i in range(8)]) for k in ("input_ids", "labels")}
    logits = model(batch["input_ids"]).logits
    whole = causal_lm_loss(logits, batch["labels"])
    halves = (
        causal_lm_loss(logits[:4], batch["labels"][:4])
        + causal_lm_loss(logits[4:], batch["labels"][4:])
    ) / 2
    assert abs(whole.item() - halves.item()) > 1e-3


def test_a_step_is_the_textbook_adamw_step():
    data = RandomWindows(TOKENS, CONTEXT, num_samples=20, seed=0)
    config = settings(max_steps=5, batch_size=4, grad_clip=0.5, shuffle=False)
    trainer = Trainer(tiny_model(), config, data)
    trainer.fit()

    model = tiny_model()
    groups = parameter_groups(model, config.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)
    scheduler = LambdaLR(optimizer, lr_lambda("cosine", 3, 5, config.min_lr_ratio))
    for step in range(5):
        ids = torch.stack([data[i]["input_ids"] for i in range(step * 4, step * 4 + 4)])
        loss = causal_lm_loss(model(ids).logits, ids)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        scheduler.step()
        assert trainer.history[step]["loss"] == pytest.approx(loss.item(), rel=1e-5)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[name], tensor, atol=1e-6, rtol=0)


def test_no_weight_decay_on_norms_biases_and_embeddings():
    model = tiny_model()
    decay, no_decay = parameter_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "blocks.0.attn.q_proj.weight" in decayed and "blocks.1.mlp.down_proj.weight" in decayed
    for name in decayed:
        assert not name.endswith("bias") and "norm" not in name and "embed" not in name
    total = len(decay["params"]) + len(no_decay["params"])
    assert total == len(list(model.parameters()))  # the tied output layer counted once


def test_evaluate_reports_loss_perplexity_and_bits_per_byte():
    val = ContiguousBlocks(TOKENS[: 12 * CONTEXT], CONTEXT)
    train = RandomWindows(TOKENS, CONTEXT, num_samples=20, seed=0)
    trainer = Trainer(tiny_model(), settings(bytes_per_token=2.0), train, val)
    result = trainer.evaluate()
    with torch.no_grad():
        ids = torch.stack([val[i]["input_ids"] for i in range(len(val))])
        expected = causal_lm_loss(trainer.model(ids).logits, ids).item()
    assert result["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert result["val_perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert result["val_bits_per_byte"] == pytest.approx(expected / math.log(2) / 2, rel=1e-5)
    assert trainer.evaluate(max_batches=1)["val_loss"] != pytest.approx(expected, rel=1e-5)


def test_fit_logs_evaluates_and_stops_at_the_target(tmp_path):
    train = RandomWindows(TOKENS, CONTEXT, num_samples=200, seed=0)
    val = ContiguousBlocks(TOKENS[:256], CONTEXT)
    records = []
    config = settings(max_steps=20, eval_every=4, target_val_loss=100.0, out_dir=str(tmp_path))
    trainer = Trainer(tiny_model(), config, train, val, on_log=records.append)
    result = trainer.fit()
    assert result.step == 4 and result.target_reached_s is not None and not result.interrupted
    assert [r["step"] for r in records] == [1, 2, 3, 4] and "val_loss" in records[-1]
    logged = [
        {k: v for k, v in r.items() if k != "time_s"} for r in RunLog.read(tmp_path / "log.jsonl")
    ]
    assert logged == json.loads(json.dumps(records))
    assert load_checkpoint(tmp_path / "checkpoint.safetensors")["extra"]["step"] == 4
    assert all(r["tokens_per_s"] > 0 and r["mfu"] is None for r in records)  # no MFU on a CPU


def test_sequence_length_curriculum_grows_to_the_full_context():
    assert [curriculum_length(s, 4, 8, 64) for s in range(6)] == [8, 16, 32, 48, 64, 64]
    assert curriculum_length(0, 0, 8, 64) == 64
    train = RandomWindows(TOKENS, CONTEXT, num_samples=40, seed=0)
    trainer = Trainer(tiny_model(), settings(max_steps=5, seq_len_warmup_steps=3), train)
    trainer.fit()
    assert [r["seq_len"] for r in trainer.history] == [8, 8, 8, 16, 16]
    assert trainer.tokens_seen == 4 * (8 + 8 + 8 + 16 + 16)


def test_gradient_checkpointing_changes_memory_not_results():
    train = RandomWindows(TOKENS, CONTEXT, num_samples=40, seed=0)
    plain = Trainer(tiny_model(), settings(max_steps=3, shuffle=False), train)
    plain.fit()
    recomputed = Trainer(
        tiny_model(), settings(max_steps=3, shuffle=False, gradient_checkpointing=True), train
    )
    assert recomputed.model.gradient_checkpointing
    recomputed.fit()
    for name, tensor in weights(plain).items():
        torch.testing.assert_close(recomputed.model.state_dict()[name], tensor, atol=1e-6, rtol=0)


def test_trains_a_transformers_model_too():
    torch.manual_seed(0)
    hf = tf.GPT2LMHeadModel(
        tf.GPT2Config(vocab_size=VOCAB, n_positions=CONTEXT, n_embd=16, n_layer=1, n_head=2)
    )
    pattern = np.tile(np.arange(VOCAB), 40)  # perfectly predictable text
    train = RandomWindows(pattern, CONTEXT, num_samples=240, seed=0)
    config = settings(max_steps=30, lr=1e-2, gradient_checkpointing=True)
    trainer = Trainer(hf, config, train)
    trainer.fit()
    assert trainer.history[-1]["loss"] < 0.5 * trainer.history[0]["loss"]


def test_configuration_errors_say_what_to_change(tmp_path):
    with pytest.raises(ValueError, match="parallel"):
        TrainConfig(parallel="deepspeed")
    with pytest.raises(ValueError, match="warmup_steps=50 exceeds"):
        TrainConfig(max_steps=10, warmup_steps=50)
    with pytest.raises(ValueError, match="FSDP already shards"):
        TrainConfig(parallel="fsdp", zero1=True)
    with pytest.raises(ValueError, match="batch_size must be a positive"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="set parallel='fsdp'"):
        TrainConfig(mixed_precision="bf16")
    with pytest.raises(ValueError, match=r"mixed_precision=.fp8.; use one of fp32, bf16, fp16"):
        TrainConfig(parallel="fsdp", mixed_precision="fp8")
    with pytest.raises(ValueError, match="needs mixed_precision"):
        TrainConfig(parallel="fsdp", mixed_precision_reduce="fp32")
    with pytest.raises(ValueError, match="max_seconds"):
        TrainConfig(max_seconds=0)
    train = RandomWindows(TOKENS, CONTEXT, num_samples=8, seed=0)
    with pytest.raises(TypeError, match="TrainConfig"):
        Trainer(tiny_model(), {"max_steps": 3}, train)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Trainer(tiny_model(), settings(precision="fp16"), train)
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(tiny_model(), settings(batch_size=16), train)
    trainer = Trainer(tiny_model(), settings(), train)
    with pytest.raises(ValueError, match="No validation data"):
        trainer.evaluate()
    with pytest.raises(ValueError, match="out_dir"):
        trainer.save_checkpoint()
    path = trainer.save_checkpoint(tmp_path / "c.safetensors")
    state = load_checkpoint(path)
    state["extra"]["world_size"] = 2
    save_checkpoint(path, state)
    with pytest.raises(ValueError, match="same number of processes"):
        trainer.load_checkpoint(path)


class Sequences(torch.utils.data.Dataset):
    """Runs of one repeated token: every token can be read off its neighbours."""

    def __init__(self, n: int, length: int) -> None:
        starts = np.random.default_rng(2).integers(0, VOCAB - 5, n)
        self.items = [[5 + s % (VOCAB - 5)] * length for s in starts]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> list[int]:
        return self.items[index]


def test_masked_lm_objective_trains_an_encoder():
    seed_everything(0)
    config = ModelConfig(
        architecture="encoder", vocab_size=VOCAB, context_length=CONTEXT, d_model=32,
        n_layer=2, n_head=2,
    )  # fmt: skip
    collator = MLMCollator(VOCAB, mask_id=1, pad_id=0, probability=0.3)
    config_train = settings(max_steps=60, batch_size=8, objective="masked", schedule="constant")
    trainer = Trainer(EncoderLM(config), config_train, Sequences(64, 12), collate_fn=collator)
    trainer.fit()
    losses = [r["loss"] for r in trainer.history]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_seq2seq_objective_trains_span_corruption():
    seed_everything(0)
    config = ModelConfig(
        architecture="encoder-decoder", vocab_size=VOCAB, context_length=CONTEXT, d_model=32,
        n_layer=2, n_head=2, position="relative", norm="rmsnorm", bias=False, mlp="relu",
    )  # fmt: skip
    collator = SpanCorruptionCollator(sentinel_ids=[2, 3, 4], eos_id=1, pad_id=0)
    config_train = settings(max_steps=60, batch_size=8, objective="seq2seq", schedule="constant")
    trainer = Trainer(Seq2SeqLM(config), config_train, Sequences(64, 12), collate_fn=collator)
    trainer.fit()
    losses = [r["loss"] for r in trainer.history]
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])
    batch = collator([Sequences(2, 12)[i] for i in range(2)])
    loss_sum, _ = batch_loss(trainer.model, batch, "seq2seq")
    count = target_count(batch, "seq2seq")
    assert count == (batch["labels"] != -100).sum() and loss_sum.item() > 0


def test_ctrl_c_finishes_the_step_checkpoints_and_returns(tmp_path):
    train = RandomWindows(TOKENS, CONTEXT, num_samples=80, seed=0)

    def interrupt_at_step_3(record):
        if record["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what "interrupt kernel" sends

    handler = signal.getsignal(signal.SIGINT)
    trainer = Trainer(
        tiny_model(), settings(out_dir=str(tmp_path)), train, on_log=interrupt_at_step_3
    )
    result = trainer.fit()
    assert result.interrupted and result.step == 3
    assert load_checkpoint(tmp_path / "checkpoint.safetensors")["extra"]["step"] == 3
    assert signal.getsignal(signal.SIGINT) is handler  # restored after fit


def test_a_second_ctrl_c_stops_at_once():
    stop = StopRequest()
    with pytest.raises(KeyboardInterrupt), stop.signals_handled():
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.reason == "SIGINT" and stop.interrupted
        os.kill(os.getpid(), signal.SIGINT)
