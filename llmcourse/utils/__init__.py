"""Devices, seeds, paths, checkpoints and logging: what every other part of llmcourse stands on."""

from llmcourse.utils.checkpoint import (
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
    training_state,
)
from llmcourse.utils.device import autocast_dtype, describe_device, device
from llmcourse.utils.logging import get_logger
from llmcourse.utils.paths import cache_dir, home_dir, repo_root
from llmcourse.utils.seed import rng_state, seed_everything, set_rng_state

__all__ = [
    "autocast_dtype",
    "cache_dir",
    "describe_device",
    "device",
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
