"""Run one submission in a fresh kernel, then the grader's tests in that same kernel.

``llmcourse grade`` starts this module as a worker process (in its own session, hence its own
process group) for each notebook: ``python -m llmcourse.grading.execute SPEC.json``. The worker

1. reads the notebook (a file that is not a notebook is reported, not raised);
2. starts a kernel (kernelspec ``llmcourse``, else this interpreter) under a memory ceiling, with
   ``check()`` turned into a no-op, and first runs a setup cell that imports the lesson's tests
   (``runner.prepare_kernel``), before the submission can exhaust memory or patch modules;
3. runs every code cell in order, *continuing past errors* so one bad cell costs only what
   depends on it; each cell has a wall-clock limit, all cells together have another;
4. handles what a cell can do to the kernel: a cell that overruns is interrupted
   (``KeyboardInterrupt``); one that ignores the interrupt, or kills the kernel (``os._exit``,
   a crash), is skipped and the notebook re-run from the top in a new kernel, at most
   ``MAX_KERNELS`` kernels in all;
5. runs a last cell with the lesson's tests (``runner.grade_in_kernel``), which publishes one
   outcome per test; only those outputs are kept, so nothing a submission prints accumulates;
6. kills the kernel's process tree and writes a JSON result: outcomes, and one line per problem
   ("cell 4 `import os; os._exit(0)`: the kernel died here ...").
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty
from typing import Any

import psutil

from llmcourse.grading.grade import ExecutionSpec
from llmcourse.grading.processes import kill_tree, memory_limited
from llmcourse.grading.runner import OUTCOME_MIMETYPE, describe_exception

# nbformat validates with jsonschema, which imports rfc3987_syntax when installed; building that
# grammar costs ~1.2 s per worker, and notebooks never contain the IRIs it checks.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

import nbformat  # noqa: E402
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellTimeoutError, DeadKernelError  # noqa: E402

MAX_KERNELS = 3
INTERRUPT_GRACE_S = 5.0  # how long an interrupted cell may take to stop before the kernel goes
# How long outputs may trail a cell's reply; nbclient drops them after this (default 4 s), and
# on a loaded machine the grader's outcomes must not be dropped. Waiting ends when they arrive.
IOPUB_GRACE_S = 30
_RUNNER = "__import__('llmcourse.grading.runner').grading.runner"
SETUP_CELL = _RUNNER + ".prepare_kernel({!r})"
GRADER_CELL = _RUNNER + ".grade_in_kernel({!r}, globals())"


class _LimitedKernelSpecs(KernelSpecManager):
    """The named kernelspec (or this interpreter when absent), run under the memory ceiling."""

    memory_bytes: int | None = None

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        try:
            spec = super().get_kernel_spec(kernel_name)
        except NoSuchKernel:
            spec = KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name="Python 3",
                language="python",
            )
        spec.argv = memory_limited(spec.argv, self.memory_bytes)
        return spec


class _GradingClient(NotebookClient):
    """Keeps no output except the grader cell's outcomes: memory stays bounded."""

    def __init__(self, notebook: nbformat.NotebookNode, grader_index: int, **kwargs: Any) -> None:
        super().__init__(notebook, **kwargs)
        self.grader_index = grader_index

    def output(
        self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> Any:
        if cell_index == self.grader_index and OUTCOME_MIMETYPE in msg["content"].get("data", {}):
            return super().output(outs, msg, display_id, cell_index)
        return None


class _Restart(Exception):
    """The kernel is dead or stuck in this cell: skip it and run the notebook again."""

    def __init__(self, index: int) -> None:
        self.index = index


class NotebookRun:
    """One submission's execution across at most ``MAX_KERNELS`` kernels."""

    def __init__(self, spec: ExecutionSpec, notebook: nbformat.NotebookNode) -> None:
        self.spec = spec
        self.notebook = notebook
        self.submitted = len(notebook.cells)  # the grader's two cells go after these
        self.setup_index, self.grader_index = self.submitted, self.submitted + 1
        notebook.cells += [
            nbformat.v4.new_code_cell(SETUP_CELL.format(spec.lesson)),
            nbformat.v4.new_code_cell(GRADER_CELL.format(spec.lesson)),
        ]
        self.skipped: set[int] = set()
        self.problems: dict[int, str] = {}  # cell index -> what went wrong there
        self.outcomes: list[dict[str, Any]] = []
        self.grader_problem = ""
        self.deadline = 0.0

    async def run(self) -> None:
        self.deadline = time.monotonic() + self.spec.timeout
        for _ in range(MAX_KERNELS):
            self.problems = {i: p for i, p in self.problems.items() if i in self.skipped}
            try:
                await self._run_in_fresh_kernel()
                return
            except _Restart as restart:
                self.skipped.add(restart.index)
        self.grader_problem = f"the kernel died or hung {MAX_KERNELS} times; grading stopped"

    def result(self) -> dict[str, Any]:
        problems = [f"{self._label(i)}: {text}" for i, text in sorted(self.problems.items())]
        return {
            "outcomes": self.outcomes,
            "problems": problems,
            "grader_problem": self.grader_problem,
        }

    async def _run_in_fresh_kernel(self) -> None:
        specs = _LimitedKernelSpecs()
        specs.memory_bytes = self.spec.memory_bytes
        manager = AsyncKernelManager(kernel_name=self.spec.kernel_name, kernel_spec_manager=specs)
        client = _GradingClient(
            self.notebook,
            grader_index=self.grader_index,
            km=manager,
            allow_errors=True,
            iopub_timeout=IOPUB_GRACE_S,
            shutdown_kernel="immediate",
            on_cell_error=self._on_cell_error,
            resources={"metadata": {"path": str(Path(self.spec.notebook).parent)}},
        )
        # The kernel's own stdout/stderr (fd-level echoes of cell output) must never fill a pipe.
        async with client.async_setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            process = manager.provisioner.process  # type: ignore[union-attr]
            created = _remember_pid(self.spec.pid_path, process.pid)
            try:
                # Import the tests and their references before the submission can exhaust memory
                # or monkeypatch modules; the setup cell defines no names.
                client.timeout = max(1, math.ceil(self.spec.grader_timeout))
                await client.async_execute_cell(
                    self.notebook.cells[self.setup_index], self.setup_index
                )
                for index, cell in enumerate(self.notebook.cells[: self.submitted]):
                    if cell.cell_type == "code" and index not in self.skipped:
                        await self._run_cell(client, index, process)
                await self._run_grader(client, process)
            finally:
                kill_tree(process.pid, created)  # nbclient may have reaped a dead kernel

    async def _run_cell(self, client: _GradingClient, index: int, process: Any) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.problems[index] = f"not run: the notebook used up its {self.spec.timeout:g} s"
            return
        limit = min(self.spec.cell_timeout, left)
        client.timeout = max(1, math.ceil(limit))
        try:
            await client.async_execute_cell(self.notebook.cells[index], index)
        except CellTimeoutError:
            why = (
                f"stopped after {client.timeout} s, the time limit per cell"
                if limit == self.spec.cell_timeout
                else f"stopped when the notebook reached its {self.spec.timeout:g} s limit"
            )
            if await _interrupt(client):
                self.problems[index] = why + " (an infinite loop, or too slow?)"
                return
            if process.poll() is None:
                self.problems[index] = why + "; it ignored the interrupt, so it was skipped"
            else:
                self.problems[index] = f"the kernel died here ({_death(process, self.spec)})"
            raise _Restart(index) from None
        except DeadKernelError:
            self.problems[index] = f"the kernel died here ({_death(process, self.spec)})"
            raise _Restart(index) from None

    async def _run_grader(self, client: _GradingClient, process: Any) -> None:
        cell = self.notebook.cells[self.grader_index]
        client.timeout = max(1, math.ceil(self.spec.grader_timeout))
        try:
            await client.async_execute_cell(cell, self.grader_index)
        except CellTimeoutError:
            self.grader_problem = (
                f"the grader's tests ran past {client.timeout} s and could not be stopped"
            )
        except DeadKernelError:
            self.grader_problem = (
                f"the kernel died while the grader's tests ran ({_death(process, self.spec)})"
            )
        self.outcomes = [
            out["data"][OUTCOME_MIMETYPE]
            for out in cell.outputs
            if out.get("output_type") == "display_data"
        ]

    def _on_cell_error(self, cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        content = execute_reply["content"]
        error = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}".rstrip(": ")
        if cell_index in (self.setup_index, self.grader_index):
            self.grader_problem = f"the grader's tests could not run ({error[:300]})"
        elif content.get("ename") == "MemoryError" and self.spec.memory_bytes:
            limit = self.spec.memory_bytes / 2**20
            self.problems[cell_index] = (
                f"raised {error[:300]} (the memory limit is {limit:.0f} MiB)"
            )
        else:
            self.problems[cell_index] = f"raised {error[:300]}"

    def _label(self, index: int) -> str:
        source = self.notebook.cells[index].source.strip().splitlines() or [""]
        first = source[0] if len(source[0]) <= 40 else source[0][:39] + "…"
        return f"cell {index + 1} `{first}`"


async def _interrupt(client: _GradingClient) -> bool:
    """Interrupt the running cell; True when the kernel answers again within the grace period."""
    assert client.km is not None and client.kc is not None
    await client.km.interrupt_kernel()
    probe = client.kc.execute("", silent=True, store_history=False)
    deadline = time.monotonic() + INTERRUPT_GRACE_S
    while (left := deadline - time.monotonic()) > 0:
        try:
            reply = await client.kc.shell_channel.get_msg(timeout=left)
        except Empty:
            return False
        if reply["parent_header"].get("msg_id") == probe:
            return True
    return False


def _death(process: subprocess.Popen[bytes], spec: ExecutionSpec) -> str:
    code = process.poll()
    if code is None:
        return "it stopped answering"
    if code >= 0:
        return f"it exited with status {code}, e.g. os._exit() or exit()"
    name = signal.Signals(-code).name
    if name == "SIGKILL" and spec.memory_bytes:
        return "killed by SIGKILL, most likely out of memory"
    return f"killed by {name}, a crash in native code"


def _remember_pid(path: str, pid: int) -> float:
    """Note the kernel for the grader's cleanup; returns its start time."""
    created = psutil.Process(pid).create_time()
    with open(path, "a", encoding="utf-8") as pids:
        pids.write(f"{pid} {created!r}\n")
    return created


def run_spec(spec: ExecutionSpec) -> dict[str, Any]:
    """Read and run the notebook; every failure becomes a problem line in the result."""
    try:
        notebook = nbformat.read(spec.notebook, as_version=4)
    except Exception as error:  # not JSON, not a notebook, unreadable: all the same to a grade
        return {
            "outcomes": [],
            "problems": [],
            "grader_problem": f"not a readable notebook: {describe_exception(error)}",
        }
    run = NotebookRun(spec, notebook)
    try:
        asyncio.run(run.run())
    except Exception as error:  # e.g. no kernel could start: still a result, with the reason
        run.grader_problem = f"the grader could not run the notebook: {describe_exception(error)}"
    return run.result()


def main(argv: list[str]) -> int:
    spec = ExecutionSpec(**json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    result = run_spec(spec)
    partial = Path(spec.result_path + ".partial")
    partial.write_text(json.dumps(result), encoding="utf-8")
    partial.replace(spec.result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
