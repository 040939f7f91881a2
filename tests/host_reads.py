"""A probe for host syncs: counts tensor operations that read data back to Python.

On an accelerator each such read waits for every queued kernel to finish
(``torch.cuda.set_sync_debug_mode`` flags them); on the CPU there is nothing to wait for, so
tests count them instead, through a ``TorchFunctionMode`` that sees every tensor operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.overrides import TorchFunctionMode

HOST_READS = {
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
    "__repr__",
    "__format__",
    "item",
    "tolist",
    "numpy",
    "cpu",
    "nonzero",
    "unique",
    "masked_select",
    "equal",
    "allclose",
    "is_nonzero",
}


class HostReads(TorchFunctionMode):
    """Counts tensor operations that read data back to the host while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def host_reads(fn: Callable[[], Any]) -> list[str]:
    """The host reads ``fn()`` makes, in order."""
    with HostReads() as probe:
        fn()
    return probe.calls
