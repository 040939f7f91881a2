"""Compute → wall-clock time → energy → CO₂: the arithmetic behind a training budget.

- Training time = C / (n_gpus × peak FLOP/s × MFU), where C ≈ 6ND (``laws.training_flops``).
- Model FLOPs utilisation (MFU, Chowdhery et al. 2022, §4.1 and Appendix B) is the share of
  the accelerators' peak that goes into the model's own FLOPs: observed tokens/s × FLOPs per
  token / (n_gpus × peak). Recomputed activations do not count, so MFU ≤ hardware utilisation.
- Energy = GPU-hours × power per GPU × PUE (power usage effectiveness: the data centre's total
  power over its IT power), and CO₂ = energy × the grid's carbon intensity. This is the
  accounting of Touvron et al. 2023 (LLaMA, §6, after Wu et al. 2022); it leaves out CPUs,
  networking, idle time and manufacturing, so it is a lower bound.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from llmcourse.scaling._checks import check_non_negative, check_positive

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Accelerator:
    """Datasheet numbers of one accelerator.

    ``peak_flops`` is dense (no 2:4 sparsity) 16-bit tensor throughput in FLOP/s: bf16 where
    the chip has it. ``power_watts`` is the maximum board power (TDP), the figure papers use
    for energy estimates. ``memory_bytes`` is on-package memory.
    """

    name: str
    peak_flops: float
    power_watts: float
    memory_bytes: float
    source: str


ACCELERATORS: dict[str, Accelerator] = {
    "v100": Accelerator(
        name="NVIDIA V100 SXM2 32GB",
        peak_flops=125e12,
        power_watts=300.0,
        memory_bytes=32e9,
        source="NVIDIA V100 datasheet: 125 TFLOP/s fp16 tensor (V100 has no bf16), 300 W",
    ),
    "a100": Accelerator(
        name="NVIDIA A100 SXM4 80GB",
        peak_flops=312e12,
        power_watts=400.0,
        memory_bytes=80e9,
        source="NVIDIA A100 datasheet: 312 TFLOP/s bf16 dense (624 with sparsity), 400 W",
    ),
    "h100": Accelerator(
        name="NVIDIA H100 SXM5 80GB",
        peak_flops=989.4e12,
        power_watts=700.0,
        memory_bytes=80e9,
        source="NVIDIA H100 datasheet: 1,979 TFLOP/s bf16 with 2:4 sparsity, so 989.4 dense; 700 W",
    ),
    "h100-pcie": Accelerator(
        name="NVIDIA H100 PCIe 80GB",
        peak_flops=756e12,
        power_watts=350.0,
        memory_bytes=80e9,
        source="NVIDIA H100 datasheet: 1,513 TFLOP/s bf16 with sparsity, so 756 dense; 350 W",
    ),
    "h200": Accelerator(
        name="NVIDIA H200 SXM 141GB",
        peak_flops=989.4e12,
        power_watts=700.0,
        memory_bytes=141e9,
        source="NVIDIA H200 datasheet: H100 SXM tensor cores with 141 GB HBM3e, up to 700 W",
    ),
    "tpu-v4": Accelerator(
        name="Google TPU v4",
        peak_flops=275e12,
        power_watts=192.0,
        memory_bytes=32e9,
        source=(
            "Google Cloud TPU v4 documentation: 275 TFLOP/s bf16, 192 W maximum; the peak PaLM "
            "divides by for its MFU (Chowdhery et al. 2022, Appendix B)"
        ),
    ),
    "mi300x": Accelerator(
        name="AMD Instinct MI300X",
        peak_flops=1307.4e12,
        power_watts=750.0,
        memory_bytes=192e9,
        source="AMD Instinct MI300X datasheet: 1,307.4 TFLOP/s bf16 dense, 750 W",
    ),
}


def get_accelerator(name: str | Accelerator) -> Accelerator:
    """Look an accelerator up by key ("a100", "h100", ...); an ``Accelerator`` passes through."""
    if isinstance(name, Accelerator):
        return name
    if name not in ACCELERATORS:
        close = difflib.get_close_matches(str(name), ACCELERATORS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown accelerator {name!r}; known: {', '.join(ACCELERATORS)}.{hint} "
            "Or pass Accelerator(name, peak_flops, power_watts, memory_bytes, source)."
        )
    return ACCELERATORS[name]


def flops_per_token(
    n_params: float,
    n_layer: int = 0,
    n_head: int = 0,
    head_dim: int = 0,
    seq_len: int = 0,
    *,
    training: bool = True,
) -> float:
    """Training FLOPs per token, 6N + 12·L·H·Q·T (Chowdhery et al. 2022, Appendix B).

    6N covers the matrix multiplies with weights (forward 2N, backward 4N); 12·L·H·Q·T adds the
    attention scores and their use (L layers, H heads of size Q, sequence length T). Leave the
    shape at 0 for the 6N estimate that ``training_flops`` uses. ``training=False`` counts the
    forward pass alone, 2N + 4·L·H·Q·T. For a ``ModelConfig``,
    ``llmcourse.models.counting.flops_per_token(config)`` finds N and the shape and calls this.
    """
    check_positive(n_params=n_params)
    check_non_negative(n_layer=n_layer, n_head=n_head, head_dim=head_dim, seq_len=seq_len)
    per_weight, per_attention = (6.0, 12.0) if training else (2.0, 4.0)
    return per_weight * n_params + per_attention * n_layer * n_head * head_dim * seq_len


def model_flops_utilization(
    tokens_per_second: float,
    flops_per_token: float,
    n_gpus: int,
    accelerator: str | Accelerator = "a100",
) -> float:
    """MFU = tokens/s × FLOPs per token / (n_gpus × peak FLOP/s) (Chowdhery et al. 2022, §4.1)."""
    check_positive(
        tokens_per_second=tokens_per_second, flops_per_token=flops_per_token, n_gpus=n_gpus
    )
    peak = get_accelerator(accelerator).peak_flops
    return tokens_per_second * flops_per_token / (n_gpus * peak)


def training_time(
    compute_flops: float,
    n_gpus: int,
    accelerator: str | Accelerator = "a100",
    mfu: float = 0.4,
) -> float:
    """Wall-clock seconds to spend ``compute_flops``: C / (n_gpus × peak × MFU).

    Large dense runs reach an MFU of 0.3-0.55: GPT-3 21.3%, Gopher 32.5%, Megatron-Turing NLG
    30.2%, PaLM 46.2% (Chowdhery et al. 2022, Table 3). Divide by ``SECONDS_PER_DAY`` for days.
    """
    check_positive(compute_flops=compute_flops, n_gpus=n_gpus)
    if not 0.0 < mfu <= 1.0:
        raise ValueError(f"mfu is a fraction of peak throughput in (0, 1], got {mfu!r}.")
    return compute_flops / (n_gpus * get_accelerator(accelerator).peak_flops * mfu)


def gpu_hours(seconds: float, n_gpus: int) -> float:
    """Accelerator-hours of a run: wall-clock hours × number of accelerators."""
    check_positive(seconds=seconds, n_gpus=n_gpus)
    return seconds * n_gpus / SECONDS_PER_HOUR


# The US national average Touvron et al. 2023 (LLaMA, Table 15) use, after Wu et al. 2022.
US_AVERAGE_KG_CO2_PER_KWH = 0.385


def training_energy_kwh(accelerator_hours: float, power_watts: float, pue: float = 1.1) -> float:
    """Energy in kWh = GPU-hours × power per GPU × PUE (Touvron et al. 2023, §6).

    PUE 1.1 is the value LLaMA's estimate uses for a modern data centre; 1.0 counts the GPUs
    alone.
    """
    check_positive(accelerator_hours=accelerator_hours, power_watts=power_watts)
    if pue < 1.0:
        raise ValueError(f"pue (facility power / IT power) is at least 1, got {pue!r}.")
    return accelerator_hours * power_watts / 1000.0 * pue


def carbon_tonnes(energy_kwh: float, kg_co2_per_kwh: float = US_AVERAGE_KG_CO2_PER_KWH) -> float:
    """Tonnes of CO₂-equivalent = energy (kWh) × grid carbon intensity (kg CO₂eq per kWh) / 1000.

    Grid intensity varies by an order of magnitude between regions: LLaMA's estimate uses the
    US average, 0.385; BLOOM was trained on France's nuclear-heavy grid at 0.057 (Luccioni et
    al. 2022). Where a model is trained matters as much as how long.
    """
    check_positive(energy_kwh=energy_kwh)
    if kg_co2_per_kwh < 0:
        raise ValueError(f"kg_co2_per_kwh cannot be negative, got {kg_co2_per_kwh!r}.")
    return energy_kwh * kg_co2_per_kwh / 1000.0
