"""torchrun with 1 and 2 gloo processes: data parallelism changes who computes, not what."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmcourse.utils.distributed import init_distributed, ring_all_reduce

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "lessons" / "scripts" / "ddp_demo.py"


def torchrun(nproc: int, script: Path, *args: str) -> dict:
    runner = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    command = [
        runner or "torchrun",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(script),
        *args,
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.distributed
@pytest.mark.slow
def test_one_and_two_processes_train_the_same_model():
    one = torchrun(1, DEMO, "--steps", "20")
    two = torchrun(2, DEMO, "--steps", "20")
    assert one["world_size"] == 1 and two["world_size"] == 2 and two["backend"] == "gloo"
    assert two["weight_checksums"][0] == pytest.approx(two["weight_checksums"][1], abs=1e-9)
    assert two["weight_checksums"][0] == pytest.approx(one["weight_checksums"][0], rel=1e-6)
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-5)


@pytest.mark.parametrize("workers", [1, 2, 3, 5, 8])
def test_ring_all_reduce_averages_and_sends_2_n_minus_1_over_n(workers):
    torch.manual_seed(workers)
    tensors = [torch.randn(4, 10) for _ in range(workers)]
    results, sent = ring_all_reduce(tensors)
    mean = torch.stack(tensors).mean(0)
    for result in results:
        torch.testing.assert_close(result, mean)
    assert sent == pytest.approx(2 * (workers - 1) / workers * 40, abs=workers)
    assert all(
        torch.equal(t, u) for t, u in zip(tensors, [t.clone() for t in tensors], strict=True)
    )


def test_ring_all_reduce_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        ring_all_reduce([torch.zeros(3), torch.zeros(4)])
    with pytest.raises(ValueError, match="at least one"):
        ring_all_reduce([])


def test_single_process_context_without_torchrun(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed()
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.is_distributed) == (0, 1, True, False)


def test_world_size_without_torchrun_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="launch with torchrun"):
        init_distributed()
