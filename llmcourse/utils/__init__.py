"""Devices, seeds, paths, checkpoints and logging: what every other part of llmcourse stands on.

- ``devices``: ``device()`` (cuda > mps > cpu, ``LLMCOURSE_DEVICE``), ``autocast_dtype``;
- ``seed``: ``seed_everything``, ``rng_state`` / ``set_rng_state``;
- ``paths``: ``cache_dir``, ``home_dir``, ``repo_root``;
- ``checkpoint``: atomic safetensors + JSON checkpoints (``save_checkpoint``, ``load_checkpoint``);
- ``logging`` (``get_logger``), ``modes`` (``eval_mode``), ``runlog`` (``RunLog``, JSON lines),
  ``distributed`` (``init_distributed``, ``DistributedContext``), ``lazy`` (``lazy_exports``),
  ``checks`` (``check_int``, ``check_number``, ...: argument checks with one message format).

Names are loaded on first use (PEP 562), so ``llmcourse.utils.paths`` is usable without paying
for ``import torch`` (the grader and the CLI start faster that way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmcourse.utils.lazy import lazy_exports

_EXPORTS = {
    "load_checkpoint": "checkpoint",
    "restore_training_state": "checkpoint",
    "save_checkpoint": "checkpoint",
    "training_state": "checkpoint",
    "autocast_dtype": "devices",
    "describe_device": "devices",
    "device": "devices",
    "get_logger": "logging",
    "eval_mode": "modes",
    "cache_dir": "paths",
    "home_dir": "paths",
    "repo_root": "paths",
    "rng_state": "seed",
    "seed_everything": "seed",
    "set_rng_state": "seed",
}
__all__ = [
    "autocast_dtype",
    "cache_dir",
    "describe_device",
    "device",
    "eval_mode",
    "get_logger",
    "home_dir",
    "load_checkpoint",
    "repo_root",
    "restore_training_state",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "training_state",
]

if TYPE_CHECKING:
    from llmcourse.utils.checkpoint import (
        load_checkpoint,
        restore_training_state,
        save_checkpoint,
        training_state,
    )
    from llmcourse.utils.devices import autocast_dtype, describe_device, device
    from llmcourse.utils.logging import get_logger
    from llmcourse.utils.modes import eval_mode
    from llmcourse.utils.paths import cache_dir, home_dir, repo_root
    from llmcourse.utils.seed import rng_state, seed_everything, set_rng_state


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
