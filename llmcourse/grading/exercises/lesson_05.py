"""Exercises of lesson 05 (experimental environment): seeding, training memory, all-reduce,
checkpoints, each against ``llmcourse.utils`` or ``llmcourse.scaling``. Seeding and checkpoints
are about what happens around a call, so probes drive them: they draw numbers after seeding,
and train, save, load and train on."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from llmcourse.grading.compare import close, exact
from llmcourse.grading.spec import Case, Draw, Exercise
from llmcourse.scaling import model_state_bytes
from llmcourse.utils import load_checkpoint, save_checkpoint, seed_everything
from llmcourse.utils.distributed import ring_all_reduce

# ---- 05.seed ----------------------------------------------------------------------------------


def _draws() -> list[object]:
    return [random.random(), float(np.random.rand()), torch.rand(3).tolist()]


def _draws_after(set_seed, seeds):
    """What Python, NumPy and PyTorch draw after each call of ``set_seed``."""
    found = []
    for seed in seeds:
        set_seed(seed)
        found.append(_draws())
    return found


def _seed_everything(seed: int) -> None:
    seed_everything(seed)


seed = Exercise(
    "05.seed",
    answer="set_seed",
    reference=_seed_everything,
    forbid=["llmcourse.utils.seed_everything", "llmcourse.utils.seed"],
    compare=exact(),
    section="Reproducibility",
)


@seed.variant("only PyTorch is seeded (Python's random and NumPy are not)")
def _torch_only(seed):
    torch.manual_seed(seed)


@seed.test(
    points=2,
    hint="Seed all three generators with the same seed: Python's random, NumPy's global one and "
    "PyTorch's.",
    probe=_draws_after,
)
def seeding_matches_seed_everything(draw: Draw) -> list[Case]:
    return [Case(([s],), label=f"set_seed({s})") for s in (0, 1234, draw.integer(1, 2**31))]


@seed.test(points=1, hint="Use the seed you are given, not a constant.", probe=_draws_after)
def different_seeds_differ(draw: Draw) -> list[Case]:
    first = draw.integer(1, 10**6)
    return [Case(([first, first + 1],), label=f"set_seed({first}), then set_seed({first + 1})")]


# ---- 05.training_memory -----------------------------------------------------------------------


def _reference_gb(n_params: float, n_gpus: int = 1, zero_stage: int = 0) -> float:
    return model_state_bytes(n_params, n_gpus, zero_stage).model_states / 1e9


training_memory = Exercise(
    "05.training_memory",
    answer="model_state_gb",
    reference=_reference_gb,
    forbid=["llmcourse.scaling.model_state_bytes", "llmcourse.scaling.memory"],
    section="What changes on a machine with many GPUs",
)


@training_memory.variant("the result is in GiB (2**30 bytes), not GB (1e9)")
def _gibibytes(n_params, n_gpus=1, zero_stage=0):
    return _reference_gb(n_params, n_gpus, zero_stage) * 1e9 / 2**30


@training_memory.test(
    points=1, hint="Without ZeRO every GPU holds all 16 bytes per parameter: 2 + 2 + 12."
)
def plain_data_parallel(draw: Draw) -> list[Case]:
    sizes = (1.0, 124e6, 7.5e9, float(draw.integer(10**6, 10**11)))
    return [Case((n, 8, 0), label=f"{n:g} params, 8 GPUs, no ZeRO") for n in sizes]


@training_memory.test(
    points=2,
    hint="Stage 1 divides only the 12 optimizer bytes by n_gpus; stage 2 also the 2 gradient "
    "bytes; stage 3 all 16.",
)
def zero_stages_match_the_paper(draw: Draw) -> list[Case]:
    gpus = (1, 4, 64, draw.integer(2, 1024))
    return [
        Case((7.5e9, n, stage), label=f"7.5B params, {n} GPUs, stage {stage}")
        for stage in (1, 2, 3)
        for n in gpus
    ]


@training_memory.test(points=1, hint="Return gigabytes: bytes / 1e9 (not 2**30).")
def returns_gigabytes(draw: Draw) -> list[Case]:
    return [Case((n,), label=f"model_state_gb({n:g})") for n in (1e9, draw.uniform(1e8, 1e10))]


# ---- 05.all_reduce ----------------------------------------------------------------------------


def _reference_all_reduce(tensors):
    return ring_all_reduce(tensors)[0]


all_reduce = Exercise(
    "05.all_reduce",
    answer="all_reduce_mean",
    reference=_reference_all_reduce,
    forbid=["llmcourse.utils.distributed.ring_all_reduce", "torch.distributed.all_reduce"],
    section="What changes on a machine with many GPUs",
)


def _inputs_after(all_reduce_mean, tensors):
    all_reduce_mean(tensors)
    return tensors


def _after_one_worker_updates(all_reduce_mean, tensors):
    results = all_reduce_mean(tensors)
    results[0].add_(1.0)  # worker 0 updates its result in place
    return results[1]


@all_reduce.variant("every worker gets the sum instead of the mean")
def _sum(tensors):
    total = torch.stack(tensors).sum(0)
    return [total.clone() for _ in tensors]


@all_reduce.test(
    points=2,
    hint="Every worker must end with the element-wise mean of all the workers' tensors.",
)
def every_worker_gets_the_mean(draw: Draw) -> list[Case]:
    counts = (1, 2, 3, 5, draw.integer(2, 8))
    return [Case(([draw.randn(3, 7) for _ in range(n)],), label=f"{n} workers") for n in counts]


@all_reduce.test(
    points=1,
    hint="Work on copies: the input tensors belong to the workers and must not change.",
    probe=_inputs_after,
    compare=exact(),
)
def inputs_are_left_alone(draw: Draw) -> list[Case]:
    n = draw.integer(2, 5)
    return [Case(([draw.randn(4) for _ in range(n)],), label=f"{n} workers' inputs after the call")]


@all_reduce.test(
    points=1,
    hint="Results must not share memory: if every worker gets the same tensor object, one "
    "worker's later in-place update would change everyone's gradient.",
    probe=_after_one_worker_updates,
)
def results_are_independent(draw: Draw) -> list[Case]:
    return [
        Case(
            ([draw.randn(5) for _ in range(3)],),
            label="worker 1's result after worker 0 adds 1 to its own",
        )
    ]


# ---- 05.checkpoint ----------------------------------------------------------------------------


def _save_reference(path, model, optimizer, step: int) -> None:
    save_checkpoint(
        path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
    )


def _load_reference(path, model, optimizer) -> int:
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return state["step"]


checkpoint = Exercise(
    "05.checkpoint",
    answer=("save_training_checkpoint", "load_training_checkpoint"),
    reference=(_save_reference, _load_reference),
    forbid=["llmcourse.train.Trainer.save_checkpoint", "llmcourse.train.Trainer.load_checkpoint"],
    section="Checkpoints you can trust",
)


def _model_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.GELU(), torch.nn.Linear(12, 2))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss = model(torch.randn(8, 6, generator=generator)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _round_trip(save, load, seed, steps):
    """Train, save, load into a fresh model, train both on: what the loaded copy holds and does."""
    model, optimizer = _model_and_optimizer(seed)
    _train(model, optimizer, steps, seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ckpt.safetensors"
        save(path, model, optimizer, steps)
        fresh_model, fresh_optimizer = _model_and_optimizer(seed + 1)
        step = load(path, fresh_model, fresh_optimizer)
    loaded = {name: t.detach().clone() for name, t in fresh_model.state_dict().items()}
    # Training on gives the same weights only when AdamW's moments came back too.
    _train(fresh_model, fresh_optimizer, 2, seed + 2)
    trained_on = {name: t.detach().clone() for name, t in fresh_model.state_dict().items()}
    return {"step": step, "loaded weights": loaded, "weights after 2 more steps": trained_on}


def _file_written(save, load, seed):
    model, optimizer = _model_and_optimizer(seed)
    _train(model, optimizer, 1, seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ckpt.safetensors"
        save(path, model, optimizer, 1)
        return path.read_bytes() if path.is_file() else None


def _is_safetensors(got, expected, case: Case) -> None:
    from safetensors.torch import load

    if got is None:
        raise AssertionError("nothing was written at the path given to save_training_checkpoint.")
    if not isinstance(got, bytes):
        raise AssertionError(f"expected the file's bytes, got {type(got).__name__}.")
    try:
        tensors = load(got)
    except Exception as error:
        raise AssertionError(f"the checkpoint is not a safetensors file ({error}).") from None
    if not tensors:
        raise AssertionError("the safetensors file holds no tensors.")


@checkpoint.test(
    points=2,
    hint="Save both state dicts and the step in one checkpoint; on load, restore the model and "
    "the optimizer from it and return the step.",
    probe=_round_trip,
    compare=close(atol=1e-6, rtol=1e-6),
)
def round_trip_restores_model_optimizer_and_step(draw: Draw) -> list[Case]:
    steps = draw.integer(2, 5)
    return [Case((draw.integer(0, 10**6), steps), label=f"a model trained {steps} steps")]


@checkpoint.test(
    points=1,
    hint="Write the file with llmcourse.utils.save_checkpoint (safetensors), not torch.save.",
    probe=_file_written,
    expect=lambda case: None,
    compare=_is_safetensors,
)
def the_file_is_safetensors(draw: Draw) -> list[Case]:
    return [Case((draw.integer(0, 10**6),), label="the checkpoint file")]
