"""llmcourse.scaling reproduces published numbers; each test names the table it checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.config import ModelConfig
from llmcourse.scaling import (
    CHINCHILLA,
    CHINCHILLA_PRINTED,
    CHINCHILLA_TABLE_1_RUNS,
    EPOCH,
    FITS,
    KAPLAN,
    METHODS,
    PF_DAY,
    SECONDS_PER_DAY,
    activation_bytes_per_layer,
    carbon_tonnes,
    chinchilla_loss,
    compute_optimal,
    fit_power_law,
    fit_power_law_with_offset,
    flops_per_token,
    get_accelerator,
    gpu_hours,
    isoflop_curve,
    kaplan_compute_loss,
    kaplan_loss,
    model_flops_utilization,
    model_state_bytes,
    training_energy_kwh,
    training_flops,
    training_memory,
    training_memory_for_config,
    training_time,
)
from llmcourse.scaling.laws import APPROACH_1_COEFFICIENT, APPROACH_1_EXPONENT

GOPHER_FLOPS = 5.76e23  # Hoffmann et al. 2022, Table 3: Gopher's (and Chinchilla's) budget

# Hoffmann et al. 2022, Table 3 (Approach 1): parameters, FLOPs, tokens as printed.
CHINCHILLA_TABLE_3 = [
    (400e6, 1.92e19, "8.0", 1e9),
    (1e9, 1.21e20, "20.2", 1e9),
    (10e9, 1.23e22, "205.1", 1e9),
    (67e9, 5.76e23, "1.5", 1e12),
    (175e9, 3.85e24, "3.7", 1e12),
    (280e9, 9.90e24, "5.9", 1e12),
    (520e9, 3.43e25, "11.0", 1e12),
    (1e12, 1.27e26, "21.2", 1e12),
    (10e12, 1.30e28, "216.2", 1e12),
]


def _printed_unit(text: str) -> float:
    """One unit in the last printed digit: '20.2' -> 0.1, '1.88' -> 0.01, '4011' -> 1."""
    return 10.0 ** -len(text.split(".")[1]) if "." in text else 1.0


# --- compute: C = 6ND ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_params", "flops", "tokens", "unit"),
    [row for row in CHINCHILLA_TABLE_3 if row[0] != 67e9],
)
def test_six_nd_reproduces_chinchilla_table_3_flops(n_params, flops, tokens, unit):
    """Hoffmann et al. 2022, Table 3: the FLOPs column is 6·N·D of the other two columns,
    within the rounding of the printed token count. (The 67B row prints 1.5T tokens, though
    its own 5.76e23 FLOPs need 1.43T, so it is left out.)"""
    n_tokens = float(tokens) * unit
    half_unit = _printed_unit(tokens) / 2 * unit
    low = training_flops(n_params, n_tokens - half_unit)
    high = training_flops(n_params, n_tokens + half_unit)
    assert low * 0.995 <= flops <= high * 1.005


def test_gpt3_compute_in_pf_days():
    """Brown et al. 2020, Table D.1: GPT-3 175B (174.6B parameters, 300B tokens) took 3.64e3
    PF-days; Kaplan et al. 2020 §1.3 defines 1 PF-day = 8.64e19 FLOPs."""
    assert PF_DAY == 8.64e19
    assert training_flops(174.6e9, 300e9) / PF_DAY == pytest.approx(3.64e3, rel=0.005)


# --- Chinchilla Approach 1 ---------------------------------------------------------------------


@pytest.mark.parametrize(("n_params", "flops", "tokens", "unit"), CHINCHILLA_TABLE_3)
def test_approach_1_reproduces_table_3(n_params, flops, tokens, unit):
    """Hoffmann et al. 2022, Table 3: compute-optimal parameters and tokens for each budget.

    Parameters within 1.5%; tokens within the printed rounding (or 0.5%), except the 67B row
    whose printed 1.5T disagrees with its own 6ND (1.43T), so it gets 6%.
    """
    optimum = compute_optimal(flops, method="chinchilla-1")
    assert optimum.n_params == pytest.approx(n_params, rel=0.015)
    printed_tokens = float(tokens) * unit
    tolerance = max(_printed_unit(tokens) / 2 * unit, 0.005 * printed_tokens)
    if n_params == 67e9:
        tolerance = 0.06 * printed_tokens
    assert abs(optimum.n_tokens - printed_tokens) <= tolerance


def test_approach_1_constants_refit_from_table_3():
    """The module's Approach-1 line is the least-squares fit through Table 3 (Hoffmann et al.
    2022), and its exponents are Table 2's a = 0.50, b = 0.50."""
    flops = [row[1] for row in CHINCHILLA_TABLE_3]
    params = [row[0] for row in CHINCHILLA_TABLE_3]
    tokens = [float(row[2]) * row[3] for row in CHINCHILLA_TABLE_3]
    n_law = fit_power_law(flops, params)
    assert n_law.exponent == pytest.approx(APPROACH_1_EXPONENT, abs=5e-5)
    assert n_law.coefficient == pytest.approx(APPROACH_1_COEFFICIENT, rel=5e-4)
    assert round(n_law.exponent, 2) == 0.50
    assert round(fit_power_law(flops, tokens).exponent, 2) == 0.50


