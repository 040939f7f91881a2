"""Console logging that prints once per job, not once per process."""

from __future__ import annotations

import logging
import os


def get_logger(name: str = "llmcourse") -> logging.Logger:
    """A logger that writes ``[llmcourse] message`` lines on rank 0 only.

    Under ``torchrun`` every process runs the same script; ``RANK`` tells them apart, and only
    rank 0 should talk (the others log warnings and errors).
    """
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        logger.addHandler(handler)
        rank = int(os.environ.get("RANK", "0"))
        logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
        logger.propagate = False
    return logger
