"""Exercises of lesson 04 (LLM development): each compares the learner's function with the
package's own (``llmcourse.train``, ``llmcourse.data.collators``, ``llmcourse.scaling``) on random
and edge-case inputs. BERT's masking is random by design: its tests check the statistics of
the learner's output in the grader's process instead."""

from __future__ import annotations

import torch

from llmcourse.grading.spec import Case, Draw, Exercise
from llmcourse.grading.wire import Make
from llmcourse.scaling import CHINCHILLA, EPOCH, ParametricFit, training_memory
from llmcourse.train import causal_lm_loss as reference_causal_lm_loss
from llmcourse.train import schedule

# ---- 04.causal_lm_loss --------------------------------------------------------------------------

causal_lm_loss = Exercise(
    "04.causal_lm_loss",
    answer="causal_lm_loss",
    reference=reference_causal_lm_loss,
    section="Causal language modelling (GPT)",
)


@causal_lm_loss.variant("the labels are not shifted (position t scored on token t)")
def _unshifted(logits, labels):
    vocab = logits.shape[-1]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, vocab).float(), labels.reshape(-1), ignore_index=-100
    )


@causal_lm_loss.variant("-100 labels are not ignored")
def _not_ignored(logits, labels):
    vocab = logits.shape[-1]
    targets = labels[:, 1:].reshape(-1).clamp(min=0)
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), targets)


def _logits_and_labels(draw: Draw, batch: int, seq: int, vocab: int):
    return draw.randn(batch, seq, vocab), draw.randint(0, vocab, (batch, seq))


@causal_lm_loss.test(
    points=1,
    hint="Position t predicts the next token: pair every logit row but the last with the label "
    "one position later, and take the cross-entropy averaged over those tokens.",
)
def causal_loss_shifts_by_one(draw: Draw) -> list[Case]:
    shapes = [(2, 6, 11), (1, 2, 5), (draw.integer(1, 4), draw.integer(3, 10), draw.integer(5, 40))]
    return [
        Case(_logits_and_labels(draw, *shape), label=f"logits of shape {shape}") for shape in shapes
    ]


@causal_lm_loss.test(
    points=1,
    hint="Labels equal to -100 (padding, prompts) must not count: they are left out of the "
    "average, which then runs over the remaining tokens only.",
)
def causal_loss_ignores_minus_100(draw: Draw) -> list[Case]:
    logits, labels = _logits_and_labels(draw, 3, 8, 13)
    labels[0, draw.integer(3, 6) :] = -100  # right padding
    labels[1, : draw.integer(2, 5)] = -100  # a prompt the model should not be scored on
    labels[2, 1:] = -100  # row 2 has no target at all (its first label is never one)
    return [Case((logits, labels), label="labels with -100")]


# ---- 04.mask_tokens -----------------------------------------------------------------------------

mask_tokens = Exercise(
    "04.mask_tokens",
    answer="mask_tokens",
    forbid=["llmcourse.data.collators.mask_tokens", "llmcourse.data.collators"],
    section="Masked language modelling (BERT) and its 80/10/10 rule",
)
_VOCAB, _MASK_ID, _ROWS, _COLS = 1000, 3, 400, 500