def test_about_twenty_tokens_per_parameter():
    """Hoffmann et al. 2022: Chinchilla, 70B parameters on 1.4T tokens, is compute-optimal at
    Gopher's budget, i.e. ~20 tokens per parameter; Table 3 keeps that ratio for 1e19-1e28."""
    assert 19.5 <= compute_optimal(GOPHER_FLOPS, "chinchilla-1").tokens_per_parameter <= 21.5
    ratios = compute_optimal(np.geomspace(1e19, 1e28, 10), "chinchilla-1").tokens_per_parameter
    assert np.all((ratios > 19) & (ratios < 23))


# --- Chinchilla Approach 3 and the Epoch refit ---------------------------------------------


def test_approach_3_exponents_match_table_2():
    """Hoffmann et al. 2022, Table 2: Approach 3 gives a = 0.46, b = 0.54. a = β/(α+β) from the
    unrounded fit reproduces both; the values printed in §3.3 (α = 0.34, β = 0.28) give 0.45,
    the rounding bias Besiroglu et al. 2024 point out."""
    assert (round(CHINCHILLA.a, 2), round(CHINCHILLA.b, 2)) == (0.46, 0.54)
    assert round(CHINCHILLA_PRINTED.a, 2) == 0.45
    assert CHINCHILLA.a + CHINCHILLA.b == pytest.approx(1.0)


def test_approach_3_puts_gophers_budget_at_40b():
    """Hoffmann et al. 2022 (§3.3-3.4): Approach 3 gives a ~40B-parameter optimum for Gopher's
    5.76e23 FLOPs, against 67B from Approach 1 (Table 3). The printed constants give 32B."""
    assert compute_optimal(GOPHER_FLOPS, "chinchilla-3").n_params == pytest.approx(40e9, rel=0.02)
    assert CHINCHILLA_PRINTED.compute_optimal(GOPHER_FLOPS)[0] == pytest.approx(32e9, rel=0.02)


def test_epoch_refit_agrees_with_approaches_1_and_2():
    """Besiroglu et al. 2024: the refit is compatible with Approaches 1 and 2, unlike the
    original Approach 3. Its a lies in Approach 2's interval (0.462, 0.534) of Hoffmann et al.
    Table 2, and its Gopher-budget optimum is within 10% of Approach 1's."""
    assert 0.462 < EPOCH.a < 0.534
    assert not 0.488 < CHINCHILLA.a < 0.502  # outside Approach 1's interval: the inconsistency
    epoch_n = compute_optimal(GOPHER_FLOPS, "epoch").n_params
    approach_1_n = compute_optimal(GOPHER_FLOPS, "chinchilla-1").n_params
    assert epoch_n == pytest.approx(approach_1_n, rel=0.10)
    assert 15 < compute_optimal(GOPHER_FLOPS, "epoch").tokens_per_parameter < 25


@pytest.mark.parametrize("fit", list(FITS))
@pytest.mark.parametrize("flops", [1e18, 1e21, GOPHER_FLOPS, 1e26])
def test_closed_form_optimum_is_the_isoflop_minimum(fit, flops):
    """Hoffmann et al. 2022, eq. 4 against brute force: the closed-form N_opt is where the
    isoFLOP profile L(N, C/6N) bottoms out."""
    sizes = np.geomspace(1e6, 1e14, 200_001)
    numerical = sizes[np.argmin(isoflop_curve(flops, sizes, fit=fit))]
    closed_form, tokens = FITS[fit].compute_optimal(flops)
    assert numerical == pytest.approx(closed_form, rel=2e-4)
    assert 6 * closed_form * tokens == pytest.approx(flops)


