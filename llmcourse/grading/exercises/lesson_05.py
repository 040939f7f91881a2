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
from llmcourse.grading.spec import Case, Draw, Exercise, Measurement
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


# ---- 05.resume_project ------------------------------------------------------------------------
# Make a run reproducible: stopped at any step and resumed from its checkpoint, it must end with
# the very bits of the run that never stopped, and match the same run in another process (the
# grader's). The run itself is given (the notebook shows the same two functions): a small MLP
# with dropout, AdamW, and a data stream with its own generator. Dropout draws from PyTorch's
# global generator, so a checkpoint needs four things: weights, optimizer moments, the data
# generator's state and the global generator's state.


def make_run(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Generator]:
    """The run to make reproducible: model, optimizer and data generator, all from ``seed``."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 1)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, optimizer, torch.Generator().manual_seed(seed + 1)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: torch.Generator):
    """One step on a fresh batch from ``data``; dropout draws from PyTorch's global generator."""
    x = torch.randn(16, 8, generator=data)
    loss = (model(x) - x.sum(-1, keepdim=True).sin()).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _train_run(seed, steps, checkpoint_path, stop_at=None, *, keep=("rng", "data", "optimizer")):
    model, optimizer, data = make_run(seed)
    start = 0
    if Path(checkpoint_path).is_file():
        state = load_checkpoint(checkpoint_path)
        model.load_state_dict(state["model"])
        if "optimizer" in keep:
            optimizer.load_state_dict(state["optimizer"])
        if "data" in keep:
            data.set_state(state["data"])
        if "rng" in keep:
            torch.set_rng_state(state["rng"])
        start = state["step"]
    for step in range(start, steps):
        if step == stop_at:
            save_checkpoint(
                checkpoint_path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "data": data.get_state(),
                    "rng": torch.get_rng_state(),
                    "step": step,
                },
            )
            break
        train_step(model, optimizer, data)
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _reference_train_run(seed, steps, checkpoint_path, stop_at=None):
    return _train_run(seed, steps, checkpoint_path, stop_at)


def _stopped_and_resumed(train_run, seed, steps, stop_at):
    """The run stopped at ``stop_at`` and resumed, with other draws from the global generator in
    between (as a notebook would make); also the run that never stopped, when asked."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.safetensors"
        train_run(seed, steps, path, stop_at=stop_at)
        torch.manual_seed(seed + 7)
        torch.rand(13)  # what a notebook does between two cells
        return train_run(seed, steps, path)


def _whole_and_resumed(train_run, seed, steps, stop_at):
    with tempfile.TemporaryDirectory() as folder:
        whole = train_run(seed, steps, Path(folder) / "whole.safetensors")
    return {"whole": whole, "resumed": _stopped_and_resumed(train_run, seed, steps, stop_at)}


def _largest_difference(got, case: Case) -> Measurement:
    if not isinstance(got, dict) or set(got) != {"whole", "resumed"}:
        raise AssertionError(f"expected the two runs' weights, got {got!r:.80}.")
    whole, resumed = got["whole"], got["resumed"]
    if not isinstance(whole, dict) or not isinstance(resumed, dict) or set(whole) != set(resumed):
        raise AssertionError("train_run should return the model's state_dict (name -> tensor).")
    if set(whole) != {"0.weight", "0.bias", "3.weight", "3.bias"}:
        raise AssertionError(
            f"train_run should return make_run's model's state_dict; got keys {sorted(whole)}."
        )
    gap = max(float((whole[n].double() - resumed[n].double()).abs().max()) for n in whole)
    return Measurement(
        "largest |weight difference| between the resumed and the uninterrupted run",
        gap,
        0.0,
        higher_is_better=False,
        detail="bit-exact means 0" if gap else "",
    )


resume_project = Exercise(
    "05.resume_project",
    answer="train_run",
    reference=_reference_train_run,
    forbid=["llmcourse.train.Trainer"],
    compare=exact(),
    section="Checkpoints you can trust",
)


@resume_project.variant("PyTorch's global generator state is not saved (dropout masks change)")
def _without_rng(seed, steps, checkpoint_path, stop_at=None):
    return _train_run(seed, steps, checkpoint_path, stop_at, keep=("data", "optimizer"))


@resume_project.variant("the data generator's state is not saved (the batches start over)")
def _without_data(seed, steps, checkpoint_path, stop_at=None):
    return _train_run(seed, steps, checkpoint_path, stop_at, keep=("rng", "optimizer"))


@resume_project.variant("the optimizer's state is not saved (AdamW's moments start at zero)")
def _without_optimizer(seed, steps, checkpoint_path, stop_at=None):
    return _train_run(seed, steps, checkpoint_path, stop_at, keep=("rng", "data"))


def _resume_cases(draw: Draw) -> list[Case]:
    steps = draw.integer(12, 20)
    return [
        Case((seed, steps, stop_at), label=f"seed {seed}, {steps} steps, stopped after {stop_at}")
        for seed, stop_at in ((0, 1), (draw.integer(1, 10**6), draw.integer(2, steps - 2)))
    ]


@resume_project.test(
    points=3,
    hint="A resumed run must continue every source of randomness where it stopped: save the "
    "weights, the optimizer's state, the data generator's state (Generator.get_state) and "
    "PyTorch's global generator (torch.get_rng_state), and restore all four.",
    probe=_whole_and_resumed,
    measure=_largest_difference,
)
def resumed_run_is_bit_exact(draw: Draw) -> list[Case]:
    return _resume_cases(draw)


@resume_project.test(
    points=2,
    hint="The run must be make_run(seed) trained with train_step, one call per step, nothing "
    "else drawing from the generators in between; then it is the same in any process.",
    probe=_stopped_and_resumed,
)
def resumed_run_matches_the_graders_process(draw: Draw) -> list[Case]:
    return _resume_cases(draw)
