"""Checkpoints that refuse corruption and runs that refuse to go on diverged (issue 21, item 3).

Loading checks checksums, finiteness and shapes (``check=False`` overrides the first two);
a non-finite loss stops training with ``NonFiniteLossError`` (and the CLI with a non-zero exit)
after ``max_nonfinite_steps``; ``--resume`` refuses a folder without a checkpoint and a
checkpoint of another config; a resumed run logs each step once; a file's suffix never decides
its format.
"""

import json

import numpy as np
import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.data.loaders import RandomWindows
from llmcourse.models import DecoderLM
from llmcourse.train import NonFiniteLossError, TrainConfig, Trainer, model_from_checkpoint
from llmcourse.train.cli import main as train_main
from llmcourse.utils.checkpoint import load_checkpoint, save_checkpoint
from llmcourse.utils.runlog import RunLog
from llmcourse.utils.seed import seed_everything

VOCAB, CONTEXT = 19, 8
DATA = RandomWindows(np.random.default_rng(0).integers(0, VOCAB, 600), CONTEXT, 32, seed=0)
CLI_FLAGS = ["--n-layer", "1", "--d-model", "16", "--n-head", "2", "--context-length", "16"]
CLI_FLAGS += ["--batch-size", "2", "--eval-every", "0", "--log-every", "1", "--no-progress-bar"]


def tiny_model(seed: int = 0, **changes) -> DecoderLM:
    seed_everything(seed)
    sizes = {"vocab_size": VOCAB, "context_length": CONTEXT, "d_model": 8, "n_layer": 1}
    return DecoderLM(ModelConfig(**{**sizes, "n_head": 2, **changes}))


def settings(**changes) -> TrainConfig:
    base = {"max_steps": 6, "batch_size": 4, "warmup_steps": 0, "progress_bar": False}
    return TrainConfig(**{**base, "log_every": 1, **changes})


# ---- the file: suffix, checksums, finiteness ---------------------------------------------------


@pytest.mark.parametrize("name", ["x.pt", "x.bin", "x.pth", "x.ckpt", "x"])
def test_any_suffix_round_trips(tmp_path, name):
    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    loaded = load_checkpoint(save_checkpoint(tmp_path / name, state))
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 3
    torch.save(state, tmp_path / f"legacy-{name}")  # and torch.save files load whatever their name
    assert torch.equal(load_checkpoint(tmp_path / f"legacy-{name}")["w"], state["w"])


def test_a_header_length_that_looks_like_a_pickle_is_still_safetensors(tmp_path):
    # A safetensors file starts with its header's length; a low byte of 0x80 is also how a raw
    # pickle starts. Pad the header until that happens: the file must still load as written.
    for padding in range(400):
        path = save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(2), "note": "x" * padding})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length ending in 0x80")
    assert load_checkpoint(path)["note"] == "x" * padding


