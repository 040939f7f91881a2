"""Processes the grader starts: a memory ceiling for kernels, and killing a process tree.

A submission's kernel runs under ``RLIMIT_AS`` (its address space, which bounds what it can
allocate; children inherit it), so a memory bomb ends in ``MemoryError`` instead of the
operating system's out-of-memory killer. The limit is set by a tiny wrapper that ``exec``s the
kernel command, because ``preexec_fn`` is unsafe in a process that already runs threads. Windows
has no ``resource`` module and macOS does not enforce ``RLIMIT_AS``: there the kernel runs
without a memory ceiling.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import psutil

# Runs before the kernel: no llmcourse import, so it adds only an interpreter start (~20 ms).
_LIMIT_THEN_EXEC = """\
import os, resource, sys
limit = int(sys.argv[1])
try:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
except (ValueError, OSError):
    pass  # a platform that refuses the limit (macOS may): run the kernel without one
os.execv(sys.argv[2], sys.argv[2:])
"""


def memory_limited(argv: list[str], limit_bytes: int | None) -> list[str]:
    """``argv`` wrapped so that the process it starts cannot map more than ``limit_bytes``."""
    if not limit_bytes or sys.platform == "win32":
        return list(argv)
    return [sys.executable, "-S", "-c", _LIMIT_THEN_EXEC, str(int(limit_bytes)), *argv]


def kill_tree(pid: int, created: float | None = None, *, timeout: float = 5.0) -> None:
    """Kill ``pid``, its process group and every descendant still reachable; wait for them.

    ``created`` (``psutil.Process(pid).create_time()`` taken while the process was surely ours)
    guards against a reused pid once the process has been reaped: a process with that pid but
    another start time is someone else's, and is left alone.
    """
    try:
        root = psutil.Process(pid)
        if created is not None and root.create_time() != created:
            return
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        processes = []
    if hasattr(os, "killpg"):
        # The grader starts workers and kernels as session leaders, so the group id is the pid;
        # this also reaches orphaned children, which are no longer anyone's descendants (a pid
        # is not reused while its process group still has members).
        with contextlib.suppress(OSError):  # no such group: already gone
            os.killpg(pid, signal.SIGKILL)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=timeout)
