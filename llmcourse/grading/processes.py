"""Processes the grader starts: a memory ceiling for kernels, and making sure none outlives it.

**Memory.** A submission's kernel runs under ``RLIMIT_AS`` (its address space, which bounds
what it can allocate; children inherit it), so a memory bomb ends in ``MemoryError`` instead of
the operating system's out-of-memory killer. The hard limit is the ceiling; the soft limit,
lower, is what the notebook's own cells may use, and the grading driver raises it by each test's
budget while that test runs. A tiny wrapper sets the limits and ``exec``s the kernel command,
because ``preexec_fn`` is unsafe in a process that already runs threads. Windows has no
``resource`` module and macOS does not enforce ``RLIMIT_AS``: there the worker's watch on the
kernel's resident memory is what stops a bomb.

**Cleanup.** No process a notebook starts may outlive grading:

- Linux: the worker and, while it grades, the grader itself are *child subreapers*
  (``prctl(PR_SET_CHILD_SUBREAPER)``), so a process whose parent dies (a double fork, a
  ``setsid`` daemon) is re-parented to them instead of to ``init``, stays a descendant, and is
  killed with the rest of the tree (:func:`kill_descendants`);
- everywhere: process groups are killed (the worker and each kernel lead their own), then every
  process whose environment carries the notebook's marker (:func:`kill_marked`);
- macOS and Windows have no subreaper: a process that both leaves its session and clears its
  environment can outlive grading there.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Iterator

import psutil

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>

# Runs before the kernel: no llmcourse import, so it adds only an interpreter start (~20 ms).
_LIMIT_THEN_EXEC = """\
import os, resource, sys
hard_limit, soft_limit = int(sys.argv[1]), int(sys.argv[2])
try:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        hard_limit = min(hard_limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (min(soft_limit, hard_limit), hard_limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
except (ValueError, OSError):
    pass  # a platform that refuses the limit (macOS may): run the kernel without one
os.execv(sys.argv[3], sys.argv[3:])
"""


def memory_limited(
    argv: list[str], limit_bytes: int | None, soft_bytes: int | None = None
) -> list[str]:
    """``argv`` wrapped so the process it starts cannot map more than ``limit_bytes`` (hard),
    and not more than ``soft_bytes`` until it raises its own soft limit."""
    if not limit_bytes or sys.platform == "win32":
        return list(argv)
    soft = min(soft_bytes or limit_bytes, limit_bytes)
    return [
        sys.executable,
        "-S",
        "-c",
        _LIMIT_THEN_EXEC,
        str(int(limit_bytes)),
        str(int(soft)),
        *argv,
    ]


def become_subreaper(enable: bool = True) -> bool:
    """Make orphaned descendants re-parent to this process (Linux); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if enable else 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


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
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    if hasattr(os, "killpg"):
        # The grader starts workers and kernels as session leaders, so the group id is the pid;
        # this also reaches orphaned children, which are no longer anyone's descendants (a pid
        # is not reused while its process group still has members).
        with contextlib.suppress(OSError):  # no such group: already gone
            os.killpg(pid, signal.SIGKILL)
    _kill_all(family, timeout)


def kill_descendants(
    *, created_after: float | None = None, spare: set[int] | None = None, timeout: float = 5.0
) -> None:
    """Kill every descendant of this process (those re-parented to it as a subreaper too),
    optionally only those started after ``created_after``; direct children are reaped."""
    try:
        family = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    chosen = []
    for process in family:
        if spare and process.pid in spare:
            continue
        try:
            if created_after is not None and process.create_time() < created_after:
                continue
        except psutil.Error:
            continue
        chosen.append(process)
    for process in chosen:  # their groups first: members that already left the tree
        with contextlib.suppress(OSError, psutil.Error):
            if os.name == "posix" and os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signal.SIGKILL)
    _kill_all(chosen, timeout)


def kill_marked(name: str, value: str, *, timeout: float = 5.0) -> None:
    """Kill every process of this user whose environment has ``name=value`` (the notebook's
    marker, inherited by everything it started unless the environment was cleared)."""
    me = os.getpid()
    marked = []
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            if process.environ().get(name) == value:
                marked.append(process)
        except (psutil.Error, OSError):
            continue
    _kill_all(marked, timeout)


def _kill_all(family: list[psutil.Process], timeout: float) -> None:
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.kill()
    # Reaps those that are our own children; waits for the others to disappear.
    psutil.wait_procs(family, timeout=timeout)


@contextlib.contextmanager
def reaping_orphans() -> Iterator[None]:
    """While grading: adopt orphans (Linux subreaper); afterwards kill and reap every process
    started meanwhile that is still a descendant, and stop adopting."""
    start = time.time() - 1.0  # create times have a coarse resolution
    adopted = become_subreaper(True)
    try:
        yield
    finally:
        kill_descendants(created_after=start)
        if adopted:
            become_subreaper(False)
