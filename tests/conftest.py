"""Test-wide settings: offline Hugging Face, an isolated learner home, a quiet CPU."""

from __future__ import annotations

import os

# Nothing may reach a model hub: every asset comes from an installed package or the cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning: with spinning, torch slows 10-20x whenever
# another process (a notebook kernel, a torchrun worker) shares the cores. Read at torch import,
# so it must be set here, before any test module imports torch; child processes inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Learner progress written by tests goes to a temporary home, not the real one."""
    os.environ["LLMCOURSE_HOME"] = str(tmp_path_factory.mktemp("llmcourse-home"))
