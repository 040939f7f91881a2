import random

import numpy as np
import pytest
import torch

from llmcourse.utils import (
    autocast_dtype,
    cache_dir,
    device,
    eval_mode,
    rng_state,
    seed_everything,
    set_rng_state,
)


def test_device_defaults_to_what_is_available(monkeypatch):
    monkeypatch.delenv("LLMCOURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert device().type == expected


def test_device_environment_override(monkeypatch):
    monkeypatch.setenv("LLMCOURSE_DEVICE", "cpu")
    assert device() == torch.device("cpu")
    assert autocast_dtype() is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_unavailable_device_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        device("cuda")


def draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_repeats_every_generator():
    seed_everything(123)
    first = draws()
    seed_everything(123)
    assert draws() == first
    seed_everything(124)
    assert draws() != first


def test_rng_state_round_trip():
    seed_everything(7)
    state = rng_state()
    expected = draws()
    draws()
    set_rng_state(state)
    assert draws() == expected


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(seed)


def test_cache_dir_override(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_turns_dropout_off_and_restores_the_mode(training):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)).train(training)
    x = torch.ones(64, 4)
    with eval_mode(model) as inside:
        assert inside is model and not any(m.training for m in model.modules())
        assert torch.equal(model(x), model(x))  # no dropout: deterministic
    assert all(m.training == training for m in model.modules())
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("a failing scorer")
    assert all(m.training == training for m in model.modules())
