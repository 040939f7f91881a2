"""Scaling arithmetic: laws, compute, time, memory, energy and power-law fits.

Pure arithmetic on floats and numpy arrays (no torch), so it imports in milliseconds.

- ``laws``: ``training_flops`` (6ND), Kaplan et al. 2020, Chinchilla (Hoffmann et al. 2022)
  Approaches 1 and 3, the Epoch AI refit (Besiroglu et al. 2024), ``compute_optimal``,
  ``chinchilla_loss``, ``isoflop_curve``.
- ``hardware``: accelerator datasheets, ``training_time``, ``model_flops_utilization``,
  ``training_energy_kwh``, ``carbon_tonnes``.
- ``memory``: ``training_memory`` (ZeRO stages 0-3, activations with/without recomputation).
- ``fitting``: ``fit_power_law`` and ``fit_power_law_with_offset`` for your own runs.
- ``published``: the large runs of Hoffmann et al. 2022, Table 1 (Gopher, MT-NLG, ...).

Quick start (numbers for Gopher's and Chinchilla's budget, 5.76e23 FLOPs)::

    compute_optimal(5.76e23).n_params                     # 6.78e10: Approach 1, ~20 tokens/param
    compute_optimal(5.76e23, method="chinchilla-3").n_params   # 4.03e10: Approach 3
    chinchilla_loss(70e9, 1.4e12)                         # 1.92 nats/token for Chinchilla
    training_time(training_flops(70e9, 1.4e12), n_gpus=1024, accelerator="h100", mfu=0.4)
    training_memory(7.5e9, 32, 4096, 32, 2048, 1, n_gpus=64, zero_stage=3, recompute="full")
"""

from llmcourse.scaling.fitting import (
    OffsetPowerLaw,
    PowerLaw,
    fit_power_law,
    fit_power_law_with_offset,
)
from llmcourse.scaling.hardware import (
    ACCELERATORS,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    US_AVERAGE_KG_CO2_PER_KWH,
    Accelerator,
    carbon_tonnes,
    flops_per_token,
    get_accelerator,
    gpu_hours,
    model_flops_utilization,
    training_energy_kwh,
    training_time,
)
from llmcourse.scaling.laws import (
    CHINCHILLA,
    CHINCHILLA_PRINTED,
    EPOCH,
    FITS,
    KAPLAN,
    METHODS,
    PF_DAY,
    ComputeOptimal,
    KaplanLaws,
    ParametricFit,
    chinchilla_loss,
    compute_optimal,
    isoflop_curve,
    kaplan_compute_loss,
    kaplan_loss,
    training_flops,
)
from llmcourse.scaling.memory import (
    TrainingMemory,
    activation_bytes_per_layer,
    model_state_bytes,
    training_memory,
    training_memory_for_config,
)
from llmcourse.scaling.published import CHINCHILLA_TABLE_1_RUNS, PublishedRun

__all__ = [
    "ACCELERATORS",
    "CHINCHILLA",
    "CHINCHILLA_PRINTED",
    "CHINCHILLA_TABLE_1_RUNS",
    "EPOCH",
    "FITS",
    "KAPLAN",
    "METHODS",
    "PF_DAY",
    "SECONDS_PER_DAY",
    "SECONDS_PER_HOUR",
    "US_AVERAGE_KG_CO2_PER_KWH",
    "Accelerator",
    "ComputeOptimal",
    "KaplanLaws",
    "OffsetPowerLaw",
    "ParametricFit",
    "PowerLaw",
    "PublishedRun",
    "TrainingMemory",
    "activation_bytes_per_layer",
    "carbon_tonnes",
    "chinchilla_loss",
    "compute_optimal",
    "fit_power_law",
    "fit_power_law_with_offset",
    "flops_per_token",
    "get_accelerator",
    "gpu_hours",
    "isoflop_curve",
    "kaplan_compute_loss",
    "kaplan_loss",
    "model_flops_utilization",
    "model_state_bytes",
    "training_energy_kwh",
    "training_flops",
    "training_memory",
    "training_memory_for_config",
    "training_time",
]
