"""Start ``llmcourse serve`` in a child process and stop it for sure (lesson, tests, load test).

The child runs in its own session (process group), so ``stop()`` can end it and anything it
started even if it hangs: SIGTERM first (uvicorn shuts down gracefully), SIGKILL to the group
if it has not exited in time. Should the parent die without stopping it (a killed kernel), the
server notices (``LLMCOURSE_SERVE_PARENT_PID``) and exits by itself. Its output goes to a
temporary log file, which the parent polls for the "listening on" line; a pipe could fill up
and block the server.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

_LISTENING = re.compile(r"listening on (http://\S+)")
PARENT_ENV = "LLMCOURSE_SERVE_PARENT_PID"  # the server exits when this process is gone


class ServerProcess:
    """``llmcourse serve --port 0 *args`` as a child process; ``url`` once it listens.

    Use as a context manager (``with ServerProcess("--model", "tiny") as server: ...``) or call
    ``stop()``; ``timeout`` bounds the wait for the model to load.
    """

    def __init__(self, *args: str, timeout: float = 180.0, env: dict[str, str] | None = None):
        if "--host" in args:
            raise ValueError("ServerProcess serves on 127.0.0.1 only; drop --host.")
        handle, name = tempfile.mkstemp(prefix="llmcourse-serve-", suffix=".log")
        self._log = os.fdopen(handle, "w")
        self.log_path = Path(name)
        command = [sys.executable, "-m", "llmcourse.cli", "serve", "--port", "0", *args]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), PARENT_ENV: str(os.getpid())},
            start_new_session=True,
        )
        atexit.register(self.stop)  # a notebook or test that exits never leaves it running
        self.url = self._wait_for_address(timeout)
        self.base_url = self.url + "/v1"

    def _wait_for_address(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.output())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        output = self.output()
        self.stop()
        raise RuntimeError(f"llmcourse serve did not start within {timeout:.0f} s:\n{output}")

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """End the server (SIGTERM, then SIGKILL to its process group); return its exit code."""
        atexit.unregister(self.stop)
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout)
        self._log.close()
        self.log_path.unlink(missing_ok=True)
        return self.process.returncode

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)  # the child leads its own session

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