def test_a_flipped_byte_is_caught_by_the_checksum(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"w": torch.ones(64)})
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # inside the last float: 1.0 becomes another finite number
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"tensor 'w' does not match the checksum"):
        load_checkpoint(path)
    assert not torch.equal(load_checkpoint(path, check=False)["w"], torch.ones(64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_with_an_override(tmp_path, bad):
    weights = torch.ones(3, 4)
    weights[1, 2] = bad
    path = save_checkpoint(tmp_path / "c.safetensors", {"model": {"w": weights}})
    with pytest.raises(ValueError, match=r"'model/w' holds 1 NaN/infinite value\(s\) of 12"):
        load_checkpoint(path)
    assert load_checkpoint(path, check=False)["model"]["w"][1, 2].item() != 1.0
    torch.save({"w": weights}, tmp_path / "legacy.pt")
    with pytest.raises(ValueError, match="'w' holds 1 NaN"):
        load_checkpoint(tmp_path / "legacy.pt")
    with pytest.raises(TypeError, match="check must be True or False"):
        load_checkpoint(path, check="no")


def test_model_from_checkpoint_refuses_nan_weights(tmp_path):
    trainer = Trainer(tiny_model(), settings(max_steps=1, out_dir=str(tmp_path)), DATA)
    trainer.fit()
    path = tmp_path / "checkpoint.safetensors"
    state = load_checkpoint(path)
    state["model"]["embed_tokens.weight"][0, 0] = float("nan")  # lm_head is tied to it
    save_checkpoint(path, state)
    with pytest.raises(ValueError, match=r"'model/embed_tokens\.weight' holds 1 NaN"):
        model_from_checkpoint(path)
    with pytest.raises(ValueError, match=r"'model/embed_tokens\.weight' holds 1 NaN"):
        Trainer(tiny_model(), settings(out_dir=str(tmp_path)), DATA).load_checkpoint()
    assert model_from_checkpoint(path, check=False).lm_head.weight.isnan().any()


# ---- resuming: same run only, weights of the right shapes, each step logged once -------------


def test_resume_refuses_another_model_config_or_recipe(tmp_path):
    Trainer(tiny_model(), settings(max_steps=2, out_dir=str(tmp_path)), DATA).fit()
    config = settings(max_steps=2, out_dir=str(tmp_path))
    wider = Trainer(tiny_model(d_model=16), config, DATA)
    with pytest.raises(ValueError, match=r"another model config \(d_model: 8 → 16"):
        wider.load_checkpoint()
    other_lr = Trainer(tiny_model(), config.replace(lr=0.5), DATA)
    with pytest.raises(ValueError, match=r"another TrainConfig \(lr: 0.001 → 0.5\)"):
        other_lr.load_checkpoint()
    # Watching more often, or longer patience, is the same run.
    same = config.replace(log_every=2, max_nonfinite_steps=3)
    assert Trainer(tiny_model(), same, DATA).load_checkpoint()["step"] == 2


def test_resume_refuses_weights_of_other_shapes_before_loading_anything(tmp_path):
    trainer = Trainer(tiny_model(), settings(max_steps=2), DATA)
    path = trainer.save_checkpoint(tmp_path / "c.safetensors")
    state = load_checkpoint(path)
    state["model"]["lm_head.weight"] = torch.zeros(VOCAB + 1, 8)
    state["extra"]["model_config"] = None  # a config that no longer says so
    save_checkpoint(path, state)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(ValueError, match=r"lm_head.weight \(20, 8\) \(model: \(19, 8\)\)"):
        trainer.load_checkpoint(path)
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    with pytest.raises(ValueError, match="not a Trainer checkpoint"):
        trainer.load_checkpoint(save_checkpoint(tmp_path / "w.safetensors", {"w": torch.ones(1)}))


def test_a_resumed_run_logs_each_step_once(tmp_path):
    config = settings(max_steps=8, checkpoint_every=3, out_dir=str(tmp_path))
    first = Trainer(tiny_model(), config, DATA)
    first.fit(steps=5)  # logs steps 1-5; the last checkpoint is step 5 (the end of fit)
    log = tmp_path / "log.jsonl"
    # A run killed at step 7 after its step-6 checkpoint... simulated: roll the checkpoint back
    # to step 3's and append what a dying run would have logged, a torn line included.
    state = load_checkpoint(tmp_path / "checkpoint.safetensors")
    with log.open("a") as file:
        file.write(json.dumps({"step": 6, "loss": 1.0}) + "\n" + '{"step": 7, "lo')
    second = Trainer(tiny_model(seed=3), config, DATA)
    second.load_checkpoint()
    assert second.step == state["extra"]["step"] == 5
    second.fit()
    steps = [record["step"] for record in RunLog.read(log)]
    assert steps == list(range(1, 9))
    assert RunLog.drop_after(log, 4) == 4 and [r["step"] for r in RunLog.read(log)] == [1, 2, 3, 4]
    assert RunLog.drop_after(tmp_path / "missing.jsonl", 0) == 0


def test_cli_resume_needs_a_checkpoint_and_the_same_config(tmp_path, capsys):
    empty = tmp_path / "empty"
    with pytest.raises(SystemExit, match="--resume: there is no checkpoint in"):
        train_main([*CLI_FLAGS, "--max-steps", "2", "--out-dir", str(empty), "--resume"])
    run = tmp_path / "run"
    train_main([*CLI_FLAGS, "--max-steps", "4", "--steps", "2", "--out-dir", str(run)])
    with pytest.raises(SystemExit, match=r"error: .*another TrainConfig \(lr: "):
        train_main(
            [*CLI_FLAGS, "--max-steps", "4", "--lr", "0.1", "--out-dir", str(run), "--resume"]
        )
    result = train_main([*CLI_FLAGS, "--max-steps", "4", "--out-dir", str(run), "--resume"])
    assert result["step"] == 4
    assert [r["step"] for r in RunLog.read(run / "log.jsonl")] == [1, 2, 3, 4]


# ---- a non-finite loss stops the run -----------------------------------------------------------


class PoisonAt:
    """A forward hook that turns the logits into NaN on the given (1-based) training steps."""

    def __init__(self, trainer: Trainer, steps: set[int]) -> None:
        self.trainer, self.steps = trainer, steps
        trainer.model.lm_head.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        if self.trainer.step + 1 in self.steps and module.training:
            return output * float("nan")
        return output


def test_a_nan_loss_stops_training_with_the_weights_before_it(tmp_path):
    trainer = Trainer(tiny_model(), settings(out_dir=str(tmp_path), checkpoint_every=2), DATA)
    PoisonAt(trainer, {4})
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 4 \(1 step\(s\) in a row"):
        trainer.fit()
    assert trainer.step == 3
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    # The last checkpoint (step 2) is intact and loads.
    assert load_checkpoint(tmp_path / "checkpoint.safetensors")["extra"]["step"] == 2


def test_patience_skips_the_poisoned_updates_and_goes_on():
    reference = Trainer(tiny_model(), settings(max_steps=3), DATA)
    reference.fit()
    patient = Trainer(tiny_model(), settings(max_nonfinite_steps=2), DATA)
    PoisonAt(patient, {2, 3, 5, 6})
    patient.fit(steps=3)
    # Steps 2 and 3 took no update: the weights are step 1's of an unpoisoned run.
    one_step = Trainer(tiny_model(), settings(max_steps=1), DATA)
    one_step.fit()
    for name, tensor in one_step.model.state_dict().items():
        assert torch.equal(tensor, patient.model.state_dict()[name]), name
    patient.fit()  # steps 5 and 6: two in a row again, still allowed (step 4 reset the count)
    assert patient.step == 6 and all(torch.isfinite(p).all() for p in patient.model.parameters())
    assert [math_is_nan(r["loss"]) for r in patient.history] == [0, 1, 1, 0, 1, 1]
    strict = Trainer(tiny_model(), settings(max_nonfinite_steps=2), DATA)
    PoisonAt(strict, {2, 3, 4})
    with pytest.raises(NonFiniteLossError, match=r"3 step\(s\) in a row; TrainConfig\.max_nonfin"):
        strict.fit()


def math_is_nan(value: float) -> int:
    return int(value != value)


def test_a_gradient_scaler_skipping_overflowed_steps_is_not_a_failure():
    """fp16 needs CUDA; the same GradScaler logic runs on the CPU: infinite *gradients* with a
    finite loss make the scaler skip the update, and the run goes on."""
    trainer = Trainer(tiny_model(), settings(max_steps=4), DATA)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    weight = trainer.model.lm_head.weight
    weight.register_hook(lambda grad: grad * float("inf") if trainer.step == 1 else grad)
    trainer.fit()
    assert trainer.step == 4 and trainer.nonfinite_steps == 0
    assert trainer.scaler.get_scale() == 2.0**9  # halved once: one skipped step
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with a GradScaler needs CUDA")
def test_fp16_overflowed_steps_are_skipped_not_failures():
    trainer = Trainer(tiny_model(), settings(max_steps=4, precision="fp16"), DATA)
    assert trainer.scaler is not None and trainer.ctx.device.type == "cuda"
    weight = trainer.model.lm_head.weight
    weight.register_hook(lambda grad: grad * float("inf") if trainer.step == 1 else grad)
    trainer.fit()
    assert trainer.step == 4 and trainer.nonfinite_steps == 0
    assert trainer.scaler.get_scale() == 2.0**15  # 2^16 halved once: one skipped step
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_cli_exits_non_zero_on_divergence(tmp_path):
    with pytest.raises(SystemExit) as stop:
        flags = ["--max-steps", "30", "--lr", "1e30", "--warmup-steps", "0"]
        train_main([*CLI_FLAGS, *flags, "--out-dir", str(tmp_path)])
    assert "error: The training loss is nan" in str(stop.value.code)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "-1"], "TrainConfig.lr must be a finite number > 0, got -1.0"),
        (["--n-layer", "0"], "ModelConfig.n_layer must be a positive integer, got 0"),
        (["grpo", "--kl-coef", "-1"], "RLVRConfig.kl_coef must be a finite number >= 0"),
        (["ladder", "--steps", "0"], "LadderConfig.steps must be a positive integer, got 0"),
    ],
)
def test_train_cli_flags_out_of_range_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        train_main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_load_lora_refuses_other_ranks_and_nan_adapters(tmp_path):
    from llmcourse.train import apply_lora, load_lora, save_lora

    model = apply_lora(tiny_model(), ["q_proj"], r=2)
    path = save_lora(model, tmp_path / "adapters.safetensors")
    with pytest.raises(
        ValueError, match=r"lora_A is \(2, 8\) but this model's adapter is \(4, 8\)"
    ):
        load_lora(apply_lora(tiny_model(), ["q_proj"], r=4), path)
    with torch.no_grad():
        model.blocks[0].attn.q_proj.lora_B.fill_(float("nan"))
    save_lora(model, path)
    with pytest.raises(ValueError, match="lora_B holds NaN or infinite values"):
        load_lora(tiny_model(), path)
    assert load_lora(tiny_model(), path, check=False) is not None
