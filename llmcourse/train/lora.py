"""LoRA: fine-tune a few low-rank matrices next to frozen weights (Hu et al. 2021).

    h = W₀ x + (α / r) · B A x        W₀: (out, in) frozen;  A: (r, in);  B: (out, r);  r ≪ in, out

The update ΔW = (α/r)·BA has rank at most ``r``, so a 576×576 projection trains 2·576·r numbers
instead of 576². ``A`` starts random (Kaiming-uniform, as ``nn.Linear`` and ``peft`` do) and
``B`` at zero, so the wrapped model starts exactly equal to the pretrained one. ``α/r`` keeps
the update's scale roughly independent of the rank (Hu et al. 2021, §4.1). Dropout acts on the
adapter's input only. After training, ``merge`` folds ΔW into W₀: inference then costs nothing
extra, and ``unmerge`` takes it out again.

``apply_lora(model, ["q_proj", "v_proj"], r=8)`` wraps every ``nn.Linear`` whose name ends in
one of the targets (the paper adapts W_q and W_v), freezes everything else, and errors clearly
when a target matches nothing. Adapters save to and load from safetensors on their own:
kilobytes instead of the whole model. ``peft`` (Hugging Face) gives the same outputs for the
same weights (``tests/test_lora.py``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from llmcourse.utils.checks import check_int, check_number, check_type


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``r`` update (see the module docstring)."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}.")
        _check_adapter(r, alpha, dropout)
        self.base, self.r, self.alpha = base, r, alpha
        self.scaling = alpha / r
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=weight.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """ΔW = (α/r)·B A, shaped like the base weight ``(out, in)``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in)`` → ``(..., out)``."""
        out = self.base(x)
        if self.merged:
            return out
        return out + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """W₀ ← W₀ + ΔW: same outputs, no adapter cost at inference."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W₀ ← W₀ − ΔW: back to the frozen weights plus a separate adapter."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def _check_adapter(r: int, alpha: float, dropout: float) -> None:
    check_int("the LoRA rank r", r, 1)
    check_number("the LoRA scale alpha", alpha, 0, low_open=True)  # α/r multiplies B·A
    check_number("the LoRA dropout", dropout, 0, 1, high_open=True)


def linear_names(model: nn.Module) -> list[str]:
    """The distinct last name parts of ``model``'s ``nn.Linear`` modules (the valid targets)."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if _is_linear(m)})


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear)


def apply_lora(
    model: nn.Module,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> nn.Module:
    """Wrap every ``nn.Linear`` named ``…<target>`` in ``LoRALinear``; freeze the rest (in place).

    Returns ``model``. Raises ``ValueError`` for a target that matches no ``nn.Linear`` (the
    message lists the names that exist) and for a linear layer whose weight is tied to another
    module (merging would change both, e.g. a tied ``lm_head`` and its embedding).
    """
    check_type("model", model, nn.Module, "an nn.Module")
    _check_adapter(r, alpha, dropout)  # before anything is frozen or replaced
    if isinstance(target_modules, str):
        target_modules = [target_modules]
    if not target_modules:
        raise ValueError("target_modules is empty: name at least one linear layer, e.g. 'q_proj'.")
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("The model already has LoRA adapters; merge_lora or reload it first.")
    matches = {
        name: module
        for name, module in model.named_modules()
        if _is_linear(module) and name.rsplit(".", 1)[-1] in target_modules
    }
    found = {name.rsplit(".", 1)[-1] for name in matches}
    missing = [t for t in target_modules if t not in found]
    if missing:
        raise ValueError(
            f"No nn.Linear module named {missing} in {type(model).__name__}; its linear layers "
            f"are named {linear_names(model)}."
        )
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules():
        for parameter in module.parameters(recurse=False):
            owners.setdefault(id(parameter), []).append(name)
    for name, module in matches.items():
        if len(owners[id(module.weight)]) > 1:
            raise ValueError(
                f"{name}.weight is shared with {owners[id(module.weight)]} (tied weights): an "
                "adapter merged into it would change them too. Leave it out of target_modules."
            )
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name, module in matches.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(module, r, alpha, dropout))
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every ``LoRALinear`` of ``model`` by its module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def _require_lora(model: nn.Module) -> dict[str, LoRALinear]:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("The model has no LoRA adapters; call apply_lora(model, ...) first.")
    return layers


def merge_lora(model: nn.Module, unwrap: bool = False) -> nn.Module:
    """Merge every adapter into its base weight; ``unwrap=True`` also puts the plain
    ``nn.Linear`` back (the adapters are gone for good: save them first)."""
    for name, layer in _require_lora(model).items():
        layer.merge()
        if unwrap:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, layer.base)
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Take every merged adapter back out of its base weight."""
    for layer in _require_lora(model).values():
        layer.unmerge()
    return model


