"""Exercise tests of lesson 05 (experimental environment): seeding, training memory, all-reduce,
checkpoints — each against ``llmcourse.utils`` or ``llmcourse.scaling``."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.scaling import model_state_bytes
from llmcourse.utils import seed_everything
from llmcourse.utils.distributed import ring_all_reduce

# ---- 05.seed ----------------------------------------------------------------------------------


def _draws() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


@exercise_test(
    "05.seed",
    points=2,
    hint="Seed all three generators with the same seed: random.seed(seed), "
    "np.random.seed(seed) and torch.manual_seed(seed).",
)
def seeding_matches_seed_everything(ns: Namespace) -> None:
    set_seed = ns.function("set_seed")
    for seed in (0, 1234):
        seed_everything(seed)
        expected = _draws()
        set_seed(seed)
        got = _draws()
        for name, a, b in zip(("random", "numpy", "torch"), got, expected, strict=True):
            assert a == b, f"after set_seed({seed}), {name} drew {a} instead of {b}."


@exercise_test("05.seed", points=1, hint="Use the seed you are given, not a constant.")
def different_seeds_differ(ns: Namespace) -> None:
    set_seed = ns.function("set_seed")
    set_seed(1)
    first = _draws()
    set_seed(2)
    assert _draws() != first, "set_seed(1) and set_seed(2) produced the same numbers."


# ---- 05.training_memory -----------------------------------------------------------------------


def _reference_gb(n_params: float, n_gpus: int, zero_stage: int) -> float:
    return model_state_bytes(n_params, n_gpus, zero_stage).model_states / 1e9


@exercise_test(
    "05.training_memory",
    points=1,
    hint="Without ZeRO every GPU holds all 16 bytes per parameter: 2 + 2 + 12.",
)
def plain_data_parallel(ns: Namespace) -> None:
    memory = ns.function("model_state_gb")
    for n_params in (1.0, 124e6, 7.5e9):
        assert_close(
            memory(n_params, 8, 0), _reference_gb(n_params, 8, 0), what=f"{n_params:g} params"
        )


@exercise_test(
    "05.training_memory",
    points=2,
    hint="Stage 1 divides only the 12 optimizer bytes by n_gpus; stage 2 also the 2 gradient "
    "bytes; stage 3 all 16.",
)
def zero_stages_match_the_paper(ns: Namespace) -> None:
    memory = ns.function("model_state_gb")
    for stage in (1, 2, 3):
        for n_gpus in (1, 4, 64):
            expected = _reference_gb(7.5e9, n_gpus, stage)
            assert_close(
                memory(7.5e9, n_gpus, stage),
                expected,
                what=f"7.5B params, {n_gpus} GPUs, stage {stage}",
            )


@exercise_test("05.training_memory", points=1, hint="Return gigabytes: bytes / 1e9 (not 2**30).")
def returns_gigabytes(ns: Namespace) -> None:
    value = ns.function("model_state_gb")(1e9)
    assert_close(value, 16.0, what="model_state_gb(1e9) in GB")


# ---- 05.all_reduce ----------------------------------------------------------------------------


def _worker_tensors(n: int, shape: tuple[int, ...] = (3, 7)) -> list[torch.Tensor]:
    return [torch.randn(shape) for _ in range(n)]


@exercise_test(
    "05.all_reduce",
    points=2,
    hint="Every worker must end with the element-wise mean of all the tensors: "
    "torch.stack(tensors).mean(0).",
)
def every_worker_gets_the_mean(ns: Namespace) -> None:
    all_reduce_mean = ns.function("all_reduce_mean")
    for workers in (1, 2, 3, 5):
        tensors = _worker_tensors(workers)
        expected, _ = ring_all_reduce(tensors)
        got = all_reduce_mean(tensors)
        assert isinstance(got, list) and len(got) == workers, (
            f"with {workers} workers, return a list of {workers} tensors, got {type(got).__name__}"
            + (f" of length {len(got)}" if isinstance(got, list) else "")
        )
        for rank, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_close(a, b, what=f"{workers} workers, worker {rank}'s result")


@exercise_test(
    "05.all_reduce",
    points=1,
    hint="Work on copies (t.clone()): the input tensors belong to the workers and must not change.",
)
def inputs_are_left_alone(ns: Namespace) -> None:
    tensors = _worker_tensors(4)
    before = [t.clone() for t in tensors]
    ns.function("all_reduce_mean")(tensors)
    for rank, (t, b) in enumerate(zip(tensors, before, strict=True)):
        assert torch.equal(t, b), f"worker {rank}'s input tensor was modified."


@exercise_test(
    "05.all_reduce",
    points=1,
    hint="Results must not share memory: if every worker gets the *same* tensor object, one "
    "worker's later in-place update would change everyone's gradient.",
)
def results_are_independent(ns: Namespace) -> None:
    results = ns.function("all_reduce_mean")(_worker_tensors(3, (5,)))
    results[0].add_(1.0)
    assert not torch.equal(results[0], results[1]), "the workers' results share one tensor."


# ---- 05.checkpoint ----------------------------------------------------------------------------


def _model_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.GELU(), torch.nn.Linear(12, 2))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    generator = torch.Generator().manual_seed(steps)
    for _ in range(steps):
        x = torch.randn(8, 6, generator=generator)
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@exercise_test(
    "05.checkpoint",
    points=2,
    hint="Save both state_dicts and the step in one dict; on load, call load_state_dict on the "
    "model and on the optimizer and return the step.",
)
def round_trip_restores_model_optimizer_and_step(ns: Namespace) -> None:
    save, load = ns.function("save_training_checkpoint"), ns.function("load_training_checkpoint")
    model, optimizer = _model_and_optimizer(0)
    _train(model, optimizer, 3)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ckpt.safetensors"
        save(path, model, optimizer, 3)
        fresh_model, fresh_optimizer = _model_and_optimizer(1)
        step = load(path, fresh_model, fresh_optimizer)
    assert step == 3, f"load_training_checkpoint returned {step!r}, expected the saved step 3."
    for (name, a), b in zip(
        model.state_dict().items(), fresh_model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), f"model tensor {name} differs after loading."
    # Same continued training: only true when AdamW's moments came back too.
    _train(model, optimizer, 2)
    _train(fresh_model, fresh_optimizer, 2)
    for a, b in zip(model.parameters(), fresh_model.parameters(), strict=True):
        assert torch.equal(a, b), (
            "training after loading differs: was the optimizer state restored?"
        )


@exercise_test(
    "05.checkpoint",
    points=1,
    hint="Write the file with llmcourse.utils.save_checkpoint (safetensors), not torch.save.",
)
def the_file_is_safetensors(ns: Namespace) -> None:
    from safetensors import safe_open

    model, optimizer = _model_and_optimizer(0)
    _train(model, optimizer, 1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ckpt.safetensors"
        ns.function("save_training_checkpoint")(path, model, optimizer, 1)
        assert path.is_file(), f"nothing was written at {path}."
        try:
            with safe_open(str(path), framework="pt") as handle:
                keys = list(handle.keys())
        except Exception as error:
            raise AssertionError(f"the checkpoint is not a safetensors file ({error}).") from None
    assert keys, "the safetensors file holds no tensors."
