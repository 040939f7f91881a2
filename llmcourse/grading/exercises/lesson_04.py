"""Exercise tests of lesson 04 (LLM development): each compares the learner's function with the
package's own (``llmcourse.train``, ``llmcourse.data.collators``, ``llmcourse.scaling``) on random
and edge-case inputs."""

from __future__ import annotations

import torch

from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.scaling import CHINCHILLA, EPOCH, training_memory
from llmcourse.train import causal_lm_loss as reference_causal_lm_loss
from llmcourse.train import schedule

# ---- 04.causal_lm_loss --------------------------------------------------------------------------


def _logits_and_labels(batch: int, seq: int, vocab: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, seq, vocab, generator=generator)
    labels = torch.randint(0, vocab, (batch, seq), generator=generator)
    return logits, labels


@exercise_test(
    "04.causal_lm_loss",
    points=1,
    hint="Position t predicts the next token: compare logits[:, :-1] with labels[:, 1:], flatten "
    "both, and take F.cross_entropy (the mean over the batch's tokens).",
)
def causal_loss_shifts_by_one(ns: Namespace) -> None:
    causal_lm_loss = ns.function("causal_lm_loss")
    for batch, seq, vocab, seed in [(2, 6, 11, 0), (1, 2, 5, 1), (4, 9, 30, 2)]:
        logits, labels = _logits_and_labels(batch, seq, vocab, seed)
        assert_close(
            causal_lm_loss(logits, labels),
            reference_causal_lm_loss(logits, labels),
            what=f"causal_lm_loss on logits of shape {(batch, seq, vocab)}",
        )


@exercise_test(
    "04.causal_lm_loss",
    points=1,
    hint="Labels equal to -100 (padding, prompts) must not count: pass ignore_index=-100 to "
    "F.cross_entropy, which then averages over the remaining tokens only.",
)
def causal_loss_ignores_minus_100(ns: Namespace) -> None:
    causal_lm_loss = ns.function("causal_lm_loss")
    logits, labels = _logits_and_labels(3, 8, 13, 3)
    labels[0, 5:] = -100  # right padding
    labels[1, :4] = -100  # a prompt the model should not be scored on
    labels[2, 1:] = -100  # row 2 has no target at all (its first label is never one)
    assert_close(
        causal_lm_loss(logits, labels),
        reference_causal_lm_loss(logits, labels),
        what="causal_lm_loss with -100 labels",
    )


# ---- 04.mask_tokens -----------------------------------------------------------------------------

_VOCAB, _MASK_ID = 1000, 3


def _masking_run(ns: Namespace):
    mask_tokens = ns.function("mask_tokens")
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(10, _VOCAB, (400, 500), generator=generator)
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True  # [CLS] ... [SEP]
    result = mask_tokens(
        input_ids.clone(), _VOCAB, _MASK_ID, special, probability=0.15, generator=generator
    )
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(f"Return a pair (inputs, labels), got {type(result).__name__}.")
    inputs, labels = result
    if inputs.shape != input_ids.shape or labels.shape != input_ids.shape:
        raise AssertionError(
            f"inputs and labels must have the input's shape {tuple(input_ids.shape)}, got "
            f"{tuple(inputs.shape)} and {tuple(labels.shape)}."
        )
    return input_ids, special, inputs, labels


@exercise_test(
    "04.mask_tokens",
    points=1,
    hint="Select each non-special token with probability 0.15 (torch.bernoulli); labels keep the "
    "original id at selected positions and are -100 everywhere else; unselected inputs stay as "
    "they were.",
)
def masking_selects_15_percent_and_labels_them(ns: Namespace) -> None:
    original, special, inputs, labels = _masking_run(ns)
    selected = labels != -100
    if selected[special].any():
        raise AssertionError("Special positions ([CLS], [SEP], padding) must never be selected.")
    if not torch.equal(labels[selected], original[selected]):
        raise AssertionError("At selected positions the label must be the original token id.")
    if not torch.equal(inputs[~selected], original[~selected]):
        raise AssertionError("Positions that were not selected must keep their original token.")
    rate = selected.float().mean().item() / (1 - special.float().mean().item())
    if abs(rate - 0.15) > 0.005:
        raise AssertionError(f"Expected about 15% of ordinary tokens selected, got {rate:.1%}.")


@exercise_test(
    "04.mask_tokens",
    points=2,
    hint="Of the selected tokens, 80% become mask_id, 10% a uniformly random id "
    "(torch.randint(vocab_size, ...)) and 10% stay unchanged: the model cannot learn that only "
    "[MASK] positions matter.",
)
def masking_splits_80_10_10(ns: Namespace) -> None:
    original, _, inputs, labels = _masking_run(ns)
    selected = labels != -100
    n = selected.sum().item()
    masked = (inputs[selected] == _MASK_ID).sum().item() / n
    kept = (inputs[selected] == original[selected]).sum().item() / n
    replaced = 1.0 - masked - kept
    for name, share, expected in (("[MASK]", masked, 0.8), ("random", replaced, 0.1)):
        if abs(share - expected) > 0.01:
            raise AssertionError(
                f"Expected {expected:.0%} of the selected tokens to become {name}, got {share:.1%}."
            )
    if abs(kept - 0.1) > 0.012:  # a random replacement may draw the original id (1 in 1000)
        raise AssertionError(f"Expected about 10% of selected tokens unchanged, got {kept:.1%}.")


