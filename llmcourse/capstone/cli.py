"""``llmcourse capstone --size tiny|small|base``: the whole pipeline, then the report card.

    llmcourse capstone --size tiny                        # about a minute on 2 CPU cores
    llmcourse capstone --size small --report-dir llmcourse/capstone/results/small

Stages are cached under ``--out`` (default ``~/.cache/llmcourse/capstone/SIZE``): run it again
and only what changed runs; a killed run resumes. ``--set name=value`` changes one choice of
``CapstoneConfig`` (``--set vocab_size=512 --set sft_arithmetic_share=0.8``) and gets its own
cache keys, so two report cards can be compared.

On a GPU box, ``torchrun --nproc_per_node=8 -m llmcourse.cli capstone --size base --out
/shared/capstone`` trains with DDP through the same ``Trainer`` (global batches as in one
process; GRPO's rollout split over the processes); rank 0 builds the tokenizer, evaluates and
writes the report.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmcourse.capstone.config import SIZES


def add_capstone_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=SIZES, default="tiny", help="preset (default: tiny)")
    parser.add_argument(
        "--out", type=Path, help="stage cache folder (default: ~/.cache/llmcourse/capstone/SIZE)"
    )
    parser.add_argument("--report-dir", type=Path, help="where report.md goes (default: --out)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="change one CapstoneConfig field (repeatable), e.g. --set d_model=96",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def parse_changes(items: Sequence[str]) -> dict[str, Any]:
    """``["d_model=96", "rl_seeds=(0, 1)"]`` → ``{"d_model": 96, "rl_seeds": (0, 1)}``."""
    from llmcourse.capstone.config import CapstoneConfig

    fields = {f.name for f in dataclasses.fields(CapstoneConfig)} - {"size"}
    changes = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(
                f"--set {item!r}: write NAME=VALUE with NAME one of {', '.join(sorted(fields))}."
            )
        try:
            changes[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"--set {item!r}: {value!r} is not a Python literal.") from None
    return changes


def run_capstone_command(args: argparse.Namespace) -> int:
    """``llmcourse capstone``: returns the exit status."""
    import torch

    from llmcourse.capstone.config import CapstoneConfig
    from llmcourse.capstone.pipeline import run_capstone
    from llmcourse.capstone.report import build_report
    from llmcourse.utils.paths import cache_dir

    try:
        config = CapstoneConfig.for_size(args.size, **parse_changes(args.set))
    except (ValueError, TypeError) as error:
        print(error, file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or cache_dir() / "capstone" / args.size
    from llmcourse.utils.distributed import cleanup_distributed, init_distributed

    results = run_capstone(config, out, progress_bar=not args.quiet)
    if init_distributed().is_main:
        command = "llmcourse capstone " + shlex.join(_argv(args))
        report = build_report(results, args.report_dir or out, command)
        print(f"[capstone] report: {report}")
        print(f"[capstone] chat with it: llmcourse serve --model {results['final_model']}")
    cleanup_distributed()
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    argv = ["--size", args.size]
    for item in args.set:
        argv += ["--set", item]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmcourse capstone", description=__doc__.split("\n")[0])
    add_capstone_arguments(parser)
    return run_capstone_command(parser.parse_args(argv))
