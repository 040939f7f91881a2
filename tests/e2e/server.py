"""A JupyterLab server for the browser tests, started the way a learner starts it.

``JupyterLabServer(root, state_dir).start()`` runs ``llmcourse lab --no-browser`` (the command
``make lab`` ends in; it serves the repository) in its own process group, on 127.0.0.1 and a
port the OS picks, with a random token. Everything the server and its kernels write goes under
``state_dir``: Jupyter's runtime, config and data dirs, IPython's dir, notebook checkpoints and
the learner's progress (``LLMCOURSE_HOME``). JupyterLab's settings there turn autosave off, so
notebooks the tests type into are never written back to the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Per-plugin JupyterLab settings (the same files Settings → Settings Editor writes).
LAB_SETTINGS = {
    # Tests edit exercise cells; the repository's notebooks must stay as committed.
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # No "get notified about Jupyter news?" toast over the screenshots, no news fetching.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


class JupyterLabServer:
    """``start()``, then ``url(path)`` for a page and ``stop()`` (also on failure) at the end."""

    def __init__(self, root: Path, state_dir: Path, log_path: Path) -> None:
        self.root, self.state_dir, self.log_path = root, state_dir, log_path
        self.token = secrets.token_hex(16)
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def environment(self) -> dict[str, str]:
        """The learner's environment, with every state directory under ``state_dir``."""
        dirs = {
            name: self.state_dir / folder
            for name, folder in [
                ("JUPYTER_RUNTIME_DIR", "runtime"),
                ("JUPYTER_CONFIG_DIR", "config"),
                ("JUPYTER_DATA_DIR", "data"),
                ("IPYTHONDIR", "ipython"),
                ("LLMCOURSE_HOME", "home"),
            ]
        }
        env = {**os.environ, **{name: str(path) for name, path in dirs.items()}}
        # `make lab` does not activate .venv; without this the server would find the course's
        # scripts on PATH only because the tests run inside it.
        scripts = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if p != scripts
        )
        env.pop("JUPYTER_PATH", None)
        return env

    def start(self, timeout: float = 180.0) -> None:
        for plugin, values in LAB_SETTINGS.items():
            path = (
                self.state_dir
                / "config"
                / "lab"
                / "user-settings"
                / f"{plugin}.jupyterlab-settings"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        command = [
            sys.executable,
            "-m",
            "llmcourse.cli",
            "lab",
            "--no-browser",
            "--port",
            "0",  # the OS picks a free port; the server writes it to its runtime file
            f"--IdentityProvider.token={self.token}",
            # Checkpoints (JupyterLab makes one on opening a file) go to the state dir, not
            # .ipynb_checkpoints/ beside the lessons.
            f"--FileCheckpoints.checkpoint_dir={self.state_dir / 'checkpoints'}",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.root,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends kernels too
            )
        self.base_url = self._wait_for_runtime_file(timeout)

    def _wait_for_runtime_file(self, timeout: float) -> str:
        runtime = self.state_dir / "runtime"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"llmcourse lab exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            for info_file in runtime.glob("jpserver-*.json"):
                try:
                    info = json.loads(info_file.read_text())
                except (OSError, json.JSONDecodeError):
                    continue  # being written
                if Path(info["root_dir"]) != self.root:  # llmcourse lab serves the checkout
                    raise RuntimeError(f"JupyterLab serves {info['root_dir']}, not {self.root}")
                base = f"http://127.0.0.1:{info['port']}"
                if self._answers(base):
                    return base
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not start in {timeout:.0f} s:\n{self.log_tail()}")

    def _answers(self, base: str) -> bool:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={self.token}", timeout=5):
                return True
        except OSError:
            return False

    def url(self, path: str, *flags: str) -> str:
        """Page URL with the token, e.g. ``url("lab/tree/lessons/01_course_overview.ipynb")``."""
        query = "&".join([*flags, f"token={self.token}"])
        return f"{self.base_url}/{path.lstrip('/')}?{query}"

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(
            f"{self.base_url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernels(self) -> list[dict]:
        return self.api("kernels")  # type: ignore[return-value]

    def shutdown_kernels(self) -> None:
        """Stop every kernel, so the next test has the CPU to itself."""
        for kernel in self.kernels():
            self.api(f"kernels/{kernel['id']}", method="DELETE")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the whole process group (server and kernels); SIGKILL what is left."""
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):  # gone already: nothing left to kill
            os.killpg(group, signal.SIGKILL)  # kernels that ignored SIGTERM
        self.process.wait(timeout=10)
