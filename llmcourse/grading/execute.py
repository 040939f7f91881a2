"""The grader's worker: run one submission in a kernel, then call its answers on the inputs.

``llmcourse grade`` starts this module (``python -m llmcourse.grading.execute SPEC.json``) once
per notebook, in a session of its own. The worker decides nothing: it relays the grader's
requests to the kernel and writes what came back to a JSON file, which the grader reads as
untrusted data (only outputs, compared there with references the grader computes itself). It

1. becomes a child subreaper (Linux), so that processes the notebook starts and orphans
   (``setsid``, double forks) stay its descendants, and kills them all before it exits;
2. starts a kernel (kernelspec ``llmcourse``, else this interpreter) under an address-space
   ceiling, whose soft limit keeps ``test reserve`` MiB free for the tests, and watches the
   kernel's resident memory as well (the ceiling is not enforced on macOS and Windows);
3. runs a setup cell that imports the lesson's exercises (``driver.prepare``), then every code
   cell of the notebook in order, continuing past errors; each cell has a time limit, all cells
   together have another. A cell that ignores the interrupt at its limit, kills the kernel or
   blows the memory ceiling is skipped and the notebook re-run from the top in a new kernel;
4. runs one driver call per test (``driver.run``) with the test's time limit. Past it, the
   kernel is interrupted; if it does not answer within a few seconds (a loop in C code, one that
   catches every exception) or dies or blows the ceiling, that test alone fails with the reason,
   and the remaining tests go on in a fresh kernel that re-runs the notebook's cells (all cells
   the first run executed, minus the ones skipped), so earned points stay earned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import psutil

from llmcourse.grading import processes
from llmcourse.grading.files import write_atomically
from llmcourse.grading.grade import ExecutionSpec

# nbformat validates with jsonschema, which imports rfc3987_syntax when installed; building that
# grammar costs ~1.2 s per worker, and notebooks never contain the IRIs it checks.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

import nbformat  # noqa: E402
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

MAX_NOTEBOOK_KERNELS = 3  # kernels a notebook's own cells may use up (skipping a bad cell each)
INTERRUPT_GRACE_S = 5.0  # how long an interrupted cell or call may take to stop
KERNEL_START_S = 60.0
SETUP_S = 120.0
POLL_S = 0.25
_DRIVER = "__import__('llmcourse.grading.driver').grading.driver"
SETUP_CODE = _DRIVER + ".prepare({!r})"
CALL_CODE = _DRIVER + ".run({!r})"
REPLY_EXPRESSION = _DRIVER + ".reply()"
REPLY_MIMETYPE = "application/vnd.llmcourse.reply+json"


class _LimitedKernelSpecs(KernelSpecManager):
    """The named kernelspec (or this interpreter when absent), run under the memory ceiling."""

    memory_bytes: int | None = None
    soft_bytes: int | None = None

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        try:
            spec = super().get_kernel_spec(kernel_name)
        except NoSuchKernel:
            spec = KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python 3",
                language="python",
            )
        spec.argv = processes.memory_limited(spec.argv, self.memory_bytes, self.soft_bytes)
        return spec


@dataclass
class Reply:
    """How one execution ended.

    ``status``: "ok", "error" (an exception; ``error`` says which), "interrupted" (stopped at the
    limit, the kernel still answers), "stuck" (it did not stop; the kernel was killed), "died"
    (the kernel exited or crashed) or "memory" (the kernel passed the memory ceiling and was
    killed).
    """

    status: str
    error: str = ""
    payload: str | None = None
    seconds: float = 0.0


class Kernel:
    """One kernel: start, execute with limits, stop (with everything it started)."""

    def __init__(self, spec: ExecutionSpec) -> None:
        self.spec = spec
        self.manager: AsyncKernelManager | None = None
        self.client: Any = None
        self.pid = 0
        self.created = 0.0
        self._drain: asyncio.Task[None] | None = None
        self.death = ""

    async def start(self) -> None:
        specs = _LimitedKernelSpecs()
        specs.memory_bytes = self.spec.memory_bytes
        specs.soft_bytes = self.spec.notebook_memory_bytes
        self.manager = AsyncKernelManager(
            kernel_name=self.spec.kernel_name, kernel_spec_manager=specs
        )
        # The kernel's own stdout/stderr (fd-level echoes of cell output) must never fill a pipe.
        await self.manager.start_kernel(
            cwd=str(Path(self.spec.notebook).parent),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self.manager.provisioner.process  # type: ignore[union-attr]
        self.pid = process.pid
        self.created = psutil.Process(self.pid).create_time()
        with open(self.spec.pid_path, "a", encoding="utf-8") as pids:
            pids.write(f"{self.pid} {self.created!r}\n")
        self.client = self.manager.client()
        self.client.start_channels()
        await self.client.wait_for_ready(timeout=KERNEL_START_S)
        self._drain = asyncio.create_task(self._discard_iopub())

    async def _discard_iopub(self) -> None:
        # Outputs are never looked at: read them so they do not pile up in the client's queue.
        while True:
            try:
                await self.client.get_iopub_msg()
            except Exception:
                await asyncio.sleep(POLL_S)

    async def execute(
        self,
        code: str,
        timeout: float,
        *,
        store_history: bool = True,
        expression: str | None = None,
    ) -> Reply:
        start = time.monotonic()
        msg_id = self.client.execute(
            code,
            store_history=store_history,
            allow_stdin=False,
            stop_on_error=False,
            user_expressions={"reply": expression} if expression else {},
        )
        reply = await self._wait(msg_id, start + timeout)
        if reply is None:
            with contextlib.suppress(Exception):  # a kernel that just died cannot be interrupted
                await self.manager.interrupt_kernel()  # type: ignore[union-attr]
            after = await self._wait(msg_id, time.monotonic() + INTERRUPT_GRACE_S)
            if after is None:
                await self.kill()
                reply = Reply("stuck")
            elif after.status in ("ok", "error"):
                reply = Reply("interrupted", after.error)
            else:
                reply = after  # it died, or passed the memory ceiling, meanwhile
        reply.seconds = time.monotonic() - start
        return reply

    async def _wait(self, msg_id: str, deadline: float) -> Reply | None:
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await self.client.get_shell_msg(timeout=min(POLL_S, left))
            except Empty:
                if not await self.manager.is_alive():  # type: ignore[union-attr]
                    self.death = _death(self.manager.provisioner.process, self.spec)  # type: ignore[union-attr]
                    await self.kill()
                    return Reply("died", self.death)
                if self._over_memory():
                    await self.kill()
                    return Reply("memory")
                continue
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            content = message.get("content", {})
            if content.get("status") == "ok":
                expressions = content.get("user_expressions") or {}
                data = (expressions.get("reply") or {}).get("data") or {}
                payload = data.get(REPLY_MIMETYPE)
                return Reply("ok", payload=payload if isinstance(payload, str) else None)
            name, value = content.get("ename", "Error"), content.get("evalue", "")
            return Reply("error", f"{name}: {value}".rstrip(": ")[:300])
        return None

    def _over_memory(self) -> bool:
        if not self.spec.memory_bytes:
            return False
        try:
            root = psutil.Process(self.pid)
            family = [root, *root.children(recursive=True)]
            resident = 0
            for process in family:
                with contextlib.suppress(psutil.Error):
                    resident += process.memory_info().rss
        except psutil.Error:
            return False
        return resident > self.spec.memory_bytes

    async def kill(self) -> None:
        if self.pid:
            processes.kill_tree(self.pid, self.created)
        await self.stop()

    async def stop(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.stop_channels()
            self.client = None
        if self.manager is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.manager.shutdown_kernel(now=True), 10)
            self.manager = None
        if self.pid:
            processes.kill_tree(self.pid, self.created)
        processes.kill_descendants()  # what the notebook started, orphans included (subreaper)


class _Restart(Exception):
    """The kernel is dead or stuck in this cell: skip it and run the notebook again."""

    def __init__(self, index: int) -> None:
        self.index = index


class NotebookRun:
    """One submission: its cells, then one driver call per request, across fresh kernels."""

    def __init__(self, spec: ExecutionSpec, notebook: nbformat.NotebookNode) -> None:
        self.spec = spec
        self.cells = [
            (index, cell.source)
            for index, cell in enumerate(notebook.cells)
            if cell.cell_type == "code" and cell.source.strip()
        ]
        self.labels = {index: _label(source) for index, source in self.cells}
        self.skipped: set[int] = set()
        self.problems: dict[int, str] = {}  # cell index -> what went wrong there
        self.calls: dict[str, dict[str, Any]] = {}
        self.grader_problem = ""
        # Seconds of cell execution: the first run (with its restarts) has spec.timeout; a
        # re-run after a test replaced the kernel has what the first run took, twice, + 60 s.
        self.notebook_left = spec.timeout
        self.first_run_seconds: float | None = None
        self.kernels = 0
        self.test_restarts = 0

    async def run(self) -> None:
        kernel = await self._prepared_kernel()
        try:
            for request in self.spec.requests:
                if kernel is None:
                    if self.test_restarts > self.spec.max_restarts:
                        self._not_run(
                            request, f"the kernel was replaced {self.spec.max_restarts} times"
                        )
                        continue
                    kernel = await self._prepared_kernel()
                    if kernel is None:
                        self._not_run(request, self.grader_problem or "no kernel could run it")
                        continue
                kernel = await self._call(kernel, request)
        finally:
            if kernel is not None:
                await kernel.stop()

    async def _call(self, kernel: Kernel, request: dict[str, Any]) -> Kernel | None:
        key, limit = request["key"], float(request["timeout"])
        reply = await kernel.execute(
            CALL_CODE.format(request["path"]),
            limit + self.spec.test_grace,
            store_history=False,
            expression=REPLY_EXPRESSION,
        )
        if reply.status == "ok":
            self.calls[key] = _parse(reply.payload, request["nonce"])
            return kernel
        if reply.status == "error":
            self.calls[key] = {"status": "error", "detail": f"the call raised {reply.error}"}
            return kernel
        if reply.status == "interrupted":
            self.calls[key] = {
                "status": "timed out",
                "detail": f"did not finish within {limit:g} s",
            }
            return kernel
        self.test_restarts += 1
        if reply.status == "stuck":
            detail = (
                f"did not finish within {limit:g} s and did not stop when interrupted (a loop in "
                "C code, or one that catches every exception); its kernel was replaced"
            )
            self.calls[key] = {"status": "timed out", "detail": detail}
        elif reply.status == "memory":
            limit_mb = (self.spec.memory_bytes or 0) / 2**20
            self.calls[key] = {
                "status": "out of memory",
                "detail": f"the kernel passed its {limit_mb:.0f} MiB memory ceiling and was killed",
            }
        else:
            self.calls[key] = {"status": "crashed", "detail": f"the kernel died ({reply.error})"}
        await kernel.stop()
        return None

    def _not_run(self, request: dict[str, Any], why: str) -> None:
        self.calls[request["key"]] = {"status": "not run", "detail": f"not run: {why}"}

    async def _prepared_kernel(self) -> Kernel | None:
        """A kernel that has run the setup cell and the notebook's cells (bad ones skipped)."""
        if self.first_run_seconds is not None:  # a re-run: its own budget
            self.notebook_left = min(self.spec.timeout, 2 * self.first_run_seconds + 60.0)
        start = time.monotonic()
        for _ in range(MAX_NOTEBOOK_KERNELS):
            if self.kernels >= MAX_NOTEBOOK_KERNELS + self.spec.max_restarts:
                break
            self.kernels += 1
            kernel = Kernel(self.spec)
            try:
                await kernel.start()
                setup = await kernel.execute(SETUP_CODE.format(self.spec.lesson), SETUP_S)
                if setup.status != "ok":
                    self.grader_problem = (
                        f"the grader's setup failed in the kernel ({setup.status} {setup.error})"
                    )
                    await kernel.stop()
                    return None
                for index, source in self.cells:
                    if index not in self.skipped:
                        await self._run_cell(kernel, index, source)
                if self.first_run_seconds is None:
                    self.first_run_seconds = time.monotonic() - start
                return kernel
            except _Restart as restart:
                self.skipped.add(restart.index)
                await kernel.stop()
            except Exception:
                await kernel.stop()
                raise
        if not self.grader_problem:
            self.grader_problem = (
                f"the kernel died or hung {MAX_NOTEBOOK_KERNELS} times running the notebook"
            )
        return None

    async def _run_cell(self, kernel: Kernel, index: int, source: str) -> None:
        if self.notebook_left <= 0:
            self.problems.setdefault(
                index, f"not run: the notebook used up its {self.spec.timeout:g} s"
            )
            return
        limit = min(self.spec.cell_timeout, self.notebook_left)
        reply = await kernel.execute(source, max(1.0, limit))
        self.notebook_left -= reply.seconds
        why = (
            f"stopped after {math.ceil(limit)} s, the time limit per cell"
            if limit == self.spec.cell_timeout
            else f"stopped when the notebook reached its {self.spec.timeout:g} s limit"
        )
        if reply.status == "ok":
            return
        if reply.status == "error":
            self.problems.setdefault(index, self._error_text(reply.error))
            return
        if reply.status == "interrupted":
            self.problems.setdefault(index, why + " (an infinite loop, or too slow?)")
            return
        if reply.status == "stuck":
            self.problems.setdefault(index, why + "; it ignored the interrupt, so it was skipped")
        elif reply.status == "memory":
            limit_mb = (self.spec.memory_bytes or 0) / 2**20
            self.problems.setdefault(
                index,
                f"the kernel passed its {limit_mb:.0f} MiB memory ceiling here and was killed; "
                "the cell was skipped",
            )
        else:
            self.problems.setdefault(index, f"the kernel died here ({reply.error})")
        raise _Restart(index)

    def _error_text(self, error: str) -> str:
        if error.startswith("MemoryError") and self.spec.notebook_memory_bytes:
            limit = self.spec.notebook_memory_bytes / 2**20
            return f"raised {error} (the notebook's cells may use {limit:.0f} MiB)"
        if "can't allocate memory" in error and self.spec.notebook_memory_bytes:
            limit = self.spec.notebook_memory_bytes / 2**20
            why = f"out of memory: the notebook's cells may use {limit:.0f} MiB"
            return f"raised {error[:160]} ({why})"
        return f"raised {error}"

    def result(self) -> dict[str, Any]:
        problems = [
            f"cell {i + 1} `{self.labels[i]}`: {text}" for i, text in sorted(self.problems.items())
        ]
        return {"calls": self.calls, "problems": problems, "grader_problem": self.grader_problem}