def test_chinchilla_beats_gopher_at_the_same_compute():
    """Hoffmann et al. 2022, §4: Chinchilla (70B, 1.4T tokens) outperforms Gopher (280B, 300B)
    on about the same budget; every fit predicts the lower loss, and its own optimum for
    Chinchilla's 6ND lower still."""
    for fit in FITS:
        chinchilla = chinchilla_loss(70e9, 1.4e12, fit=fit)
        gopher = chinchilla_loss(280e9, 300e9, fit=fit)
        optimum = FITS[fit].loss(*FITS[fit].compute_optimal(training_flops(70e9, 1.4e12)))
        assert optimum <= chinchilla < gopher


def test_table_1_models_were_oversized_for_their_compute():
    """Hoffmann et al. 2022, Table 1 and §1: the large models of the day were "significantly
    undertrained": each is more than twice Approach 1's optimum for its own 6ND, while
    Chinchilla is within 3% of it."""
    for run in CHINCHILLA_TABLE_1_RUNS:
        optimum = compute_optimal(training_flops(run.n_params, run.n_tokens), "chinchilla-1")
        if run.name.startswith("Chinchilla"):
            assert optimum.n_params == pytest.approx(run.n_params, rel=0.03)
        else:
            assert run.n_params > 2 * optimum.n_params, run.name


# --- Kaplan et al. 2020 --------------------------------------------------------------------


def test_kaplan_doubling_parameters():
    """Kaplan et al. 2020, §1.2: doubling N multiplies the converged loss by 2^-α_N = 0.95."""
    assert kaplan_loss(2e9) / kaplan_loss(1e9) == pytest.approx(0.95, abs=0.005)


@pytest.mark.parametrize("n_params", [1e7, 1e8, 1e9])
def test_kaplan_data_needed_to_avoid_overfitting(n_params):
    """Kaplan et al. 2020, eq. 4.4: D ≳ 5e3·N^0.74 keeps the overfitting penalty
    L(N, D)/L(N, ∞) - 1 at the 0.02 seed-to-seed noise level (eq. 1.5, Table 2 constants)."""
    n_tokens = 5e3 * n_params**0.74
    penalty = kaplan_loss(n_params, n_tokens) / kaplan_loss(n_params) - 1
    assert 0.015 < penalty < 0.025


def test_kaplan_theory_exponent():
    """Kaplan et al. 2020, eq. B.7: α_C = 1/(1/α_S + 1/α_B + 1/α_N) ≈ 0.052 (Table 5 inputs)."""
    assert round(KAPLAN.predicted_compute_exponent, 3) == 0.052


def test_kaplan_data_at_critical_batch_size():
    """Kaplan et al. 2020, Table 6: D_opt = 2e10·C_min^0.27 tokens (PF-days) at the critical
    batch size, where C = 2·C_min (§6.3), so D = 2·C_min/(6·N_opt)."""
    c_min = np.geomspace(1e-3, 1e3, 7) * PF_DAY
    optimum = compute_optimal(c_min, "kaplan")
    tokens_at_critical_batch = 2 * c_min / (6 * optimum.n_params)
    coefficient = tokens_at_critical_batch / (c_min / PF_DAY) ** 0.27
    assert np.allclose(coefficient, coefficient[0])  # the same power law at every budget
    assert 1.5e10 <= coefficient[0] < 2.5e10  # 2e10 to the one digit printed


def test_kaplan_intersection_point():
    """Kaplan et al. 2020, eq. 6.8: the laws meet near C* ~ 1e4 PF-days, N* ~ 1e12 parameters,
    L* ~ 1.7 nats per token."""
    optimum = compute_optimal(1e4 * PF_DAY, "kaplan")
    assert 0.5e12 < optimum.n_params < 2e12
    assert optimum.loss == pytest.approx(1.7, abs=0.05)
    assert not optimum.counts_embeddings
    assert kaplan_compute_loss(1e4 * PF_DAY) == optimum.loss