def save_lora(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write only the adapters (``…lora_A``, ``…lora_B``) and their settings to safetensors."""
    from safetensors.torch import save_file

    layers = _require_lora(model)
    if any(layer.merged for layer in layers.values()):
        raise ValueError("Unmerge the adapters (unmerge_lora) before saving them.")
    tensors = {}
    for name, layer in layers.items():
        tensors[f"{name}.lora_A"] = layer.lora_A.detach().contiguous()
        tensors[f"{name}.lora_B"] = layer.lora_B.detach().contiguous()
    first = next(iter(layers.values()))
    settings = {
        "r": first.r,
        "alpha": first.alpha,
        "target_modules": sorted({name.rsplit(".", 1)[-1] for name in layers}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"lora": json.dumps(settings)})
    return path


def load_lora(model: nn.Module, path: str | os.PathLike[str], *, check: bool = True) -> nn.Module:
    """Load adapters saved by ``save_lora``; wraps ``model`` first if it has none yet.

    Adapters of another rank or layer width are refused before any is copied; with ``check``
    (the default) so are adapters holding NaN or infinity (a diverged run)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "lora" not in metadata:
        raise ValueError(f"{path} holds no LoRA settings; was it written by save_lora?")
    settings = json.loads(metadata["lora"])
    if not lora_layers(model):
        apply_lora(model, settings["target_modules"], settings["r"], settings["alpha"])
    layers = lora_layers(model)
    tensors = load_file(str(path))
    expected = {f"{name}.{part}" for name in layers for part in ("lora_A", "lora_B")}
    if set(tensors) != expected:
        raise ValueError(
            f"{path} does not fit this model: adapters for {sorted(set(tensors) - expected)[:3]} "
            f"have no layer, layers {sorted(expected - set(tensors))[:3]} have no adapter."
        )
    for name, layer in layers.items():
        for part in ("lora_A", "lora_B"):
            saved, current = tensors[f"{name}.{part}"], getattr(layer, part)
            if saved.shape != current.shape:
                raise ValueError(
                    f"{path}: {name}.{part} is {tuple(saved.shape)} but this model's adapter is "
                    f"{tuple(current.shape)} (r={layer.r}); load into a model wrapped with the "
                    f"saved settings {settings}."
                )
            if check and not bool(torch.isfinite(saved).all()):
                raise ValueError(
                    f"{path}: {name}.{part} holds NaN or infinite values (the run diverged); "
                    "pass check=False to load it anyway."
                )
    with torch.no_grad():
        for name, layer in layers.items():
            layer.lora_A.copy_(tensors[f"{name}.lora_A"])
            layer.lora_B.copy_(tensors[f"{name}.lora_B"])
    return model


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (tied weights counted once)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def training_state_bytes(model: nn.Module, optimizer_slots: int = 2) -> dict[str, int]:
    """Bytes of weights, gradients and optimizer state (AdamW keeps ``2`` slots per trained
    parameter: its two moments). Activations come on top and grow with batch and length."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return {
        "weights": weights,
        "gradients": trained,
        "optimizer": optimizer_slots * trained,
        "total": weights + (1 + optimizer_slots) * trained,
    }
