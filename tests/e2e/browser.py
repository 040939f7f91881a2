"""Which Chromium the browser tests drive, and why they cannot run when they cannot.

The tests drive the distribution's Chromium (Debian's ``chromium`` package, which
``tools/bootstrap.py test`` installs with apt-get when it runs as root) through Playwright's
Python package; ``playwright install`` and its downloaded browsers are never used.
``LLMCOURSE_CHROMIUM`` points at another Chromium or Chrome binary.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in CI containers; the pages are our own JupyterLab
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEFAULT_CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package


def _executable(path: str | None) -> Path | None:
    return Path(path) if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def find_chromium() -> Path | None:
    """``$LLMCOURSE_CHROMIUM`` if set, else ``/usr/bin/chromium``, else ``chromium`` on PATH."""
    override = os.environ.get("LLMCOURSE_CHROMIUM")
    if override:
        return _executable(override)
    return _executable(DEFAULT_CHROMIUM) or _executable(shutil.which("chromium"))


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here (a sentence saying how to fix it), or None."""
    if sys.platform != "linux":
        return f"they run on Linux only (this is {sys.platform})"
    if importlib.util.find_spec("playwright") is None:
        return (
            "the Python package 'playwright' is missing: install the dev extra "
            "(.venv/bin/pip install -e '.[dev]', or run make test)"
        )
    if find_chromium() is not None:
        return None
    override = os.environ.get("LLMCOURSE_CHROMIUM")
    if override:
        return (
            f"LLMCOURSE_CHROMIUM={override} is not an executable file: point it at a Chromium "
            f"or Chrome binary, or unset it to use {DEFAULT_CHROMIUM}"
        )
    return (
        f"no Chromium at {DEFAULT_CHROMIUM} or on PATH: `make test` installs Debian's chromium "
        "with apt-get when it runs as root on Debian; otherwise run "
        "`sudo apt-get install chromium`, or set LLMCOURSE_CHROMIUM to a Chromium or Chrome binary"
    )
