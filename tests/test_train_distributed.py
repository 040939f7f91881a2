"""The Trainer under torchrun: 2 gloo processes (DDP, FSDP2, ZeRO-1; straight or stopped and
resumed) train what 1 process does; tensor parallelism computes what the unsplit model does;
signals and kills leave good checkpoints.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from llmcourse.models import DecoderLM
from llmcourse.train import model_from_checkpoint
from llmcourse.train.cli import main as train_main
from llmcourse.utils.checkpoint import load_checkpoint

CHECKPOINT = "checkpoint.safetensors"
TINY = [
    "--n-layer", "2", "--d-model", "32", "--n-head", "4", "--context-length", "32",
    "--max-steps", "8", "--warmup-steps", "2", "--eval-every", "4", "--eval-batches", "2",
    "--no-progress-bar",
]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(nproc: int, *args: str, module: str = "llmcourse.train") -> dict:
    runner = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    command = [runner, "--standalone", f"--nproc_per_node={nproc}", "-m", module, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The reference: one process, global batch 8."""
    out = tmp_path_factory.mktemp("single")
    result = train_main([*TINY, "--batch-size", "8", "--out-dir", str(out)])
    return result, out / CHECKPOINT


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "resume"),
    [
        (["--parallel", "ddp"], False),
        (["--parallel", "fsdp"], True),  # 4 steps, stop, resume from the checkpoint, 4 steps
        (["--parallel", "ddp", "--zero1"], True),
    ],
    ids=["ddp", "fsdp-resumed", "zero1-resumed"],
)
def test_two_processes_train_the_same_model_as_one(single, flags, resume, tmp_path):
    reference, reference_checkpoint = single
    run = [*TINY, "--batch-size", "4", "--out-dir", str(tmp_path), *flags]
    if resume:
        halfway = torchrun(2, *run, "--steps", "4")
        assert halfway["step"] == 4 and not halfway["interrupted"]
        run.append("--resume")
    result = torchrun(2, *run)
    assert (result["world_size"], result["backend"], result["global_batch"]) == (2, "gloo", 8)
    assert result["parallel"] == flags[1] and result["zero1"] == ("--zero1" in flags)
    assert result["train_loss"] == pytest.approx(reference["train_loss"], abs=1e-4)
    assert result["val_loss"] == pytest.approx(reference["val_loss"], abs=1e-4)
    expected = load_checkpoint(reference_checkpoint)
    saved = load_checkpoint(tmp_path / CHECKPOINT)
    assert saved["extra"]["step"] == 8 and saved["extra"]["world_size"] == 2
    for name, tensor in expected["model"].items():
        torch.testing.assert_close(saved["model"][name], tensor, atol=1e-5, rtol=0)
    # The (gathered) checkpoint loads into an ordinary single-process model.
    model = model_from_checkpoint(tmp_path / CHECKPOINT)
    assert isinstance(model, DecoderLM) and not model.training
    ids = torch.randint(0, model.config.vocab_size, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(
            model(ids).logits,
            model_from_checkpoint(reference_checkpoint)(ids).logits,
            atol=1e-4,
            rtol=0,
        )


@pytest.mark.distributed
@pytest.mark.slow
def test_tensor_parallel_layers_equal_the_unsplit_model():
    result = torchrun(2, module="llmcourse.train.tensor_parallel")
    for architecture in ("gpt2", "llama"):
        assert result[architecture]["logits_max_abs_diff"] < 1e-5
        assert result[architecture]["grad_max_abs_diff"] < 1e-5


def _train_in_background(out: Path, *flags: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "llmcourse.train", *flags, "--out-dir", str(out)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    flags = [*TINY, "--max-steps", "100000", "--warmup-steps", "10", "--eval-every", "0"]
    process = _train_in_background(tmp_path, *flags, "--log-every", "1")
    log = tmp_path / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 3):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.split("RESULT ")[1])
    assert result["interrupted"] and 3 <= result["step"] < 100000
    saved = load_checkpoint(tmp_path / CHECKPOINT)
    assert saved["extra"]["step"] == result["step"]
    assert saved["extra"]["data_position"] == result["step"]  # one micro-batch per step


