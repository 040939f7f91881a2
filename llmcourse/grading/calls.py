"""Calling the learner's code on a test's cases, under a time limit and a memory budget.

Used in the learner's kernel only: by the grading driver (``driver.py``, inside the kernel that
``llmcourse grade`` starts) and by ``check()``. What comes out is wire data (``wire.py``): per
case, the value the code returned, the exception it raised, or "not attempted" (the stub's
``NotImplementedError``). Nothing here decides whether an output is right.

Time limits:
- ``call_with_alarm`` (the driver): ``SIGALRM`` in the main thread raises
  :class:`TimeLimitExceeded` into Python code, repeated every 0.5 s for code that catches it once.
  Code that catches it every time, or runs in C, is stopped from outside: the grader's worker
  interrupts the kernel and, if that does not help, kills it and goes on in a fresh kernel.
- ``call_in_fork`` (``check()`` on Linux): the call runs in a forked copy of the kernel, which is
  killed at the limit, so ``check()`` returns whatever the answer does (loop in C holding the
  GIL, swallow every exception, exit the process, allocate gigabytes) and the learner's kernel
  keeps none of it. The copy uses one PyTorch thread (OpenMP's pool does not survive a fork)
  and sends back its results and what the answer printed through a pipe.
- ``call_in_thread`` (``check()`` elsewhere, or once CUDA is initialised, which a fork cannot
  use): the call runs in a helper thread and the caller stops waiting at the limit, so
  ``check()`` returns even when the answer loops in C code that releases the GIL (a huge
  tensor operation, ``time.sleep``) or swallows every exception. A Python loop in the
  abandoned thread is then stopped by exceptions raised into it; C code runs to its end.

Memory: ``memory_budget`` lowers the process's address-space limit (``RLIMIT_AS``, Linux) to
what it maps now plus the test's budget, so an answer that allocates too much gets
``MemoryError`` (or PyTorch's allocation error) and the kernel lives on.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from llmcourse.grading import wire
from llmcourse.grading.spec import Case, ExerciseTest

MESSAGE_LIMIT = 400  # characters: enough for "expected X, got Y", never a wall of text
_OUT_OF_MEMORY = ("can't allocate memory", "not enough memory", "out of memory")


class TimeLimitExceeded(BaseException):
    """Raised into an overrunning call; a BaseException so ``except Exception`` cannot catch it."""


class ProcessEnded(Exception):
    """The forked copy running the answer ended without a result (``os._exit``, a crash)."""


def invoke(test: ExerciseTest, implementations: Sequence[Any], case: Case) -> Any:
    """What the test observes: ``probe(*implementations, *args, **kwargs)`` or the call itself."""
    if test.probe is not None:
        return test.probe(*implementations, *case.args, **case.kwargs)
    return implementations[0](*case.args, **case.kwargs)


def run_cases(
    test: ExerciseTest, implementations: Sequence[Any], cases: Sequence[Case], seed: int
) -> list[dict[str, Any]]:
    """Each case's result as wire data: ``{"returned": value}``, ``{"raised": {...}}`` or
    ``{"not_attempted": True}``. Encoding happens here, inside the caller's time limit: a
    generator the answer returns runs while it is drained."""
    results: list[dict[str, Any]] = []
    for index, case in enumerate(cases):
        with seeded(seed + index):  # code that uses the global generators is reproducible
            try:
                value = invoke(test, implementations, case)
                results.append({"returned": wire.encode(value)})
            except NotImplementedError:
                results.append({"not_attempted": True})
            except (TimeLimitExceeded, KeyboardInterrupt):
                raise
            except wire.WireError as error:
                results.append({"unsendable": str(error)[:MESSAGE_LIMIT]})
            except BaseException as error:  # the learner's code may raise anything, SystemExit too
                results.append({"raised": raised(error)})
    return results


def raised(error: BaseException) -> dict[str, Any]:
    """An exception as wire data: its type (and base classes), message and the learner's line."""
    return {
        "type": type(error).__name__,
        "mro": [cls.__name__ for cls in type(error).__mro__],
        "message": shorten(str(error)),
        "where": where(error),
        "out_of_memory": is_out_of_memory(error),
    }


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or any(s in str(error) for s in _OUT_OF_MEMORY)