def _parse(payload: str | None, nonce: str) -> dict[str, Any]:
    if payload is None:
        return {"status": "error", "detail": "the kernel sent no reply for this test"}
    try:
        data = json.loads(payload)
    except ValueError:
        return {"status": "error", "detail": "the kernel's reply was not JSON"}
    if not isinstance(data, dict) or data.get("nonce") != nonce:
        return {"status": "error", "detail": "the kernel's reply was for another request"}
    return data


def _label(source: str) -> str:
    first = (source.strip().splitlines() or [""])[0]
    return first if len(first) <= 40 else first[:39] + "…"


def _death(process: subprocess.Popen[bytes] | None, spec: ExecutionSpec) -> str:
    code = process.poll() if process is not None else None
    if code is None:
        return "it stopped answering"
    if code >= 0:
        return f"it exited with status {code}, e.g. os._exit() or exit()"
    name = signal.Signals(-code).name
    if name == "SIGKILL" and spec.memory_bytes:
        return "killed by SIGKILL, most likely out of memory"
    return f"killed by {name}, a crash in native code"


def run_spec(spec: ExecutionSpec) -> dict[str, Any]:
    """Read and run the notebook; every failure becomes a problem line in the result."""
    try:
        notebook = nbformat.read(spec.notebook, as_version=4)
    except Exception as error:  # not JSON, not a notebook, unreadable: all the same to a grade
        return {"calls": {}, "problems": [], "grader_problem": f"not a readable notebook: {error}"}
    run = NotebookRun(spec, notebook)
    try:
        asyncio.run(run.run())
    except Exception as error:  # e.g. no kernel could start: still a result, with the reason
        run.grader_problem = (
            f"the grader could not run the notebook: {type(error).__name__}: {error}"
        )
    return run.result()


def main(argv: list[str]) -> int:
    processes.become_subreaper()
    spec = ExecutionSpec.from_json(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        result = run_spec(spec)
    finally:
        processes.kill_descendants()
    write_atomically(Path(spec.result_path), json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
