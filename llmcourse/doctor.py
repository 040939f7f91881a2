"""``llmcourse doctor``: what this machine has, what the course needs, and how to fix the gap.

Two kinds of things are checked. The data and model *packages* (installed by pip) must be present
at the pinned versions. The *cached assets* that ``llmcourse data`` prepares once in
``llmcourse.utils.cache_dir()`` (SmolLM2 converted to safetensors, the pretrained tiny GPT, the
arithmetic SFT model) must exist **and load**: a half-deleted or corrupted cache entry is reported
as BROKEN with ``llmcourse data --rebuild``, a missing one with ``llmcourse data``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmcourse import pretrained
from llmcourse.utils.paths import cache_dir

LIBRARIES = (
    "numpy",
    "transformers",
    "tokenizers",
    "safetensors",
    "jupyterlab",
    "ipywidgets",
    "matplotlib",
    "nbclient",
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    problem: str = "MISSING"  # the word shown when not ok (BROKEN: present but does not load)


@dataclass
class Report:
    facts: list[tuple[str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)  # data and model packages
    assets: list[Check] = field(default_factory=list)  # what ``llmcourse data`` prepares

    @property
    def ok(self) -> bool:
        return all(check.ok for check in (*self.checks, *self.assets))

    def render(self) -> str:
        width = max(len(name) for name, _ in self.facts)
        lines = [f"{name.ljust(width)}  {value}" for name, value in self.facts]
        lines.append("")
        lines.append("data and model packages:")
        for check in self.checks:
            mark = "ok" if check.ok else check.problem
            lines.append(f"  {mark:<7} {check.name:<22} {check.detail}")
        if self.assets:
            lines.append("")
            lines.append("cached assets (prepared once by `llmcourse data`):")
        for check in self.assets:
            mark = "ok" if check.ok else check.problem
            lines.append(f"  {mark:<7} {check.name:<22} {check.detail}")
        everything = (*self.checks, *self.assets)
        fixes = [check.fix for check in everything if not check.ok and check.fix]
        if fixes:
            lines.append("")
            lines.append("To fix:")
            lines.extend(f"  {fix}" for fix in dict.fromkeys(fixes))
        else:
            lines.append("")
            lines.append("Everything the course needs is here.")
        return "\n".join(lines)


def report(assets: bool = True) -> Report:
    """The facts and checks; ``assets=False`` skips loading the cached assets (seconds)."""
    import torch

    from llmcourse.utils.devices import describe_device

    result = Report()
    result.facts.append(("python", f"{sys.version.split()[0]} ({sys.executable})"))
    result.facts.append(("platform", platform.platform()))
    result.facts.append(("cpu cores", f"{os.cpu_count()} (torch uses {torch.get_num_threads()})"))
    result.facts.append(("torch", torch.__version__))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpu_names = ", ".join(torch.cuda.get_device_name(i) for i in range(gpus)) or "none"
    result.facts.append(("gpus", f"{gpus} ({gpu_names})"))
    result.facts.append(("device", describe_device()))
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} MISSING")
    result.facts.append(("libraries", ", ".join(versions)))
    result.facts.append(("jupyter kernel", _kernel_status()))
    cache = cache_dir()
    result.facts.append(("cache", f"{cache} ({_size_text(_folder_size(cache))})"))

    for package in pretrained.DATA_PACKAGES:
        version = pretrained.installed_version(package.key)
        try:
            folder = pretrained.package_dir(package.key)
        except pretrained.MissingDataPackage:
            folder = None
        fix = pretrained.install_command([package])
        if folder is None or version is None:
            result.checks.append(Check(package.distribution, False, "not installed", fix))
        elif version != package.version:
            detail = f"version {version}, the course is tested with {package.version}"
            result.checks.append(Check(package.distribution, False, detail, fix))
        else:
            size = _size_text(_folder_size(folder))
            result.checks.append(Check(package.distribution, True, f"{version}, {size}"))
    if assets:
        result.assets.extend(check_asset(asset) for asset in cached_assets())
    return result


@dataclass(frozen=True)
class CachedAsset:
    """One entry of the cache: where it lives, the files it needs, how to load it, how long it
    takes to build (for the fix message)."""

    name: str
    folder: Callable[[], Path]
    files: tuple[str, ...]
    load: Callable[[Path], str]  # loads the entry (raises if it cannot); returns a detail line
    build_time: str


def cached_assets() -> tuple[CachedAsset, ...]:
    """The assets ``llmcourse data`` prepares, in the order it prepares them."""
    from llmcourse.train import rlvr, tiny_gpt

    return (
        CachedAsset(
            "smollm2 (safetensors)",
            pretrained.smollm2_cache_dir,
            ("model.safetensors", "config.json", "tokenizer.json"),
            _load_smollm2,
            "about half a minute",
        ),
        CachedAsset(
            "tiny GPT (pretrained)",
            tiny_gpt.cache_folder,
            ("model.safetensors", "history.json"),
            _load_trained,
            "about a minute",
        ),
        CachedAsset(
            "arithmetic GPT (SFT)",
            rlvr.sft_cache_folder,
            ("model.safetensors", "history.json"),
            _load_trained,
            "about a minute",
        ),
    )


def check_asset(asset: CachedAsset) -> Check:
    """Exists (every file) and loads; else what is wrong and the command that fixes it."""
    folder = asset.folder()
    missing = [name for name in asset.files if not (folder / name).is_file()]
    if len(missing) == len(asset.files):
        detail = f"not built yet ({asset.build_time} to build) in {folder}"
        return Check(asset.name, False, detail, "llmcourse data   (builds what is missing)")
    rebuild = "llmcourse data --rebuild   (deletes the cached assets and builds them again)"
    if missing:
        detail = f"incomplete: {', '.join(missing)} missing in {folder}"
        return Check(asset.name, False, detail, rebuild, "BROKEN")
    try:
        detail = asset.load(folder)
    except Exception as error:  # any failure to load is what this check reports
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        detail = f"does not load ({type(error).__name__}: {reason[:160]})"
        return Check(asset.name, False, detail, rebuild, "BROKEN")
    return Check(asset.name, True, f"{detail}, {_size_text(_folder_size(folder))}")


def remove_cached_assets() -> list[Path]:
    """Delete every cached asset's folder (``llmcourse data --rebuild``); returns those removed."""
    removed = []
    for asset in cached_assets():
        folder = asset.folder()
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(folder)
    return removed


def _load_smollm2(folder: Path) -> str:
    import json

    from llmcourse.utils.checkpoint import load_checkpoint

    config = json.loads((folder / "config.json").read_text())
    tensors = load_checkpoint(folder / "model.safetensors")  # checks every weight is finite
    pretrained.smollm2_tokenizer()
    n_params = sum(t.numel() for t in tensors.values())
    return f"{config.get('model_type', '?')}, {n_params / 1e6:.0f}M parameters, tokenizer loads"


def _load_trained(folder: Path) -> str:
    import json

    from llmcourse.train.checkpoints import model_from_checkpoint

    model = model_from_checkpoint(folder / "model.safetensors")  # checksums and finiteness
    record = json.loads((folder / "history.json").read_text())
    steps = record["history"][-1]["step"] if record.get("history") else 0
    return f"{model.num_parameters() / 1e6:.2f}M parameters, {steps} steps"


def _kernel_status() -> str:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().find_kernel_specs().get("llmcourse")
    except Exception as error:  # jupyter_client missing or broken: report, don't crash
        return f"cannot check ({error})"
    return f"llmcourse ({spec})" if spec else "llmcourse kernel not registered (run: make setup)"


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _size_text(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")