def describe_exception(error: BaseException) -> str:
    """``"TypeError: message (in `rmsnorm`, line 4)"``: type, short message, the learner's line."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if is_out_of_memory(error):
        text += " (out of memory)"
    return shorten(text) + where(error)


def shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


_NOT_LEARNER_CODE = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {
        Path(__file__).resolve().parents[1],  # the llmcourse package (probes and references)
        *(sysconfig.get_paths()[key] for key in ("stdlib", "purelib", "platlib")),
    }
)


def where(error: BaseException) -> str:
    """Where the learner's code raised: the innermost frame outside the package and libraries."""
    frame = None
    traceback = error.__traceback__
    while traceback is not None:
        filename = str(Path(traceback.tb_frame.f_code.co_filename).resolve())
        if not filename.startswith(_NOT_LEARNER_CODE):
            frame = traceback
        traceback = traceback.tb_next
    if frame is None:
        return ""
    return f" (in `{frame.tb_frame.f_code.co_name}`, line {frame.tb_lineno})"


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed the global generators that are already imported; restore them afterwards."""
    numpy = sys.modules.get("numpy")
    torch = sys.modules.get("torch")
    seed %= 2**32
    saved_python = random.getstate()
    saved_numpy = numpy.random.get_state() if numpy else None
    saved_torch = torch.random.get_rng_state() if torch else None
    random.seed(seed)
    if numpy:
        numpy.random.seed(seed)
    if torch:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved_python)
        if numpy:
            numpy.random.set_state(saved_numpy)
        if torch:
            torch.random.set_rng_state(saved_torch)


@contextlib.contextmanager
def memory_budget(megabytes: int) -> Iterator[None]:
    """Let the process map at most ``megabytes`` more than now (Linux; elsewhere nothing)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        mapped = _mapped_bytes()
    except (ImportError, OSError, ValueError):
        yield
        return
    if mapped is None or sys.platform != "linux":
        yield
        return
    limit = mapped + megabytes * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _mapped_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def call_with_alarm(function: Callable[[], Any], seconds: float) -> Any:
    """Run ``function`` in this (main) thread; ``TimeLimitExceeded`` after ``seconds``."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeLimitExceeded

    previous = signal.signal(signal.SIGALRM, on_alarm)
    # The 0.5 s repeat re-raises into code that caught the first one with a bare ``except:``.
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
    start = time.monotonic()
    try:
        return function()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:  # someone else's alarm (pytest-timeout, the notebook's own) goes on
            remaining = max(outer_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, outer_interval)


STOP_ATTEMPTS_S = 60.0  # how long an abandoned thread is sent exceptions to stop it


def call_in_thread(function: Callable[[], Any], seconds: float) -> Any:
    """Run ``function`` in a helper thread; ``TimeLimitExceeded`` here after ``seconds``.

    Returns when the call returns or at the limit, whatever the call does, unless it is stuck in
    C code that holds the GIL (a catastrophic regular expression): nothing in Python runs then.
    """
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, function()))
        except BaseException as error:  # handed to the calling thread, which classifies it
            outcome.append((False, error))

    worker = threading.Thread(target=target, name="llmcourse-check", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        _stop_in_background(worker)
        raise TimeLimitExceeded
    ok, value = outcome[0]
    if ok:
        return value
    raise value


def _stop_in_background(worker: threading.Thread) -> None:
    """Raise ``TimeLimitExceeded`` into ``worker`` now and then until it ends or we give up."""
    ident = worker.ident
    if ident is None:
        return

    def stopper() -> None:
        # Often at first, then once a second: a loop that catches every exception may still
        # end up raising one in a place it does not catch.
        start = time.monotonic()
        while worker.is_alive() and time.monotonic() - start < STOP_ATTEMPTS_S:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(TimeLimitExceeded)
            )
            worker.join(0.1 if time.monotonic() - start < 5 else 1.0)
        if worker.is_alive():  # stuck in C: clear the pending exception we left behind
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)

    threading.Thread(target=stopper, name="llmcourse-check-stopper", daemon=True).start()


def can_fork() -> bool:
    """Whether ``call_in_fork`` is safe here: Linux, and CUDA not initialised (a forked child
    cannot use it)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    torch = sys.modules.get("torch")
    return not (torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())


PRINT_LIMIT = 20_000  # characters of the answer's printed output passed back from the fork


def call_in_fork(
    function: Callable[[], Any], seconds: float, memory_mb: int | None = None
) -> tuple[Any, str]:
    """Run ``function`` in a forked copy of this process; ``(its JSON result, what it printed)``.

    The copy is killed at ``seconds`` (``TimeLimitExceeded`` here) and may map ``memory_mb``
    more than this process; an exit without a result raises :class:`ProcessEnded`.
    """
    import json
    import select

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the copy: never returns
        os.close(read_end)
        _run_forked(function, write_end, memory_mb)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([read_end], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_end, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            raise TimeLimitExceeded
    finally:
        os.close(read_end)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # the copy and anything it started
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    try:
        message = json.loads(b"".join(chunks))
    except ValueError:
        raise ProcessEnded(_ended(status)) from None
    if "error" in message:
        raise ProcessEnded(str(message["error"]))
    return message["result"], str(message.get("printed", ""))


def _run_forked(function: Callable[[], Any], write_end: int, memory_mb: int | None) -> None:
    import io
    import json

    code = 0
    try:
        os.setpgid(0, 0)  # its own group: one kill reaches whatever it starts
        # Locks other threads held at the fork stay held here: write nowhere they guard.
        printed = io.StringIO()
        sys.stdout = sys.stderr = printed
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(1)  # OpenMP's thread pool did not survive the fork
        with contextlib.ExitStack() as stack:
            if memory_mb:
                stack.enter_context(memory_budget(memory_mb))
            result = function()
        payload = {"result": result, "printed": printed.getvalue()[-PRINT_LIMIT:]}
        data = json.dumps(payload, allow_nan=False).encode()
    except BaseException as error:  # never let the copy return into the caller's code
        data = json.dumps({"error": describe_exception(error)}).encode()
        code = 1
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
    finally:
        os._exit(code)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        return f"killed by {name}" + (", a crash in native code" if name != "SIGKILL" else "")
    return f"it exited with status {os.WEXITSTATUS(status)}, e.g. os._exit() or exit()"
