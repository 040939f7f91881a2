"""The ablation ladder on character-level Shakespeare: what each piece of a GPT buys.

    python -m llmcourse.train ladder --seeds 3            # the committed table (about 25 min)
    python -m llmcourse.train ladder --budget live        # lesson 04's live run (about 1 min)

Every rung of ``llmcourse.models.ablations`` (bigram → one head → multi-head → + MLP →
+ residual → + LayerNorm → MiniGPT) and, as a last rung, the block of the course's tiny GPT
(preset ``shakespeare-char``: RoPE, RMSNorm, SwiGLU, no biases, a ``DecoderLM``) is trained with
the same ``Trainer`` recipe and the same budget in steps and tokens, on the same windows of the
training plays for a given seed. The validation loss (nats per character, held-out plays) is
measured before training, where every rung must pay about ln(vocab), and every ``eval_every``
steps. ``counted_ngram_loss`` gives two references: letter frequencies alone (unigram) and
about the best any bigram can do.

``write_results`` stores the runs as JSON and a markdown table (with the config's hash, the date
and the machine) in ``llmcourse/train/results/``, shipped with the package; ``load_results``
reads them back. A rung is called better than another only when its seeds' range lies entirely
below the other's (``compare``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llmcourse.models import DecoderLM
from llmcourse.models.ablations import (
    Bigram,
    MultiHead,
    OneHead,
    WithLayerNorm,
    WithMLP,
    WithResidual,
)
from llmcourse.models.minigpt import MiniGPT, MiniGPTConfig
from llmcourse.train.presets import char_datasets, get_preset, shakespeare_chars
from llmcourse.train.trainer import Trainer
from llmcourse.utils.checks import check_int, check_number
from llmcourse.utils.seed import seed_everything

RESULTS_DIR = Path(__file__).parent / "results"
RESULTS_NAME = "ladder"


def preset_block(config: MiniGPTConfig) -> DecoderLM:
    """The tiny GPT's block (``shakespeare-char``: RoPE, RMSNorm, SwiGLU, no biases) at the
    ladder's size; its SwiGLU is 8/3 · d_model wide (rounded up to 8) to match a 4·d MLP's
    parameters, as in the preset (128 → 344)."""
    d_ff = (8 * config.d_model // 3 + 7) // 8 * 8
    model_config = get_preset("shakespeare-char").model.replace(
        **dataclasses.asdict(config), d_ff=d_ff
    )
    return DecoderLM(model_config)


# name → how to build the rung from a MiniGPTConfig, in ladder order; LABELS name them in tables.
RUNGS: dict[str, Callable[[MiniGPTConfig], nn.Module]] = {
    "bigram": Bigram,
    "one-head": OneHead,
    "multi-head": MultiHead,
    "mlp": WithMLP,
    "residual": WithResidual,
    "layernorm": WithLayerNorm,
    "minigpt": MiniGPT,
    "tiny-gpt-block": preset_block,
}
LABELS = {
    "bigram": "bigram",
    "one-head": "one head (+ positions)",
    "multi-head": "multi-head",
    "mlp": "+ MLP",
    "residual": "+ residual",
    "layernorm": "+ LayerNorm",
    "minigpt": "MiniGPT",
    "tiny-gpt-block": "tiny GPT's block (RoPE, RMSNorm, SwiGLU)",
}


@dataclass(frozen=True)
class LadderConfig:
    """One budget for every rung: model size, steps, batch and the optimiser's recipe.

    The optimiser settings not listed here are the ``shakespeare-char`` preset's (AdamW,
    β = (0.9, 0.99), weight decay 0.1, clipping at 1.0, cosine decay to 10%).
    """

    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    context_length: int = 64
    steps: int = 600
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 50
    eval_every: int = 50
    eval_windows: int = 240

    def __post_init__(self) -> None:
        names = ("d_model", "n_layer", "n_head", "context_length", "steps", "batch_size")
        for name in (*names, "eval_every", "eval_windows"):
            check_int(f"LadderConfig.{name}", getattr(self, name), 1)
        check_int("LadderConfig.warmup_steps", self.warmup_steps, 0, self.steps)
        check_number("LadderConfig.lr", self.lr, 0, low_open=True)
        if self.d_model % self.n_head:
            raise ValueError(
                f"LadderConfig.d_model={self.d_model} is not divisible by n_head={self.n_head}."
            )

    @property
    def tokens(self) -> int:
        """Training tokens each rung sees: steps × batch × context."""
        return self.steps * self.batch_size * self.context_length

    def model_config(self, vocab_size: int) -> MiniGPTConfig:
        return MiniGPTConfig(
            vocab_size, self.context_length, self.d_model, self.n_layer, self.n_head
        )

    def config_hash(self) -> str:
        """12 hex digits naming this budget (the results file records it)."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# The committed table: the tiny GPT preset's size and its 600 steps, so its last rung *is* the
