"""The kernel side of ``llmcourse grade``: call the learner's answers on the grader's inputs.

The grader's worker runs the notebook in a kernel, then, for each test, executes::

    __import__("llmcourse.grading.driver").grading.driver.run("/scratch/requests/7.json")

and reads the reply through a user expression (``driver.reply()``), which arrives on the
kernel's shell channel with the execute reply (iopub messages may be dropped under load; shell
replies are not). A request names the test and carries its inputs in the wire format; the reply
carries, per input, what the answer returned or raised, in the wire format, and nothing else:
no verdict is made here. Everything in this module runs in the learner's process and could be
patched by the notebook; the worst that does is send wrong outputs, which score nothing.

During a call the learner's ``print`` output is discarded (a flood of it must not delay the
reply), a ``SIGALRM`` stops Python loops at the test's time limit, and the address space may
grow by the test's memory budget only.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from llmcourse.grading import wire
from llmcourse.grading.calls import (
    TimeLimitExceeded,
    call_in_thread,
    call_with_alarm,
    memory_budget,
    run_cases,
)
from llmcourse.grading.spec import Case, find_test, tests_for

REPLY_MIMETYPE = "application/vnd.llmcourse.reply+json"
MAX_REPLY_CHARS = 64 * 2**20  # a reply larger than this is refused (an answer returning GBs)
_build = wire.Builder()
_last: dict[str, Any] = {}


def prepare(lesson: str) -> None:
    """Import the lesson's exercises (and what their probes use) before the notebook runs."""
    tests_for(lesson)
    import numpy  # noqa: F401  (imported inside a timed call, it would count against the learner)


def run(request_path: str) -> None:
    """Answer one request; the reply waits in this module for :func:`reply`."""
    global _last
    _last = {}
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    start = time.perf_counter()
    _last = {"nonce": request["nonce"], **_answer(request)}
    _last["seconds"] = round(time.perf_counter() - start, 4)


def _answer(request: Mapping[str, Any]) -> dict[str, Any]:
    test = find_test(request["test"])
    namespace = _user_namespace()
    implementations = []
    for name in test.answer:
        if name not in namespace:
            return {"status": "missing", "detail": f"Define `{name}` in the notebook."}
        value = namespace[name]
        if test.exercise.kind != "value" and not callable(value):
            kind = "a class" if test.exercise.kind == "class" else "a function"
            return {
                "status": "missing",
                "detail": f"`{name}` should be {kind}, but it is a {type(value).__name__}.",
            }
        implementations.append(value)
    decoded = [wire.decode(case, _build) for case in request["cases"]]
    cases = [Case(tuple(args), dict(kwargs)) for args, kwargs in decoded]
    # SIGALRM stops Python loops in the main thread; Windows has none, and there the worker's
    # interrupt and kill at the limit do the stopping.
    call_with_limit = call_with_alarm if hasattr(signal, "SIGALRM") else call_in_thread
    try:
        with _quiet(), memory_budget(int(request["memory_mb"])):
            outputs = call_with_limit(
                lambda: run_cases(test, implementations, cases, int(request["seed"])),
                float(request["timeout"]),
            )
    except TimeLimitExceeded:
        return {"status": "timed out", "detail": f"did not finish within {request['timeout']:g} s"}
    except KeyboardInterrupt:
        return {"status": "timed out", "detail": "interrupted at the time limit"}
    text = json.dumps(outputs, separators=(",", ":"), allow_nan=False)
    if len(text) > MAX_REPLY_CHARS:
        return {
            "status": "too large",
            "detail": f"the outputs take {len(text) / 2**20:.0f} MiB; at most "
            f"{MAX_REPLY_CHARS / 2**20:.0f} MiB may come back",
        }
    return {"status": "returned", "outputs": outputs}


class _Reply:
    """The last reply, shown to the user-expression formatter as our mimetype."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {REPLY_MIMETYPE: json.dumps(self.payload, separators=(",", ":"))}


def reply() -> _Reply:
    """The reply to the last :func:`run` (the worker asks for it as a user expression)."""
    return _Reply(_last)


def _user_namespace() -> dict[str, Any]:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("the grading driver runs inside an IPython kernel")
    return shell.user_ns


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    sink = _Discard()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield
