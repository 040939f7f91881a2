"""Stopping a run cleanly: a signal asks the loop to finish its step, checkpoint and return.

Killing a training process mid-step loses everything since the last checkpoint; schedulers
(Slurm, Kubernetes, ``torchrun`` itself) send SIGTERM first and SIGKILL some seconds later, and
a notebook's "interrupt kernel" sends SIGINT. ``StopRequest`` turns both into a flag the loop
checks between steps. Under several processes every process must stop at the same step (or the
others would wait forever in the next all-reduce), so ``agreed`` takes the maximum of the flags.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from llmcourse.utils.distributed import DistributedContext

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Why the loop should stop: ``"SIGINT"``, ``"SIGTERM"``, ``"target"`` or None (go on)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    @property
    def interrupted(self) -> bool:
        """Stopped by a signal (rather than by reaching the target loss, or not at all)."""
        return self.reason in ("SIGINT", "SIGTERM")

    @contextmanager
    def signals_handled(self) -> Iterator[None]:
        """While inside, SIGINT/SIGTERM set ``reason``; a second Ctrl-C stops at once.

        Handlers can only be installed from the main thread; elsewhere signals keep their
        default behaviour.
        """
        self.reason = None
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.reason == name == "SIGINT":
                raise KeyboardInterrupt
            self.reason = name

        previous = {s: signal.signal(s, request) for s in SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def agreed(self, ctx: DistributedContext) -> bool:
        """Whether any process was asked to stop (every process gets the same answer)."""
        flag = self.reason is not None
        if ctx.is_distributed:
            tensor = torch.tensor([int(flag)], device=ctx.device)
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
            flag = bool(tensor.item())
        return flag
