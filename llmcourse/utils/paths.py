"""Where llmcourse keeps files: a cache for converted assets, a home for learner progress."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """Converted pretrained assets: ``$LLMCOURSE_CACHE``, else ``~/.cache/llmcourse``."""
    override = os.environ.get("LLMCOURSE_CACHE")
    path = Path(override).expanduser() if override else Path.home() / ".cache" / "llmcourse"
    path.mkdir(parents=True, exist_ok=True)
    return path


def home_dir() -> Path:
    """Learner state (progress database): ``$LLMCOURSE_HOME``, else the platform's data dir."""
    override = os.environ.get("LLMCOURSE_HOME")
    path = (
        Path(override).expanduser() if override else Path(platformdirs.user_data_dir("llmcourse"))
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path | None:
    """The course checkout (the folder holding ``lessons/``), or ``None`` for a plain install.

    Looks next to the package first (editable install), then in the working directory and its
    parents, so ``llmcourse lab`` works from anywhere inside a clone.
    """
    candidates = [Path(__file__).resolve().parents[2], *Path.cwd().resolve().parents]
    candidates.insert(1, Path.cwd().resolve())
    for candidate in candidates:
        if (candidate / "lessons").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    return None