def token_grid(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (ROWS, COLS) and the special-token mask ([CLS] ... [SEP]) of one test."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(10, _VOCAB, (_ROWS, _COLS), generator=generator)
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    return input_ids, special


def _run_masking(mask_tokens, grid, seed):
    input_ids, special = grid
    generator = torch.Generator().manual_seed(seed)
    return mask_tokens(
        input_ids.clone(), _VOCAB, _MASK_ID, special, probability=0.15, generator=generator
    )


def _masking_case(draw: Draw) -> list[Case]:
    seed = draw.integer(0, 2**31)
    grid = Make("llmcourse.grading.exercises.lesson_04:token_grid", seed)
    return [Case((grid, draw.integer(0, 2**31)), label=f"{_ROWS}x{_COLS} tokens", hidden=seed)]


def _unpack(got, case: Case):
    if not (isinstance(got, tuple) and len(got) == 2):
        raise AssertionError(f"return a pair (inputs, labels), got {type(got).__name__}.")
    original, special = token_grid(case.hidden)
    inputs, labels = got
    for name, value in (("inputs", inputs), ("labels", labels)):
        if not isinstance(value, torch.Tensor) or value.shape != original.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise AssertionError(
                f"{name} must have the input's shape {tuple(original.shape)}, got {shape}."
            )
    return original, special, inputs, labels


def _selects_15_percent(got, expected, case: Case) -> None:
    original, special, inputs, labels = _unpack(got, case)
    selected = labels != -100
    if selected[special].any():
        raise AssertionError("special positions ([CLS], [SEP], padding) must never be selected.")
    if not torch.equal(labels[selected], original[selected]):
        raise AssertionError("at selected positions the label must be the original token id.")
    if not torch.equal(inputs[~selected], original[~selected]):
        raise AssertionError("positions that were not selected must keep their original token.")
    rate = selected.float().mean().item() / (1 - special.float().mean().item())
    if abs(rate - 0.15) > 0.005:  # 7 standard deviations of 200,000 draws
        raise AssertionError(f"expected about 15% of ordinary tokens selected, got {rate:.1%}.")


def _splits_80_10_10(got, expected, case: Case) -> None:
    original, _, inputs, labels = _unpack(got, case)
    selected = labels != -100
    n = max(int(selected.sum()), 1)
    masked = (inputs[selected] == _MASK_ID).sum().item() / n
    kept = (inputs[selected] == original[selected]).sum().item() / n
    replaced = 1.0 - masked - kept
    for name, share, target in (("[MASK]", masked, 0.8), ("a random token", replaced, 0.1)):
        if abs(share - target) > 0.012:  # over 5 standard deviations of ~30,000 selections
            raise AssertionError(
                f"expected {target:.0%} of the selected tokens to become {name}, got {share:.1%}."
            )
    if abs(kept - 0.1) > 0.012:  # a random replacement may draw the original id (1 in 1000)
        raise AssertionError(f"expected about 10% of selected tokens unchanged, got {kept:.1%}.")


@mask_tokens.test(
    points=1,
    hint="Select each non-special token with probability 0.15; labels keep the original id at "
    "selected positions and are -100 everywhere else; unselected inputs stay as they were.",
    probe=_run_masking,
    expect=lambda case: None,
    compare=_selects_15_percent,
)
def masking_selects_15_percent_and_labels_them(draw: Draw) -> list[Case]:
    return _masking_case(draw)


@mask_tokens.test(
    points=2,
    hint="Of the selected tokens, 80% become mask_id, 10% a uniformly random id and 10% stay "
    "unchanged: the model cannot learn that only [MASK] positions matter.",
    probe=_run_masking,
    expect=lambda case: None,
    compare=_splits_80_10_10,
)
def masking_splits_80_10_10(draw: Draw) -> list[Case]:
    return _masking_case(draw)


# ---- 04.warmup_cosine ---------------------------------------------------------------------------

warmup_cosine = Exercise(
    "04.warmup_cosine",
    answer="warmup_cosine",
    reference=schedule.warmup_cosine,
    forbid=["llmcourse.train.schedule"],
    section="The training loop",
)


@warmup_cosine.variant("warm-up reaches max_lr one step late (step / warmup_steps)")
def _late_warmup(step, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    return schedule.warmup_cosine(step, max_lr, min_lr, warmup_steps, total_steps)


@warmup_cosine.test(
    points=1,
    hint="During warm-up (step < warmup_steps) the rate grows linearly, so that step "
    "warmup_steps - 1 reaches max_lr (count steps from 1 in the numerator).",
)
def warmup_rises_linearly(draw: Draw) -> list[Case]:
    warmup = draw.integer(5, 20)
    return [
        Case((step, 1e-3, 1e-4, warmup, 100), label=f"step {step} (warmup_steps={warmup})")
        for step in range(warmup)
    ]


@warmup_cosine.test(
    points=2,
    hint="After warm-up, the progress p runs from 0 to 1 over the remaining steps (capped at 1), "
    "and the rate is min_lr plus half the range times (1 + cos(pi · p)). After total_steps it "
    "stays at min_lr; with warmup_steps=0 it starts at max_lr.",
)
def cosine_decays_to_the_floor(draw: Draw) -> list[Case]:
    cases = [(s, 3e-4, 3e-5, 100, 1000) for s in (100, 101, 250, 550, 999, 1000, 1500)]
    cases += [(s, 1.0, 0.0, 0, 50) for s in (0, 1, 25, 49, 50)]
    warmup, total = draw.integer(1, 50), draw.integer(100, 2000)
    cases += [(draw.integer(warmup, total + 100), 1e-3, 1e-5, warmup, total) for _ in range(5)]
    return [Case(args, label=f"warmup_cosine{args}") for args in cases]


# ---- 04.chinchilla_optimal ----------------------------------------------------------------------


def _reference_optimum(compute_flops, E, A, B, alpha, beta):
    return ParametricFit("fit", E, A, B, alpha, beta, "").compute_optimal(compute_flops)


chinchilla_optimal = Exercise(
    "04.chinchilla_optimal",
    answer="chinchilla_optimal",
    reference=_reference_optimum,
    forbid=[
        "llmcourse.scaling.ParametricFit",
        "llmcourse.scaling.compute_optimal",
        "llmcourse.scaling.CHINCHILLA",
        "llmcourse.scaling.EPOCH",
    ],
    section="Scaling laws",
)


@chinchilla_optimal.variant("N and D are swapped (the exponents a and b exchanged)")
def _swapped_optimum(compute_flops, E, A, B, alpha, beta):
    n, d = _reference_optimum(compute_flops, E, A, B, alpha, beta)
    return d, n


@chinchilla_optimal.test(
    points=2,
    hint="Minimise E + A/N^α + B/D^β along D = C/(6N): N_opt = G·(C/6)^a with a = β/(α+β) and "
    "G = (αA/(βB))^(1/(α+β)), and D_opt = (C/6)/N_opt. E does not move the optimum.",
)
def chinchilla_optimum_matches_approach_3(draw: Draw) -> list[Case]:
    cases = []
    for fit in (CHINCHILLA, EPOCH):
        for compute in (1e18, 5.76e23, 10 ** draw.uniform(19, 25)):
            args = (compute, fit.E, fit.A, fit.B, fit.alpha, fit.beta)
            cases.append(Case(args, label=f"C = {compute:.3g} with the {fit.name} fit"))
    return cases


# ---- 04.training_memory -------------------------------------------------------------------------


def _reference_memory(
    n_params, n_layer, d_model, n_head, seq_len, batch_size, n_gpus=1, zero_stage=0
):
    shape = (n_params, n_layer, d_model, n_head, seq_len, batch_size)
    return training_memory(*shape, n_gpus=n_gpus, zero_stage=zero_stage).total


training_memory_exercise = Exercise(
    "04.training_memory",
    answer="training_memory_bytes",
    reference=_reference_memory,
    forbid=[
        "llmcourse.scaling.training_memory",
        "llmcourse.scaling.model_state_bytes",
        "llmcourse.scaling.memory",
    ],
    section="Training on many GPUs",
)


@training_memory_exercise.variant("each ZeRO stage shards one part too many (stage 1 acts as 2)")
def _stages_shifted(
    n_params, n_layer, d_model, n_head, seq_len, batch_size, n_gpus=1, zero_stage=0
):
    stage = min(3, zero_stage + 1) if zero_stage else 0
    shape = (n_params, n_layer, d_model, n_head, seq_len, batch_size)
    return _reference_memory(*shape, n_gpus=n_gpus, zero_stage=stage)


@training_memory_exercise.test(
    points=1,
    hint="Model states: 2 bytes of bf16 weights + 2 of gradients + 12 of fp32 Adam state per "
    "parameter. ZeRO-1 divides the 12 by n_gpus, ZeRO-2 also the gradients, ZeRO-3 all 16.",
)
def model_states_follow_zero(draw: Draw) -> list[Case]:
    n_params = draw.choice([7.5e9, 1.3e9, 7e10])
    gpus = draw.choice([8, 64, 512])
    return [
        Case(
            (n_params, 32, 4096, 32, 2048, 1),
            {"n_gpus": gpus, "zero_stage": stage},
            label=f"{n_params:g} parameters on {gpus} GPUs, ZeRO stage {stage}",
        )
        for stage in (0, 1, 2, 3)
    ]


@training_memory_exercise.test(
    points=1,
    hint="Activations: every layer keeps s·b·h·(34 + 5·a·s/h) bytes (Korthikanti et al. 2022), "
    "s = seq_len, b = batch_size, h = d_model, a = n_head; multiply by n_layer.",
)
def activations_follow_korthikanti(draw: Draw) -> list[Case]:
    shapes = [(12, 768, 12, 1024, 8), (2, 64, 4, 128, 3)]
    shapes.append(
        (
            draw.integer(1, 48),
            64 * draw.integer(1, 64),
            4 * draw.integer(1, 16),
            2 ** draw.integer(6, 13),
            draw.integer(1, 16),
        )
    )
    return [
        Case(
            (1.2e8, *shape),
            label=f"one GPU, no ZeRO, (n_layer, d_model, n_head, seq_len, batch) = {shape}",
        )
        for shape in shapes
    ]