# --- compute_optimal contract ----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    log_flops=st.floats(min_value=15, max_value=30),
    method=st.sampled_from(METHODS),
)
def test_allocations_spend_exactly_the_budget(log_flops, method):
    flops = 10.0**log_flops
    optimum = compute_optimal(flops, method)
    assert 6 * optimum.n_params * optimum.n_tokens == pytest.approx(flops, rel=1e-12)
    bigger = compute_optimal(flops * 10, method)
    assert bigger.n_params > optimum.n_params and bigger.n_tokens > optimum.n_tokens
    assert bigger.loss < optimum.loss


def test_arrays_in_arrays_out():
    budgets = np.array([1e20, 1e22, 1e24])
    batch = compute_optimal(budgets, "epoch")
    assert isinstance(batch.n_params, np.ndarray) and batch.n_params.shape == (3,)
    for index, budget in enumerate(budgets):
        single = compute_optimal(float(budget), "epoch")
        assert isinstance(single.n_params, float)
        assert batch.n_params[index] == pytest.approx(single.n_params)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: compute_optimal(1e21, method="chinchilla"), ValueError, "chinchilla-1"),
        (lambda: compute_optimal(-1.0), ValueError, "must be positive"),
        (lambda: compute_optimal("1e21"), TypeError, "must be a number"),
        (lambda: chinchilla_loss(1e9, 2e10, fit="hoffmann"), ValueError, "epoch"),
        (lambda: training_flops(1e9, 0), ValueError, "n_tokens must be positive"),
        (lambda: isoflop_curve(1e21, np.array([1e9, np.nan])), ValueError, "n_params"),
    ],
)
def test_bad_input_says_what_to_change(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- hardware: MFU, time, energy -----------------------------------------------------------


def test_palm_model_flops_utilization():
    """Chowdhery et al. 2022, §4.1 and Appendix B: PaLM 540B (540.35B parameters, 118 layers,
    48 heads of 256, sequence 2048) at 238.3K tokens/s on 6144 TPU v4 chips has an MFU of
    45.7% without the attention term and 46.2% with it."""
    with_attention = flops_per_token(540.35e9, n_layer=118, n_head=48, head_dim=256, seq_len=2048)
    without = flops_per_token(540.35e9)
    assert round(model_flops_utilization(238.3e3, without, 6144, "tpu-v4"), 3) == 0.457
    assert round(model_flops_utilization(238.3e3, with_attention, 6144, "tpu-v4"), 3) == 0.462
    forward = flops_per_token(540.35e9, 118, 48, 256, 2048, training=False)
    assert forward * 3 == pytest.approx(with_attention)  # backward = 2 x forward


def test_megatron_turing_model_flops_utilization():
    """Chowdhery et al. 2022, §4.1: MT-NLG 530B at 65.43K tokens/s on 2240 A100s has an MFU of
    29.7% without self-attention (29.77%, printed truncated)."""
    mfu = model_flops_utilization(65.43e3, flops_per_token(530e9), 2240, "a100")
    assert 0.297 <= mfu < 0.298


def test_llama_65b_training_time_and_gpu_hours():
    """Touvron et al. 2023a (LLaMA), §2.4: 380 tokens/s/GPU on 2048 A100-80GB make 1.4T tokens
    take about 21 days; Table 15 lists 1,022,362 GPU-hours for LLaMA-65B."""
    n_params, n_gpus = 65.2e9, 2048
    mfu = model_flops_utilization(380 * n_gpus, flops_per_token(n_params), n_gpus, "a100")
    seconds = training_time(training_flops(n_params, 1.4e12), n_gpus, "a100", mfu=mfu)
    assert round(seconds / SECONDS_PER_DAY) == 21
    assert gpu_hours(seconds, n_gpus) == pytest.approx(1_022_362, rel=0.01)


@pytest.mark.parametrize(
    ("hours", "printed_mwh", "printed_tonnes"),
    [(82_432, 36, 14), (135_168, 59, 23), (530_432, 233, 90), (1_022_362, 449, 173)],
)
def test_llama_carbon_footprint(hours, printed_mwh, printed_tonnes):
    """Touvron et al. 2023a (LLaMA), Table 15: 400 W A100s, PUE 1.1, 0.385 kg CO₂eq/kWh.
    MWh are printed truncated (449.8 → 449), tonnes rounded."""
    energy = training_energy_kwh(hours, 400, pue=1.1)
    assert printed_mwh <= energy / 1000 < printed_mwh + 1
    assert carbon_tonnes(energy) == pytest.approx(printed_tonnes, abs=0.5)


@pytest.mark.parametrize(
    ("hours", "watts", "printed_tonnes"),
    [
        (184_320, 400, 31.22),
        (368_640, 400, 62.44),
        (1_038_336, 350, 153.90),
        (1_720_320, 400, 291.42),
    ],
)
def test_llama_2_carbon_footprint(hours, watts, printed_tonnes):
    """Touvron et al. 2023b (Llama 2), Table 2: tCO₂eq per model. LLaMA 1's PUE 1.1 and
    0.385 kg/kWh reproduce every row to the hundredth (printed truncated: 62.4476 → 62.44)."""
    tonnes = carbon_tonnes(training_energy_kwh(hours, watts, pue=1.1), 0.385)
    assert printed_tonnes <= tonnes < printed_tonnes + 0.01


def test_training_time_is_compute_over_throughput():
    seconds = training_time(1e24, 1000, "h100", mfu=0.5)
    assert seconds == pytest.approx(1e24 / (1000 * 989.4e12 * 0.5))
    assert training_time(1e24, 2000, "h100", mfu=0.5) == pytest.approx(seconds / 2)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: get_accelerator("a10"), ValueError, "Did you mean 'a100'"),
        (lambda: training_time(1e24, 8, "h100", mfu=40), ValueError, r"\(0, 1\]"),
        (lambda: training_time(1e24, 0), ValueError, "n_gpus must be positive"),
        (lambda: training_energy_kwh(10, 400, pue=0.9), ValueError, "at least 1"),
        (lambda: flops_per_token(1e9, n_layer=-1), ValueError, "non-negative"),
        (lambda: model_flops_utilization("fast", 6e9, 8), TypeError, "must be a number"),
    ],
)
def test_hardware_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- memory: ZeRO and activations ----------------------------------------------------------


