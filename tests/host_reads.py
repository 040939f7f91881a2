"""A probe for host syncs: counts tensor operations that read data back to Python.

On an accelerator each such read waits for every queued kernel to finish
(``torch.cuda.set_sync_debug_mode`` flags them); on the CPU there is nothing to wait for, so
tests count them instead, at two levels:

- Python calls that hand a tensor's data to Python (``int(t)``, ``bool(t)``, ``t.tolist()``,
  ...), seen by a ``TorchFunctionMode``;
- kernels whose output depends on the data (``nonzero``, boolean-mask indexing, ``unique``,
  one-argument ``torch.where``, ...): the host must learn the output's size before it can go on.
  PyTorch tags them ``data_dependent_output`` / ``dynamic_output_shape``; a
  ``TorchDispatchMode`` sees every kernel call with its tags.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

PYTHON_READS = {
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
}
_DATA_DEPENDENT = (torch.Tag.data_dependent_output, torch.Tag.dynamic_output_shape)
_UNTAGGED = {torch.ops.aten.where.default, torch.ops.aten.is_nonzero.default}  # nonzero inside


class _Probe:
    """One read counted once: kernels run on behalf of a Python-level read are not counted
    again (``int(t)`` runs ``aten._local_scalar_dense``)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.in_python_read = False


class _PythonReads(TorchFunctionMode):
    def __init__(self, probe: _Probe) -> None:
        super().__init__()
        self.probe = probe

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name not in PYTHON_READS or self.probe.in_python_read:
            return func(*args, **(kwargs or {}))
        self.probe.calls.append(name)
        self.probe.in_python_read = True
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.probe.in_python_read = False


class _DataDependentKernels(TorchDispatchMode):
    def __init__(self, probe: _Probe) -> None:
        super().__init__()
        self.probe = probe

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tagged = any(tag in func.tags for tag in _DATA_DEPENDENT) or func in _UNTAGGED
        if func is torch.ops.aten.index.Tensor:  # only a boolean mask makes the size unknown
            tagged = any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in args[1])
        if tagged and not self.probe.in_python_read:
            self.probe.calls.append(str(func))
        return func(*args, **(kwargs or {}))


def host_reads(fn: Callable[[], Any]) -> list[str]:
    """The host reads ``fn()`` makes, in order (Python calls and data-dependent kernels)."""
    probe = _Probe()
    with _PythonReads(probe), _DataDependentKernels(probe):
        fn()
    return probe.calls