# preset. The live run: a quarter of the width's cost (d 64, 2 layers), half the steps, and a
# larger learning rate, which small short runs need.
BUDGETS = {
    "full": LadderConfig(),
    "live": LadderConfig(
        d_model=64, n_layer=2, steps=300, lr=1e-2, warmup_steps=25, eval_every=50, eval_windows=128
    ),
}


@dataclass
class RungRun:
    """One rung trained with one seed."""

    rung: str
    seed: int
    n_params: int
    initial_val_loss: float  # before any step: ≈ ln(vocab)
    val_loss: float  # after the last step
    curve: list[tuple[int, float]]  # (step, validation loss), step 0 included
    train_seconds: float


def train_rung(
    rung: str,
    config: LadderConfig,
    seed: int = 0,
    on_eval: Callable[[str, int, float], None] | None = None,
) -> RungRun:
    """Train rung ``rung`` (a key of ``RUNGS``) on the budget ``config`` with ``seed``.

    ``on_eval(rung, step, val_loss)`` is called at step 0 and at every evaluation (for a live
    plot).
    """
    if rung not in RUNGS:
        raise ValueError(f"Unknown rung {rung!r}; the ladder's rungs are {list(RUNGS)}.")
    corpus = shakespeare_chars()
    model_config = config.model_config(corpus.tokenizer.vocab_size)
    train_config = get_preset("shakespeare-char").train.replace(
        max_steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        warmup_steps=config.warmup_steps,
        eval_every=config.eval_every,
        log_every=config.eval_every,
        progress_bar=False,
        seed=seed,
    )
    seed_everything(seed)
    model = RUNGS[rung](model_config)
    train_data, val_data = char_datasets(
        model_config.to_model_config(), train_config, config.eval_windows
    )
    curve: list[tuple[int, float]] = []

    def record(step: int, val_loss: float) -> None:
        curve.append((step, val_loss))
        if on_eval is not None:
            on_eval(rung, step, val_loss)

    def on_log(entry: dict[str, Any]) -> None:
        if "val_loss" in entry:
            record(entry["step"], entry["val_loss"])

    trainer = Trainer(model, train_config, train_data, val_data, on_log=on_log)
    record(0, trainer.evaluate()["val_loss"])
    result = trainer.fit()
    if curve[-1][0] != result.step:
        record(result.step, trainer.evaluate()["val_loss"])
    return RungRun(
        rung=rung,
        seed=seed,
        n_params=sum(p.numel() for p in model.parameters()),
        initial_val_loss=curve[0][1],
        val_loss=curve[-1][1],
        curve=curve,
        train_seconds=result.elapsed_s,
    )


