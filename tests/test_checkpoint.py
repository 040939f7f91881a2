import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from llmcourse.utils import load_checkpoint, rng_state, save_checkpoint


def training_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(11, 4), torch.nn.Linear(4, 11))
    model[1].weight = model[0].weight  # tied, like an LM head
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.tensor([1, 2, 3])).sum().backward()
    optimizer.step()
    return model, optimizer


def test_round_trip_is_exact(tmp_path):
    model, optimizer = training_state()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),  # integer keys, tuples, floats
        "rng": rng_state(),
        "step": 3,
        "loss": float("nan"),
        "note": "tied weights",
    }
    path = save_checkpoint(tmp_path / "ckpt.safetensors", state)
    loaded = load_checkpoint(path)

    for key, value in state["model"].items():
        assert torch.equal(loaded["model"][key], value), key
    assert loaded["model"]["1.weight"] is loaded["model"]["0.weight"], "tying is preserved"
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.95)
    for index, entry in state["optimizer"]["state"].items():
        for name, tensor in entry.items():
            assert torch.equal(loaded["optimizer"]["state"][index][name], tensor)
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    assert loaded["rng"]["python"] == state["rng"]["python"]
    assert loaded["step"] == 3 and math.isnan(loaded["loss"]) and loaded["note"] == "tied weights"

    # ...and the loaded state really drives a model and an optimizer.
    fresh_model, fresh_optimizer = training_state()
    fresh_model.load_state_dict(loaded["model"])
    fresh_optimizer.load_state_dict(loaded["optimizer"])


def test_views_of_one_storage_are_stored_separately(tmp_path):
    base = torch.arange(10.0)
    state = {"a": base[:5], "b": base[5:], "c": base[:5]}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "v.safetensors", state))
    assert loaded["a"].tolist() == [0, 1, 2, 3, 4] and loaded["b"].tolist() == [5, 6, 7, 8, 9]
    assert loaded["c"] is loaded["a"]


CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys, torch
    import llmcourse.utils.checkpoint as ckpt
    path = sys.argv[1]
    ckpt.save_checkpoint(path, {"w": torch.full((1000,), 1.0), "step": 1})
    def crash_half_way(tensors, filename, metadata):
        with open(filename, "wb") as f:
            f.write(b"half a checkpoint")
            f.flush()
        os._exit(9)  # the process dies mid-save: no cleanup, no rename
    ckpt.save_file = crash_half_way
    ckpt.save_checkpoint(path, {"w": torch.full((1000,), 2.0), "step": 2})
    """
)


def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "latest.safetensors"
    result = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)])
    assert result.returncode == 9
    stale = list(tmp_path.glob(".latest.safetensors.tmp-*"))
    assert len(stale) == 1, "the dead writer left its temp file behind"
    loaded = load_checkpoint(path)
    assert loaded["step"] == 1 and torch.equal(loaded["w"], torch.full((1000,), 1.0))

    save_checkpoint(path, {"w": torch.zeros(3), "step": 3})
    assert not list(tmp_path.glob(".latest.safetensors.tmp-*")), "stale temp files are removed"


KILLED_WRITER = textwrap.dedent(
    """
    import sys, torch
    from llmcourse.utils import save_checkpoint
    step = 0
    while True:
        step += 1
        save_checkpoint(sys.argv[1], {"w": torch.full((4_000_000,), float(step)), "step": step})
    """
)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_corrupts(tmp_path):
    path = tmp_path / "latest.safetensors"
    for delay in (0.3, 0.45, 0.6, 0.75):
        child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)])
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        loaded = load_checkpoint(path)
        assert torch.all(loaded["w"] == float(loaded["step"])), "a complete, consistent checkpoint"


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_unsupported_values_are_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match="at 'optim/fn'"):
        save_checkpoint(tmp_path / "x.safetensors", {"optim": {"fn": print}})


def test_legacy_torch_files_load_weights_only(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(load_checkpoint(tmp_path / "ok.pt")["w"], torch.ones(2))

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match=r"[Ww]eights only load failed"):
        load_checkpoint(tmp_path / "evil.pt")


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    from llmcourse.utils import restore_training_state, seed_everything, training_state

    def make():
        model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1)
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
        return model, optimizer, scheduler

    def steps(model, optimizer, scheduler, n):
        for _ in range(n):
            x = torch.randn(4, 8)  # data and dropout masks both draw from the RNG
            loss = model(x).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()

    seed_everything(0)
    straight = make()
    steps(*straight, 10)

    seed_everything(0)
    first = make()
    steps(*first, 5)
    path = save_checkpoint(tmp_path / "mid.safetensors", training_state(*first, step=5))
    torch.manual_seed(999)  # anything in between must not matter
    resumed = make()
    extra = restore_training_state(load_checkpoint(path), *resumed)
    steps(*resumed, 5)

    assert extra == {"step": 5}
    for a, b in zip(straight[0].parameters(), resumed[0].parameters(), strict=True):
        assert torch.equal(a, b)