def test_zero_figure_1():
    """Rajbhandari et al. 2020 (ZeRO), Figure 1: 7.5B parameters, 64-way data parallelism,
    K = 12: 120 GB per GPU for the baseline, 31.4 / 16.6 / 1.9 GB for stages 1 / 2 / 3."""
    per_stage = [model_state_bytes(7.5e9, 64, stage).total / 1e9 for stage in range(4)]
    assert [round(gb, 1) for gb in per_stage] == [120.0, 31.4, 16.6, 1.9]


# Rajbhandari et al. 2020 (ZeRO), Table 1: per-device GB for P_os, P_os+g, P_os+g+p.
ZERO_TABLE_1 = {
    7.5e9: {
        1: ("120", "120", "120"),
        4: ("52.5", "41.3", "30"),
        16: ("35.6", "21.6", "7.5"),
        64: ("31.4", "16.6", "1.88"),
        256: ("30.4", "15.4", "0.47"),
        1024: ("30.1", "15.1", "0.12"),
    },
    128e9: {
        1: ("2048", "2048", "2048"),
        4: ("896", "704", "512"),
        16: ("608", "368", "128"),
        64: ("536", "284", "32"),
        256: ("518", "263", "8"),
        1024: ("513", "257", "2"),
    },
    1e12: {
        1: ("16000", "16000", "16000"),
        4: ("7000", "5500", "4000"),
        16: ("4750", "2875", "1000"),
        64: ("4187", "2218", "250"),
        256: ("4046", "2054", "62.5"),
        1024: ("4011", "2013", "15.6"),
    },
}


@pytest.mark.parametrize("n_params", list(ZERO_TABLE_1))
def test_zero_table_1(n_params):
    """Rajbhandari et al. 2020 (ZeRO), Table 1, every cell to one unit of its last printed
    digit (the table truncates some cells: 4011.7 → 4011)."""
    for n_gpus, row in ZERO_TABLE_1[n_params].items():
        for stage, printed in zip((1, 2, 3), row, strict=True):
            computed = model_state_bytes(n_params, n_gpus, stage).total / 1e9
            assert abs(computed - float(printed)) <= _printed_unit(printed), (n_gpus, stage)


