"""``python -m llmcourse.train grpo``: GRPO on arithmetic from an SFT start, over several seeds.

    python -m llmcourse.train grpo --seeds 0 1 2
    python -m llmcourse.train grpo --compare --seeds 0 1 2       # the results lesson 09 loads

Without ``--compare``: for each seed, the SFT start and GRPO from it, each evaluated on the same
held-out problems; the last line printed is ``RESULT {json}`` with the per-seed numbers and their
mean and standard deviation. With ``--compare``: the SFT start, more SFT, DPO, PPO and GRPO at
equal compute (``llmcourse.train.rlvr``), written to ``--out`` (default: the committed
``llmcourse/train/results/rl_arithmetic.json`` and its ``.md`` table). Budgets are in steps and
rollouts, never seconds; ``--size tiny`` runs in seconds (the tests use it). Give each process
one thread (``--threads 1``, or ``OMP_NUM_THREADS=1``) when several runs share a machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import torch

from llmcourse.train.grpo import Aggregation, KLPlacement, LossType
from llmcourse.train.rl_compare import METHODS, RESULTS, compare, evaluate_for, write_results
from llmcourse.train.rlvr import RLVRConfig, run_grpo, sft_start


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llmcourse.train grpo",
        description="GRPO on 2-digit addition from an SFT start (or, with --compare, every "
        "method at equal compute).",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--rollouts", type=int, help="GRPO rollouts (default: the config's)")
    parser.add_argument("--sft-steps", type=int, help="steps of the SFT start")
    parser.add_argument("--kl-coef", type=float, help="β of the KL to the start")
    parser.add_argument("--loss-type", choices=get_args(LossType), default="grpo_clip")
    parser.add_argument("--aggregation", choices=get_args(Aggregation), default="token")
    parser.add_argument("--kl-placement", choices=get_args(KLPlacement), default="loss")
    parser.add_argument("--no-std", action="store_true", help="advantages r − mean, not / std")
    parser.add_argument("--checker", choices=("exact", "last_number", "contains"), default="exact")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--compare", action="store_true", help="run every method (the table)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, default=RESULTS, help="--compare's JSON file")
    parser.add_argument(
        "--jobs", type=int, default=1, help="--compare: seeds run in this many processes"
    )
    return parser


def config_from(args: argparse.Namespace) -> RLVRConfig:
    config = RLVRConfig.tiny() if args.size == "tiny" else RLVRConfig()
    changes = {
        "rollouts": args.rollouts,
        "sft_steps": args.sft_steps,
        "kl_coef": args.kl_coef,
    }
    return config.replace(**{k: v for k, v in changes.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command; returns what ``RESULT`` prints (or the results written by --compare)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        config = config_from(args)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    command = "python -m llmcourse.train grpo " + shlex.join(list(argv or []))
    if args.compare:
        results = compare(config, args.seeds, args.methods, jobs=args.jobs)
        path = write_results(results, args.out, command.strip())
        print(path.with_suffix(".md").read_text())
        return results
    grpo = {
        "loss_type": args.loss_type,
        "aggregation": args.aggregation,
        "kl_placement": args.kl_placement,
        "normalize_by_std": not args.no_std,
        "checker": args.checker,
    }
    runs = []
    for seed in args.seeds:
        tick = time.perf_counter()
        start, _ = sft_start(config, seed, progress_bar=args.progress)
        sft_seconds = time.perf_counter() - tick
        before = evaluate_for(config, start, start)
        tick = time.perf_counter()
        policy, history = run_grpo(start, config, seed, progress_bar=args.progress, **grpo)
        grpo_seconds = time.perf_counter() - tick
        after = evaluate_for(config, policy, start)
        runs.append({
            "seed": seed,
            "sft_accuracy": before["accuracy"],
            "grpo_accuracy": after["accuracy"],
            "sft_pass@8": before.get("pass@8"),
            "grpo_pass@8": after.get("pass@8"),
            "kl": after["kl"],
            "sft_seconds": round(sft_seconds, 1),
            "grpo_seconds": round(grpo_seconds, 1),
            "rollouts": history[-1]["rollout"],
        })  # fmt: skip
        print(
            f"seed {seed}: held-out accuracy {before['accuracy']:.3f} after SFT "
            f"({sft_seconds:.0f} s) → {after['accuracy']:.3f} after GRPO ({grpo_seconds:.0f} s, "
            f"{history[-1]['rollout']} rollouts), KL to the start {after['kl']:.3f} nats",
            flush=True,
        )
    summary = {"config_hash": config.hash, "grpo": grpo, "runs": runs}
    for key in ("sft_accuracy", "grpo_accuracy", "grpo_seconds"):
        values = [run[key] for run in runs]
        summary[f"{key}_mean"] = statistics.fmean(values)
        summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    print("RESULT " + json.dumps(summary), flush=True)
    return summary
