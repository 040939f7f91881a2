"""Which device and dtype to compute on.

One rule for the whole course: CUDA if present, else Apple's MPS, else the CPU; the environment
variable ``LLMCOURSE_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) overrides it. Training runs
under bf16 autocast on CUDA GPUs that support it and in plain fp32 elsewhere: CPU autocast gains
little on a laptop and makes numbers harder to compare with the lessons.
"""

from __future__ import annotations

import os

import torch


def device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to use: ``prefer``, else ``$LLMCOURSE_DEVICE``, else cuda > mps > cpu.

    Raises ``ValueError`` when the requested device is not available here, instead of failing
    later inside a kernel with a less helpful message.
    """
    requested = prefer if prefer is not None else os.environ.get("LLMCOURSE_DEVICE")
    if requested:
        chosen = torch.device(requested)
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"Device {requested!r} was requested but CUDA is not available in this PyTorch "
                f"build ({torch.__version__}). Unset LLMCOURSE_DEVICE or install a CUDA build."
            )
        if chosen.type == "mps" and not _mps_available():
            raise ValueError(f"Device {requested!r} was requested but MPS is not available here.")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(dev: torch.device | str | None = None) -> torch.dtype | None:
    """bf16 on CUDA GPUs that support it, fp16 on older GPUs, ``None`` (plain fp32) elsewhere."""
    dev = device(dev)
    if dev.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def describe_device(dev: torch.device | str | None = None) -> str:
    """One line for humans, e.g. ``cuda:0 (NVIDIA H100, 80 GiB)`` or ``cpu (2 threads)``."""
    dev = device(dev)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    if dev.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(dev)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
