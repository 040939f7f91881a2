"""Switching a module to evaluation mode for a while, and back to the mode it was in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` runs the block with dropout off (``model.eval()``), then
    restores ``model.training`` as it was, even when the block raises.

    Scoring inside a training loop must not leave the model in eval mode, and scoring a model
    that is already in eval mode must not switch it to training.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
