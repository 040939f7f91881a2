"""``python -m llmcourse.train``: train a preset, on one process or many (``torchrun``).

    python -m llmcourse.train --preset shakespeare-char --max-steps 300
    torchrun --standalone --nproc_per_node=2 -m llmcourse.train --max-steps 30 --parallel fsdp
    python -m llmcourse.train ladder --seeds 3          # a subcommand: see SUBCOMMANDS
    python -m llmcourse.train grpo --seeds 0 1 2        # GRPO on arithmetic (train.rlvr_cli)

A first argument naming a subcommand hands the rest of the command line to that module's
``main``; anything else trains a preset, as below.

Every ``TrainConfig`` field is a flag (``--batch-size``, ``--lr``, ``--eval-every``, ...) that
overrides the preset; a few model flags (``--n-layer``, ``--d-model``, ...) change its size.
``--global-batch-size`` fixes the sequences per step whatever the number of processes;
``--steps N`` stops after N steps (with a checkpoint in ``--out-dir``) and ``--resume`` goes on
from there, exactly. The last line printed (by rank 0) is ``RESULT {json}``: steps, losses,
throughput, and checksums of the final weights, the same for any number of processes at the
same global batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.train.config import TrainConfig
from llmcourse.train.presets import PRESET_NAMES, char_datasets, get_preset, shakespeare_chars
from llmcourse.train.trainer import CHECKPOINT_NAME, NonFiniteLossError, Trainer
from llmcourse.utils.distributed import cleanup_distributed, init_distributed
from llmcourse.utils.seed import seed_everything

# Subcommands: name → module with ``main(argv)`` (imported only when asked for).
SUBCOMMANDS = {"ladder": "llmcourse.train.ladder", "grpo": "llmcourse.train.rlvr_cli"}
MODEL_FLAGS = ("n_layer", "n_head", "d_model", "context_length", "dropout")
NOT_FLAGS = ("objective", "decoder_start_id")  # the presets are causal language models


def _flag_options(annotation: Any) -> dict[str, Any]:
    """argparse options for a field annotated ``int``, ``float | None``, ``Literal[...]``, ..."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is typing.Literal:
        return {"choices": typing.get_args(annotation)}
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction, "default": None}
    if typing.get_origin(annotation) is tuple:
        return {"type": float, "nargs": 2, "metavar": ("B1", "B2")}
    return {"type": annotation}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llmcourse.train",
        description="Train a preset; run under torchrun for several processes.",
        epilog="Subcommands (as the first argument): "
        + ", ".join(f"{name} (python -m llmcourse.train {name} --help)" for name in SUBCOMMANDS),
    )
    parser.add_argument("--preset", default="shakespeare-char", choices=PRESET_NAMES)
    parser.add_argument(
        "--resume", action="store_true", help="continue from --out-dir's checkpoint"
    )
    parser.add_argument(
        "--steps",
        type=int,
        help="run at most this many steps now, then checkpoint and exit (continue with --resume)",
    )
    parser.add_argument("--threads", type=int, help="torch threads per process (default: torch's)")
    parser.add_argument(
        "--global-batch-size",
        type=int,
        help="sequences per optimizer step over all processes: sets --batch-size to this / "
        "(processes x grad-accum-steps), so 1 and N processes train the same model",
    )
    model = parser.add_argument_group("model (overrides the preset's config)")
    model_hints = typing.get_type_hints(ModelConfig)
    for name in MODEL_FLAGS:
        model.add_argument("--" + name.replace("_", "-"), **_flag_options(model_hints[name]))
    train = parser.add_argument_group("training (TrainConfig fields; override the preset's)")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name not in NOT_FLAGS:
            flag = "--" + field.name.replace("_", "-")
            train.add_argument(flag, **_flag_options(hints[field.name]))
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Run the CLI; returns the result dict on rank 0 (None elsewhere)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    return train_preset(argv)