# ---- 04.warmup_cosine ---------------------------------------------------------------------------


@exercise_test(
    "04.warmup_cosine",
    points=1,
    hint="During warm-up (step < warmup_steps) the rate grows linearly: max_lr * (step + 1) / "
    "warmup_steps, so that step warmup_steps - 1 reaches max_lr.",
)
def warmup_rises_linearly(ns: Namespace) -> None:
    warmup_cosine = ns.function("warmup_cosine")
    for step in range(0, 10):
        assert_close(
            warmup_cosine(step, 1e-3, 1e-4, 10, 100),
            schedule.warmup_cosine(step, 1e-3, 1e-4, 10, 100),
            what=f"warmup_cosine at step {step} (warmup_steps=10)",
            atol=1e-12,
            rtol=1e-9,
        )


@exercise_test(
    "04.warmup_cosine",
    points=2,
    hint="After warm-up: progress p = (step - warmup_steps) / (total_steps - warmup_steps), "
    "capped at 1; lr = min_lr + 0.5 * (max_lr - min_lr) * (1 + cos(pi * p)). After total_steps "
    "it stays at min_lr; with warmup_steps=0 it starts at max_lr.",
)
def cosine_decays_to_the_floor(ns: Namespace) -> None:
    warmup_cosine = ns.function("warmup_cosine")
    cases = [(s, 3e-4, 3e-5, 100, 1000) for s in (100, 101, 250, 550, 999, 1000, 1500)]
    cases += [(s, 1.0, 0.0, 0, 50) for s in (0, 1, 25, 49, 50)]
    for case in cases:
        assert_close(
            warmup_cosine(*case),
            schedule.warmup_cosine(*case),
            what=f"warmup_cosine{case}",
            atol=1e-12,
            rtol=1e-9,
        )


# ---- 04.chinchilla_optimal ----------------------------------------------------------------------


@exercise_test(
    "04.chinchilla_optimal",
    points=2,
    hint="Minimise E + A/N^α + B/D^β with D = C/(6N): N_opt = G·(C/6)^a, D_opt = (C/6)/N_opt, "
    "where a = β/(α+β) and G = (αA/(βB))^(1/(α+β)). E does not move the optimum.",
)
def chinchilla_optimum_matches_approach_3(ns: Namespace) -> None:
    chinchilla_optimal = ns.function("chinchilla_optimal")
    for fit in (CHINCHILLA, EPOCH):
        for compute in (1e18, 5.76e23, 3.14e23):
            result = chinchilla_optimal(compute, fit.E, fit.A, fit.B, fit.alpha, fit.beta)
            if not (isinstance(result, tuple) and len(result) == 2):
                raise AssertionError("Return a pair (n_params, n_tokens).")
            expected = fit.compute_optimal(compute)
            what = f"chinchilla_optimal({compute:.3g}) with the {fit.name} fit"
            assert_close(result[0], expected[0], what=what + ": n_params", rtol=1e-6)
            assert_close(result[1], expected[1], what=what + ": n_tokens", rtol=1e-6)


# ---- 04.training_memory -------------------------------------------------------------------------


@exercise_test(
    "04.training_memory",
    points=1,
    hint="Model states: 2 bytes of bf16 weights + 2 of gradients + 12 of fp32 Adam state per "
    "parameter. ZeRO-1 divides the 12 by n_gpus, ZeRO-2 also the gradients, ZeRO-3 all 16.",
)
def model_states_follow_zero(ns: Namespace) -> None:
    training_memory_bytes = ns.function("training_memory_bytes")
    shape = {"n_layer": 32, "d_model": 4096, "n_head": 32, "seq_len": 2048, "batch_size": 1}
    for stage in (0, 1, 2, 3):
        expected = training_memory(7.5e9, **shape, n_gpus=64, zero_stage=stage).total
        got = training_memory_bytes(7.5e9, **shape, n_gpus=64, zero_stage=stage)
        assert_close(got, expected, what=f"7.5B parameters on 64 GPUs, ZeRO stage {stage}")


@exercise_test(
    "04.training_memory",
    points=1,
    hint="Activations: every layer keeps s·b·h·(34 + 5·a·s/h) bytes (Korthikanti et al. 2022), "
    "s = seq_len, b = batch_size, h = d_model, a = n_head; multiply by n_layer.",
)
def activations_follow_korthikanti(ns: Namespace) -> None:
    training_memory_bytes = ns.function("training_memory_bytes")
    for n_layer, d_model, n_head, seq_len, batch in [(12, 768, 12, 1024, 8), (2, 64, 4, 128, 3)]:
        shape = {
            "n_layer": n_layer,
            "d_model": d_model,
            "n_head": n_head,
            "seq_len": seq_len,
            "batch_size": batch,
        }
        expected = training_memory(1.2e8, **shape).total
        got = training_memory_bytes(1.2e8, **shape)
        assert_close(got, expected, what=f"one GPU, no ZeRO, shape {shape}")