def run_ladder(
    config: LadderConfig,
    seeds: Sequence[int] = (0,),
    rungs: Sequence[str] | None = None,
    on_eval: Callable[[str, int, float], None] | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Train every rung (default: all of ``RUNGS``) with every seed; returns the results
    record that ``write_results`` stores (``runs``, ``summary`` and what produced them)."""
    runs = []
    for seed in seeds:
        for rung in rungs or list(RUNGS):
            run = train_rung(rung, config, seed, on_eval)
            runs.append(run)
            if verbose:
                print(
                    f"seed {seed}  {rung:14} val loss {run.val_loss:.3f}  "
                    f"({run.train_seconds:.0f} s)",
                    flush=True,
                )
    corpus = shakespeare_chars()
    vocab = corpus.tokenizer.vocab_size
    return {
        "config": dataclasses.asdict(config),
        "config_hash": config.config_hash(),
        "tokens_per_rung": config.tokens,
        "seeds": list(seeds),
        "vocab_size": vocab,
        "ln_vocab": math.log(vocab),
        "counted_unigram_val_loss": counted_ngram_loss(corpus.train_ids, corpus.val_ids, vocab, 1),
        "counted_bigram_val_loss": counted_ngram_loss(corpus.train_ids, corpus.val_ids, vocab, 2),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "runs": [dataclasses.asdict(run) for run in runs],
        "summary": summarize(runs),
    }


def counted_ngram_loss(
    train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int, order: int = 2, k: float = 1.0
) -> float:
    """Validation loss (nats/token) of the n-gram model counted from the training ids, with
    add-k smoothing: P(b) = (c(b) + k) / (N + k·V) for ``order=1`` (unigram: letter
    frequencies, no context), P(b | a) = (c(a, b) + k) / (c(a) + k·V) for ``order=2`` (bigram:
    no trained bigram does much better)."""
    if order == 1:
        counts = np.bincount(train_ids, minlength=vocab_size) + k
        return float(-np.log(counts[val_ids] / counts.sum()).mean())
    if order != 2:
        raise ValueError(f"order must be 1 (unigram) or 2 (bigram), got {order}.")
    counts = np.zeros((vocab_size, vocab_size))
    np.add.at(counts, (train_ids[:-1], train_ids[1:]), 1.0)
    probs = (counts + k) / (counts + k).sum(axis=1, keepdims=True)
    return float(-np.log(probs[val_ids[:-1], val_ids[1:]]).mean())


def summarize(runs: Sequence[RungRun]) -> list[dict[str, Any]]:
    """Per rung, in ladder order: parameters, and the mean, standard deviation (n - 1), minimum
    and maximum over seeds of the initial and final validation losses."""
    rows = []
    for rung in dict.fromkeys(run.rung for run in runs):
        losses = np.array([run.val_loss for run in runs if run.rung == rung])
        initial = np.array([run.initial_val_loss for run in runs if run.rung == rung])
        params = next(run.n_params for run in runs if run.rung == rung)
        rows.append(
            {
                "rung": rung,
                "label": LABELS[rung],
                "n_params": params,
                "n_seeds": len(losses),
                "initial_val_loss": float(initial.mean()),
                "val_loss_mean": float(losses.mean()),
                "val_loss_std": float(losses.std(ddof=1)) if len(losses) > 1 else 0.0,
                "val_loss_min": float(losses.min()),
                "val_loss_max": float(losses.max()),
            }
        )
    return rows


def compare(results: dict[str, Any], rung: str, baseline: str) -> str:
    """``"better"`` or ``"worse"`` when every seed of ``rung`` ends below (above) every seed of
    ``baseline``; ``"within the spread"`` when their ranges overlap."""
    rows = {row["rung"]: row for row in results["summary"]}
    for name in (rung, baseline):
        if name not in rows:
            raise ValueError(f"No rung {name!r} in these results; they have {list(rows)}.")
    a, b = rows[rung], rows[baseline]
    if a["val_loss_max"] < b["val_loss_min"]:
        return "better"
    if a["val_loss_min"] > b["val_loss_max"]:
        return "worse"
    return "within the spread"


def to_markdown(results: dict[str, Any]) -> str:
    """The results as a markdown table, after a paragraph saying what produced them."""
    config, machine = results["config"], results["machine"]
    references = f"the counted bigram scores {results['counted_bigram_val_loss']:.3f}"
    if "counted_unigram_val_loss" in results:
        references = (
            f"letter frequencies alone (counted unigram) score "
            f"{results['counted_unigram_val_loss']:.3f}, {references}"
        )
    header = (
        f"Ablation ladder on character-level Shakespeare (validation: held-out plays). "
        f"Budget per rung: {config['steps']} steps × {config['batch_size']} × "
        f"{config['context_length']} = {results['tokens_per_rung']:,} characters; "
        f"d_model {config['d_model']}, {config['n_layer']} layers, {config['n_head']} heads, "
        f"lr {config['lr']:g}. Config hash `{results['config_hash']}`, {results['date']}, "
        f"{machine['processor']} ({machine['torch_threads']} thread(s), torch "
        f"{machine['torch']}). Losses in nats per character; ln(vocab) = "
        f"{results['ln_vocab']:.3f}; {references}."
    )
    return header + "\n\n" + table_markdown(results)


def table_markdown(results: dict[str, Any]) -> str:
    """One row per rung: parameters, loss at step 0, final loss (mean ± std) and its range."""
    n_seeds = len(results["seeds"])
    lines = [
        f"| rung | parameters | loss at step 0 | validation loss ({n_seeds} seed(s)) | range |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in results["summary"]:
        spread = f" ± {row['val_loss_std']:.3f}" if row["n_seeds"] > 1 else ""
        lines.append(
            f"| {row['label']} | {row['n_params']:,} | {row['initial_val_loss']:.3f} | "
            f"{row['val_loss_mean']:.3f}{spread} | "
            f"{row['val_loss_min']:.3f}–{row['val_loss_max']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], directory: str | os.PathLike[str] = RESULTS_DIR):
    """Write ``ladder.json`` and ``ladder.md`` into ``directory``; returns both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{RESULTS_NAME}.json", directory / f"{RESULTS_NAME}.md"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    md_path.write_text(to_markdown(results))
    return json_path, md_path


def load_results(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The committed results (``llmcourse/train/results/ladder.json``) or those at ``path``."""
    path = Path(path) if path is not None else RESULTS_DIR / f"{RESULTS_NAME}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"No ladder results at {path}; produce them with `python -m llmcourse.train ladder "
            "--seeds 3`."
        )
    return json.loads(path.read_text())


def _machine() -> dict[str, Any]:
    return {
        "processor": _cpu_name(),
        "system": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llmcourse.train ladder",
        description="Train every rung of the ablation ladder on the same budget; write a table.",
    )
    parser.add_argument("--budget", choices=list(BUDGETS), default="full")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--rungs", nargs="+", choices=list(RUNGS), help="default: all")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR), help="where the files go")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    for field in dataclasses.fields(LadderConfig):
        parser.add_argument(
            "--" + field.name.replace("_", "-"), type=type(getattr(LadderConfig(), field.name))
        )
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m llmcourse.train ladder ...``: train, print the table, write the files."""
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    if args["seeds"] < 1:
        raise SystemExit(f"--seeds must be at least 1, got {args['seeds']}.")
    changes = {f.name: args[f.name] for f in dataclasses.fields(LadderConfig)}
    try:
        config = dataclasses.replace(
            BUDGETS[args["budget"]], **{k: v for k, v in changes.items() if v is not None}
        )
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    start = time.perf_counter()
    results = run_ladder(config, range(args["seeds"]), args["rungs"], verbose=True)
    shown = sys.argv[2:] if argv is None else argv
    results["command"] = " ".join(["python -m llmcourse.train ladder", *shown])
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    paths = write_results(results, args["out_dir"])
    print(to_markdown(results))
    print("wrote", *paths)
    return results