# Korthikanti et al. 2022, evaluated GPT models: heads, hidden size, layers (sequence 2048, t = 8).
KORTHIKANTI_MODELS = {"175B": (96, 12288, 96), "530B": (128, 20480, 105), "1T": (160, 25600, 128)}


@pytest.mark.parametrize("name", list(KORTHIKANTI_MODELS))
def test_sequence_parallel_and_selective_recompute_save_5x(name):
    """Korthikanti et al. 2022, abstract and Table 2: sequence parallelism with selective
    recomputation cuts activation memory about 5x against tensor parallelism alone."""
    heads, hidden, _ = KORTHIKANTI_MODELS[name]
    tensor_only = activation_bytes_per_layer(2048, 1, hidden, heads, tensor_parallel=8)
    both = activation_bytes_per_layer(
        2048, 1, hidden, heads, "selective", tensor_parallel=8, sequence_parallel=True
    )
    assert 4.5 < tensor_only / both < 5.5


def test_activation_rows_of_korthikanti_table_2():
    """Korthikanti et al. 2022, Table 2: without parallelism a layer keeps sbh(34 + 5as/h)
    bytes; the tensor-parallel rows reduce to it at t = 1; selective keeps 34·sbh, full 2·sbh."""
    s, b, h, a = 2048, 4, 6144, 64
    sbh = s * b * h
    assert activation_bytes_per_layer(s, b, h, a) == sbh * (34 + 5 * a * s / h)
    assert activation_bytes_per_layer(s, b, h, a, sequence_parallel=True) == sbh * (
        34 + 5 * a * s / h
    )
    assert activation_bytes_per_layer(s, b, h, a, "selective") == 34 * sbh
    assert activation_bytes_per_layer(s, b, h, a, "full") == 2 * sbh
    t = 8
    assert activation_bytes_per_layer(s, b, h, a, tensor_parallel=t) == pytest.approx(
        sbh * (10 + 24 / t + 5 * a * s / (h * t))
    )
    assert activation_bytes_per_layer(
        s, b, h, a, tensor_parallel=t, sequence_parallel=True
    ) == pytest.approx(sbh / t * (34 + 5 * a * s / h))


def test_training_memory_adds_states_and_activations():
    memory = training_memory(1.5e9, 48, 1600, 25, 1024, 8, n_gpus=8, zero_stage=2)
    states = model_state_bytes(1.5e9, 8, 2)
    per_layer = activation_bytes_per_layer(1024, 8, 1600, 25)
    assert memory.model_states == pytest.approx(states.total)
    assert memory.activations == pytest.approx(48 * per_layer)
    assert memory.total == pytest.approx(states.total + 48 * per_layer)
    assert memory.gigabytes()["total"] == pytest.approx(memory.total / 1e9)
    assert "optimizer_states" in str(memory)
    full = training_memory(1.5e9, 48, 1600, 25, 1024, 8, n_gpus=8, zero_stage=2, recompute="full")
    assert full.activations < memory.activations and full.model_states == memory.model_states


def test_training_memory_for_config_reads_the_shape():
    config = ModelConfig(name="gpt2-ish", n_layer=12, d_model=768, n_head=12, context_length=1024)
    from_config = training_memory_for_config(config, 124e6, batch_size=4, zero_stage=1, n_gpus=2)
    by_hand = training_memory(124e6, 12, 768, 12, 1024, 4, n_gpus=2, zero_stage=1)
    assert from_config == by_hand
    shorter = training_memory_for_config(config, 124e6, batch_size=4, seq_len=256)
    assert shorter.activations < by_hand.activations


@settings(max_examples=50, deadline=None)
@given(
    n_params=st.floats(min_value=1e6, max_value=1e13),
    n_gpus=st.integers(min_value=1, max_value=4096),
)
def test_each_zero_stage_saves_memory(n_params, n_gpus):
    totals = [model_state_bytes(n_params, n_gpus, stage).total for stage in range(4)]
    assert totals[0] == pytest.approx(16 * n_params)
    assert all(later <= earlier for earlier, later in itertools.pairwise(totals))
    assert totals[3] == pytest.approx(16 * n_params / n_gpus)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: model_state_bytes(7e9, 8, zero_stage=4), ValueError, "zero_stage"),
        (lambda: model_state_bytes(7e9, 0), ValueError, "n_gpus must be at least 1"),
        (lambda: activation_bytes_per_layer(1024, 1, 768, 12, "partial"), ValueError, "selective"),
        (lambda: activation_bytes_per_layer(1024.5, 1, 768, 12), TypeError, "integer"),
        (
            lambda: training_memory_for_config(
                ModelConfig(architecture="encoder-decoder"), 2e8, batch_size=1
            ),
            ValueError,
            "encoder-decoder",
        ),
        (lambda: training_memory_for_config({"n_layer": 12}, 1e8, 1), TypeError, "ModelConfig"),
    ],
)
def test_memory_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- fitting ---------------------------------------------------------------------------------


