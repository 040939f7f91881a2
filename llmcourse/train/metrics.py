"""Numbers a training run reports about its hardware: FLOPs per token, the accelerator, MFU.

**MFU** (Chowdhery et al. 2022, App. B): model FLOPs per second over the hardware's peak;
``llmcourse.scaling.model_flops_utilization`` does the arithmetic, this module finds the peak.
Perplexity and bits per byte of a loss are ``llmcourse.eval.perplexity_from_loss`` and
``bits_per_byte_from_loss``.
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.config import ModelConfig
from llmcourse.models.counting import flops_per_token
from llmcourse.scaling import ACCELERATORS, model_flops_utilization


def model_training_flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token: PaLM's 6N + 12·L·H·Q·T for llmcourse models, 6N otherwise."""
    config = getattr(model, "config", None)
    if isinstance(config, ModelConfig):
        return float(flops_per_token(config, seq_len))
    n_params = sum(p.numel() for p in model.parameters())
    return 6.0 * n_params


def accelerator_key(device: torch.device) -> str | None:
    """The ``llmcourse.scaling.ACCELERATORS`` entry of a CUDA device, or None if unknown."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return accelerator_for_name(torch.cuda.get_device_name(device))


def accelerator_for_name(name: str) -> str | None:
    """``"NVIDIA H100 80GB HBM3"`` → ``"h100"``, ``"NVIDIA H100 PCIe"`` → ``"h100-pcie"``."""
    name = name.lower()
    matches = [key for key in ACCELERATORS if key.split("-")[0] in name]
    if "pcie" in name and any(key.endswith("-pcie") for key in matches):
        return next(key for key in matches if key.endswith("-pcie"))
    return next((key for key in matches if "-" not in key), None)


def mfu(
    tokens_per_second: float, flops_per_token: float | None, n_gpus: int, device: torch.device
) -> float | None:
    """Model FLOPs utilisation on a known GPU; None on CPUs and unknown accelerators."""
    key = accelerator_key(device)
    if key is None or tokens_per_second <= 0 or not flops_per_token:
        return None
    return model_flops_utilization(tokens_per_second, flops_per_token, n_gpus, key)