@pytest.mark.slow
def test_killing_training_mid_save_leaves_a_loadable_checkpoint(tmp_path):
    # A model big enough (~40 MB of state) that a save takes a while, saved every step.
    flags = [
        "--n-layer", "4", "--d-model", "256", "--context-length", "32", "--batch-size", "2",
        "--max-steps", "100000", "--warmup-steps", "10", "--eval-every", "0",
        "--checkpoint-every", "1", "--no-progress-bar",
    ]  # fmt: skip
    process = _train_in_background(tmp_path, *flags)
    deadline = time.monotonic() + 120
    caught_mid_save = False
    while time.monotonic() < deadline and process.poll() is None:
        temporary = list(tmp_path.glob(f".{CHECKPOINT}.tmp-*"))
        if temporary and (tmp_path / CHECKPOINT).is_file():
            caught_mid_save = True
            break
        time.sleep(0.001)
    process.kill()  # SIGKILL: no handler runs, the write stops wherever it was
    process.communicate()
    assert caught_mid_save, "the run never got to its second checkpoint"
    model = model_from_checkpoint(tmp_path / CHECKPOINT)
    assert load_checkpoint(tmp_path / CHECKPOINT)["extra"]["step"] >= 1
    assert model.config.d_model == 256


@pytest.mark.distributed
@pytest.mark.slow
def test_fsdp_mixed_precision_casts_weights_and_reductions():
    runner = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    worker = Path(__file__).with_name("fsdp_mixed_precision_worker.py")
    command = [runner, "--standalone", "--nproc_per_node=2", str(worker)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=ENV)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    expected_compute = {"none": "float32", "bf16/fp32": "bfloat16", "bf16/bf16": "bfloat16",
                        "fp16/fp16": "float16"}  # fmt: skip
    for policy, dtype in expected_compute.items():
        assert result[policy]["computed_in"] == [dtype], policy
        # The shards the optimizer steps stay fp32, and so do their gradients.
        assert result[policy]["weights"] == result[policy]["grads"] == ["float32"], policy
    # A bf16 reduction leaves bf16 numbers; an fp32 one sums the two processes' bf16 gradients
    # exactly, which takes more than bf16's 8 significant bits.
    assert result["bf16/bf16"]["grads_are_bf16_numbers"]
    assert not result["bf16/fp32"]["grads_are_bf16_numbers"]


@pytest.mark.distributed
@pytest.mark.slow
def test_fsdp_in_bf16_trains_close_to_fp32(single, tmp_path):
    reference, _ = single
    flags = ["--parallel", "fsdp", "--mixed-precision", "bf16", "--mixed-precision-reduce", "fp32"]
    result = torchrun(2, *TINY, "--batch-size", "4", "--out-dir", str(tmp_path), *flags)
    assert result["train_loss"] == pytest.approx(reference["train_loss"], abs=5e-3)
    assert result["val_loss"] == pytest.approx(reference["val_loss"], abs=5e-3)
    saved = load_checkpoint(tmp_path / CHECKPOINT)
    assert {t.dtype for t in saved["model"].values()} == {torch.float32}  # fp32 master weights
    assert saved["extra"]["train_config"]["mixed_precision"] == "bf16"


def _run_worker(*command: str) -> dict:
    run = subprocess.run(list(command), capture_output=True, text=True, timeout=300, env=ENV)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.distributed
@pytest.mark.slow
def test_non_lm_tasks_train_the_same_on_two_processes():
    # Pairs are the unit here (not tokens), and DPO runs the policy twice per loss under DDP.
    worker = str(Path(__file__).with_name("tasks_ddp_worker.py"))
    runner = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    one = _run_worker(sys.executable, worker)
    two = _run_worker(runner, "--standalone", "--nproc_per_node=2", worker)
    for name in ("reward", "dpo"):
        assert two[name] == pytest.approx(one[name], abs=1e-5), name
    assert one["dpo"][0] == pytest.approx(0.6931471, abs=1e-6)
