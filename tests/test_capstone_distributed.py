"""``torchrun -m llmcourse.cli capstone``: 2 gloo processes train what 1 process trains (DDP
through the ``Trainer``, the same global batches), rank 0 alone writes results and the report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmcourse.capstone.cli import main
from llmcourse.train.checkpoints import model_from_checkpoint

SMALLER = [
    "--size", "tiny", "--quiet", "--set", "pretrain_steps=20", "--set", "sft_steps=10",
    "--set", "rollouts=2", "--set", "eval_multiple_choice=4", "--set", "eval_arithmetic=8",
]  # fmt: skip


def _weights(out: Path, stage: str) -> dict[str, torch.Tensor]:
    (path,) = (out / "stages").glob(f"{stage}-*/model.safetensors")
    return model_from_checkpoint(path).state_dict()


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_train_what_one_does(tmp_path):
    runner = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    two, one = tmp_path / "two", tmp_path / "one"
    done = subprocess.run(
        [runner, "--standalone", "--nproc_per_node=2", "-m", "llmcourse.cli", "capstone",
         "--out", str(two), *SMALLER],
        capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("[capstone] report:") == 1  # rank 0 alone reports
    assert (two / "report.md").is_file() and (two / "final" / "model.safetensors").is_file()
    assert main(["--out", str(one), *SMALLER]) == 0
    for stage in ("pretrain", "sft"):
        a, b = _weights(one, stage), _weights(two, stage)
        assert all(torch.allclose(a[k], b[k], atol=1e-3) for k in a), stage
    # GRPO samples one rollout per process: a different run, cached under its own key.
    assert {p.name for p in (one / "stages").glob("grpo-0-*")} != {
        p.name for p in (two / "stages").glob("grpo-0-*")
    }