def train_preset(argv: Sequence[str]) -> dict[str, Any] | None:
    """Train a preset with the flags of ``build_parser``; the result dict on rank 0."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    preset = get_preset(args["preset"])
    model_changes = {k: args[k] for k in MODEL_FLAGS if args[k] is not None}
    train_changes = {
        f.name: tuple(args[f.name]) if f.name == "betas" else args[f.name]
        for f in dataclasses.fields(TrainConfig)
        if f.name not in NOT_FLAGS and args[f.name] is not None
    }
    if "max_steps" in train_changes and "warmup_steps" not in train_changes:
        # A shortened run keeps the preset's shape: warm up for the same share of the steps.
        share = preset.train.warmup_steps / preset.train.max_steps
        train_changes["warmup_steps"] = round(share * train_changes["max_steps"])
    try:  # a flag out of range is a usage error (exit 2) naming the flag's field
        model_config = preset.model.replace(**model_changes)
        train_config = preset.train.replace(**train_changes)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if train_config.bytes_per_token is None:
        train_config = train_config.replace(bytes_per_token=shakespeare_chars().bytes_per_token)
    if args["resume"] and train_config.out_dir is None:
        raise SystemExit("--resume needs --out-dir (where the checkpoint is).")
    checkpoint = Path(train_config.out_dir or ".") / CHECKPOINT_NAME
    if args["resume"] and not checkpoint.is_file():
        raise SystemExit(
            f"--resume: there is no checkpoint in {train_config.out_dir} ({checkpoint} does not "
            "exist). Check --out-dir, or drop --resume to start a new run there."
        )

    ctx = init_distributed()
    if args["global_batch_size"]:
        share = ctx.world_size * train_config.grad_accum_steps
        if args["global_batch_size"] % share:
            raise SystemExit(
                f"--global-batch-size {args['global_batch_size']} is not divisible by "
                f"{ctx.world_size} process(es) x {train_config.grad_accum_steps} accumulation "
                "steps."
            )
        train_config = train_config.replace(batch_size=args["global_batch_size"] // share)
    seed_everything(train_config.seed)  # same weights and same data order on every process
    train_data, val_data = char_datasets(
        model_config, train_config, preset.eval_windows, ctx.world_size
    )
    trainer = Trainer(DecoderLM(model_config), train_config, train_data, val_data, ctx=ctx)
    try:
        if args["resume"]:
            trainer.load_checkpoint(checkpoint)  # refuses another config or a corrupt file
        result = trainer.fit(steps=args["steps"])
    except (NonFiniteLossError, ValueError) as error:
        if isinstance(error, ValueError) and not args["resume"]:
            raise
        cleanup_distributed()
        raise SystemExit(f"error: {error}") from error
    if trainer.val_batches is not None and result.val_loss is None:
        result.val_loss = trainer.evaluate(train_config.eval_batches)["val_loss"]
    weights = trainer.model_state()
    summary = None
    if ctx.is_main:
        summary = {
            "preset": preset.name,
            "world_size": ctx.world_size,
            "backend": ctx.backend,
            "parallel": train_config.parallel if ctx.is_distributed else "none",
            "zero1": train_config.zero1 and ctx.is_distributed,
            "step": result.step,
            "global_batch": train_config.batch_size
            * train_config.grad_accum_steps
            * ctx.world_size,
            "train_loss": _round(result.train_loss),
            "val_loss": _round(result.val_loss),
            "tokens": result.tokens,
            "tokens_per_s": round(result.tokens_per_s, 1),
            "elapsed_s": round(result.elapsed_s, 2),
            "mfu": result.mfu,
            "interrupted": result.interrupted,
            "target_reached_s": result.target_reached_s,
            "checkpoint": str(checkpoint) if train_config.out_dir else None,
            "weights_sum": sum(float(t.double().sum()) for t in weights.values()),
            "weights_sq_sum": sum(float(t.double().square().sum()) for t in weights.values()),
        }
        print("RESULT " + json.dumps(summary), flush=True)
    cleanup_distributed()
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 6)