def test_fit_power_law_recovers_a_clean_law():
    x = np.geomspace(1e3, 1e9, 12)
    law = fit_power_law(x, 3.5 * x**-0.07)
    assert law.coefficient == pytest.approx(3.5, rel=1e-9)
    assert law.exponent == pytest.approx(-0.07, rel=1e-9)
    assert law(1e6) == pytest.approx(3.5 * 1e6**-0.07)


def test_fit_with_offset_recovers_chinchillas_model_term():
    """Noise-free L(N) = E + A/N^α with Hoffmann et al. 2022's constants comes back exactly."""
    sizes = np.geomspace(1e7, 1e11, 9)
    losses = CHINCHILLA.E + CHINCHILLA.A * sizes**-CHINCHILLA.alpha
    law = fit_power_law_with_offset(sizes, losses)
    assert law.irreducible == pytest.approx(CHINCHILLA.E, rel=1e-6)
    assert law.coefficient == pytest.approx(CHINCHILLA.A, rel=1e-5)
    assert law.exponent == pytest.approx(CHINCHILLA.alpha, rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    floor=st.floats(min_value=0.5, max_value=3.0),
    amplitude=st.floats(min_value=1.0, max_value=1000.0),
    exponent=st.floats(min_value=0.05, max_value=1.0),
)
def test_fit_with_offset_recovers_any_clean_law(floor, amplitude, exponent):
    x = np.geomspace(1e3, 1e9, 10)
    law = fit_power_law_with_offset(x, floor + amplitude * x**-exponent)
    assert law.exponent == pytest.approx(exponent, rel=1e-4)
    assert law.irreducible == pytest.approx(floor, rel=1e-4, abs=1e-6)
    assert law(x) == pytest.approx(floor + amplitude * x**-exponent, rel=1e-6)


def test_fit_with_offset_matches_scipy_curve_fit():
    """Parity with scipy.optimize.curve_fit, which minimises the same squared error, on a noisy
    mini scaling experiment of the size a learner runs on a laptop."""
    from scipy import optimize

    rng = np.random.default_rng(0)
    sizes = np.geomspace(2e4, 5e6, 10)
    losses = 1.9 + 60.0 * sizes**-0.35 + rng.normal(0, 0.01, sizes.size)
    ours = fit_power_law_with_offset(sizes, losses)

    def model(x, floor, amplitude, exponent):
        return floor + amplitude * x**-exponent

    (floor, amplitude, exponent), _ = optimize.curve_fit(
        model, sizes, losses, p0=(1.5, 30.0, 0.3), maxfev=20_000
    )
    assert ours.irreducible == pytest.approx(floor, rel=1e-4)
    assert ours.exponent == pytest.approx(exponent, rel=1e-4)
    assert ours.coefficient == pytest.approx(amplitude, rel=1e-3)
    residual = losses - ours(sizes)
    assert np.sqrt(np.mean(residual**2)) < 0.02


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fit_power_law([1.0, 2.0], [1.0, 0.0]), "positive"),
        (lambda: fit_power_law([1.0], [1.0]), "at least 2"),
        (lambda: fit_power_law([1.0, 2.0, 3.0], [1.0, 2.0]), "same length"),
        (lambda: fit_power_law_with_offset([1, 2, 3], [3, 2, 1]), "at least 4"),
        (lambda: fit_power_law_with_offset([2, 2, 2, 2], [3, 2, 1, 0]), "x to vary"),
        (lambda: fit_power_law_with_offset([1, 2, 3, 4], [3, 2, 1, 0], (1, 0.5)), "low < high"),
    ],
)
def test_fit_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
