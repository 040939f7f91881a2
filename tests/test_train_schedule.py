"""Learning-rate schedules: shape, transformers' schedules after warm-up, LambdaLR round trips."""

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

from llmcourse.train.schedule import lr_lambda, warmup_constant, warmup_cosine, warmup_linear
from llmcourse.utils.checkpoint import load_checkpoint, save_checkpoint


def test_warmup_cosine_hits_its_landmarks():
    args = {"max_lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 10, "total_steps": 110}
    assert warmup_cosine(0, **args) == pytest.approx(1e-4)  # (0 + 1) / 10 of the peak
    assert warmup_cosine(9, **args) == pytest.approx(1e-3)
    assert warmup_cosine(10, **args) == pytest.approx(1e-3)
    assert warmup_cosine(60, **args) == pytest.approx(5.5e-4)  # halfway: the mean of max, min
    assert warmup_cosine(110, **args) == pytest.approx(1e-4)
    assert warmup_cosine(500, **args) == pytest.approx(1e-4)  # stays at the floor


@given(st.integers(0, 50), st.integers(51, 400))
def test_schedules_rise_then_fall_monotonically(warmup, total):
    for schedule in (warmup_cosine, warmup_linear):
        lrs = [schedule(s, 1.0, 0.1, warmup, total) for s in range(total + 5)]
        peak = max(warmup - 1, 0)
        assert all(a <= b + 1e-12 for a, b in itertools.pairwise(lrs[: peak + 1]))
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(lrs[peak:]))
        assert max(lrs) == pytest.approx(1.0) and min(lrs[peak:]) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("cosine", get_cosine_schedule_with_warmup), ("linear", get_linear_schedule_with_warmup)],
)
def test_decay_matches_transformers_after_warmup(ours, theirs):
    # transformers decays to 0 and warms up from step/W; after the warm-up the curves agree.
    warmup, total = 20, 200
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    reference = theirs(optimizer, warmup, total).lr_lambdas[0]
    multiplier = lr_lambda(ours, warmup, total, min_ratio=0.0)
    for step in range(warmup, total + 1):
        assert multiplier(step) == pytest.approx(reference(step), abs=1e-12)


def test_lambda_drives_any_optimizer_and_survives_a_checkpoint(tmp_path):
    parameter = torch.zeros(3, requires_grad=True)
    optimizer = torch.optim.AdamW([parameter], lr=2e-3)
    scheduler = LambdaLR(optimizer, lr_lambda("cosine", 5, 50, min_ratio=0.1))
    seen = []
    for _ in range(20):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [warmup_cosine(s, 2e-3, 2e-4, 5, 50) for s in range(20)]
    assert seen == pytest.approx(expected)
    save_checkpoint(tmp_path / "s.safetensors", {"scheduler": scheduler.state_dict()})
    fresh = LambdaLR(optimizer, lr_lambda("linear", 1, 2))  # different schedule, overwritten
    fresh.load_state_dict(load_checkpoint(tmp_path / "s.safetensors")["scheduler"])
    assert fresh.lr_lambdas[0] == lr_lambda("cosine", 5, 50, min_ratio=0.1)
    assert fresh.last_epoch == 20


def test_constant_schedule_and_errors():
    assert [warmup_constant(s, 1.0, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_lambda("constant")(1000) == 1.0
    with pytest.raises(ValueError, match="Unknown schedule"):
        lr_lambda("cosine-restarts")
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(0, 1.0, 0.1, warmup_steps=20, total_steps=10)
    with pytest.raises(ValueError, match="non-negative"):
        warmup_linear(-1, 1.0, 0.1, 0, 10)
    with pytest.raises(ValueError, match="min_ratio"):
        lr_lambda("cosine", 0, 10, min_ratio=1.5)
    assert math.isclose(warmup_cosine(0, 1.0, 0.0, 0, 1), 1.0)
