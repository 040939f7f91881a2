"""The report card: ``report.md``, ``report.json`` and PNG plots from ``run_capstone``'s results.

Every number in ``report.md`` is read from the stages' ``result.json`` files (``report.json``
holds the same, and the tests check the markdown tables against the stage outputs):

- the run: command, config hash, date, machine, parameter count, total wall time and energy
  (wall time × the stated CPU power, ``llmcourse.scaling.hardware.training_energy_kwh``);
- one row per stage: steps, tokens, tokens/s, wall time, energy;
- one row per model: perplexity and bits per byte on the held-out plays, held-out arithmetic
  accuracy, multiple-choice accuracy (± standard errors); GRPO and equal-compute SFT as the
  mean ± standard deviation over ``rl_seeds``, with each seed's accuracy;
- the models' replies to the sample prompts; the plots ``loss.png``, ``grpo.png``, ``evals.png``.
"""

from __future__ import annotations

import datetime
import json
import platform
import statistics
from pathlib import Path
from typing import Any

TRAINING_STAGES = ("pretrain", "sft")
MODEL_LABELS = {
    "pretrain": "pretrained",
    "sft": "SFT",
    "sft_more": "SFT + more SFT (GRPO's compute)",
    "grpo": "SFT + GRPO",
}


def model_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: the evaluation numbers (seed means and spreads for the RL stages)."""
    stages, seeds = results["stages"], results["config"]["rl_seeds"]
    rows = []
    for name in ("pretrain", "sft", "sft_more", "grpo"):
        runs = [name] if name in TRAINING_STAGES else [f"{name}-{s}" for s in seeds]
        evals = [stages[f"eval-{run}"] for run in runs]
        arithmetic = [e["arithmetic"]["accuracy"] for e in evals]
        row = {
            "model": MODEL_LABELS[name],
            "stage": name,
            "seeds": len(runs),
            "perplexity": statistics.fmean(e["perplexity"] for e in evals),
            "bits_per_byte": statistics.fmean(e["bits_per_byte"] for e in evals),
            "arithmetic": statistics.fmean(arithmetic),
            "arithmetic_spread": (
                statistics.stdev(arithmetic)
                if len(runs) > 1
                else evals[0]["arithmetic"]["accuracy_se"]
            ),
            "arithmetic_per_seed": arithmetic,
            "multiple_choice": statistics.fmean(e["multiple_choice"]["accuracy"] for e in evals),
            "multiple_choice_se": evals[0]["multiple_choice"]["accuracy_se"],
            "arithmetic_n": evals[0]["arithmetic"]["n"],
            "multiple_choice_n": evals[0]["multiple_choice"]["n"],
        }
        rows.append(row)
    return rows


def stage_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per training stage run (every seed of the RL stages)."""
    rows = []
    for name, stage in results["stages"].items():
        if "tokens_per_s" not in stage:
            continue
        rows.append({
            "stage": name, "steps": stage["steps"], "tokens": stage["tokens"],
            "tokens_per_s": stage["tokens_per_s"], "wall_s": stage["wall_s"],
            "energy_wh": stage["energy_wh"],
        })  # fmt: skip
    return rows


def build_report(results: dict[str, Any], report_dir: str | Path, command: str) -> Path:
    """Write ``report.md``, ``report.json`` and the plots into ``report_dir``; returns report.md."""
    folder = Path(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    config, stages = results["config"], results["stages"]
    models, runs = model_rows(results), stage_rows(results)
    n_params = stages["pretrain"]["n_params"]
    compute_s = sum(stage["wall_s"] for stage in stages.values())
    energy = sum(row["energy_wh"] for row in runs)
    summary = {
        "command": command,
        "config_hash": results["config_hash"],
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch threads",
        "n_params": n_params,
        "stage_seconds": compute_s,
        "training_energy_wh": energy,
        "config": config,
        "models": models,
        "stages": runs,
        "tokenizer": {k: v for k, v in stages["tokenizer"].items() if k != "folder"},
        "generations": {
            row["stage"]: stages[f"eval-{_first_run(row['stage'], config)}"]["generations"]
            for row in models
        },
    }
    import torch

    summary["machine"] = f"{platform.machine()}, {torch.get_num_threads()} torch threads"
    _plots(results, models, folder)
    (folder / "report.json").write_text(json.dumps(summary, indent=1))
    path = folder / "report.md"
    path.write_text(_markdown(summary))
    return path


def _first_run(stage: str, config: dict[str, Any]) -> str:
    return stage if stage in TRAINING_STAGES else f"{stage}-{config['rl_seeds'][0]}"


def _markdown(summary: dict[str, Any]) -> str:
    config, tokenizer = summary["config"], summary["tokenizer"]
    seeds = ", ".join(str(s) for s in config["rl_seeds"])
    lines = [
        f"# Capstone report card: `{config['size']}`",
        "",
        f"- command: `{summary['command']}`",
        f"- config hash: `{summary['config_hash']}`; date: {summary['date']}; "
        f"machine: {summary['machine']}",
        f"- model: {config['n_layer']} layers, d_model {config['d_model']}, context "
        f"{config['context_length']}, **{summary['n_params']:,} parameters**; tokenizer: "
        f"byte-level BPE, {tokenizer['vocab_size']} tokens, "
        f"{tokenizer['train_bytes_per_token']:.2f} bytes per token",
        f"- wall time of the stages: {summary['stage_seconds']:.0f} s; training energy "
        f"{summary['training_energy_wh']:.2f} Wh (wall time × {config['cpu_watts']:g} W stated "
        "CPU power, PUE 1)",
        "",
        "## Evaluation after each stage",
        "",
        f"Arithmetic: {config['digits']}-digit sums never seen in training, greedy, exact "
        "match. GRPO and more SFT: mean ± standard deviation over RL seeds "
        f"{seeds} (from one SFT model); pretrained and SFT: ± binomial standard error. Multiple "
        "choice: the course benchmark, chance 0.25.",
        "",
        "| model | perplexity | bits/byte | arithmetic accuracy | per seed | multiple choice |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["models"]:
        per_seed = " ".join(f"{a:.3f}" for a in row["arithmetic_per_seed"])
        lines.append(
            f"| {row['model']} | {row['perplexity']:.2f} | {row['bits_per_byte']:.3f} | "
            f"{row['arithmetic']:.3f} ± {row['arithmetic_spread']:.3f} | {per_seed} | "
            f"{row['multiple_choice']:.3f} ± {row['multiple_choice_se']:.3f} |"
        )
    lines += [
        "",
        f"n = {summary['models'][0]['arithmetic_n']} arithmetic problems, "
        f"{summary['models'][0]['multiple_choice_n']} multiple-choice questions.",
        "",
        "## Stages",
        "",
        "| stage | steps | tokens | tokens/s | wall s | energy Wh |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["stages"]:
        lines.append(
            f"| {row['stage']} | {row['steps']} | {row['tokens']} | {row['tokens_per_s']:.0f} | "
            f"{row['wall_s']:.1f} | {row['energy_wh']:.3f} |"
        )
    lines += ["", "## Replies (greedy, chat format)", ""]
    for stage, replies in summary["generations"].items():
        for item in replies:
            prompt, reply = item["prompt"].replace("\n", " ⏎ "), item["reply"].replace("\n", " ⏎ ")
            lines.append(f"- {MODEL_LABELS[stage]} · `{prompt}` → `{reply}`")
    lines += [
        "",
        "![losses](loss.png)",
        "",
        "![GRPO](grpo.png)",
        "",
        "![evaluation](evals.png)",
        "",
    ]
    return "\n".join(lines)


def _plots(results: dict[str, Any], models: list[dict[str, Any]], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages, seeds = results["stages"], results["config"]["rl_seeds"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for axis, name in zip(axes, ("pretrain", "sft"), strict=True):
        history = stages[name]["history"]
        axis.plot([r["step"] for r in history], [r["loss"] for r in history], label="train")
        val = [r for r in history if r.get("val_loss") is not None]
        if val:
            axis.plot(
                [r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="held out"
            )
        axis.set(
            title=f"{MODEL_LABELS[name]} loss", xlabel="step", ylabel="cross-entropy (nats/token)"
        )
        axis.legend()
    figure.tight_layout()
    figure.savefig(folder / "loss.png", dpi=100)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(5, 3.5))
    for seed in seeds:
        history = stages[f"grpo-{seed}"]["history"]
        rollouts = [r.get("rollout", r["step"]) for r in history]
        axis.plot(rollouts, [r.get("reward") for r in history], label=f"seed {seed}")
    axis.set(title="GRPO: share of sampled answers right", xlabel="rollout", ylabel="mean reward")
    axis.legend()
    figure.tight_layout()
    figure.savefig(folder / "grpo.png", dpi=100)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6, 3.5))
    labels = [row["model"].replace(" (", "\n(") for row in models]
    axis.bar(labels, [row["arithmetic"] for row in models],
             yerr=[row["arithmetic_spread"] for row in models], capsize=4)  # fmt: skip
    axis.set(title="Held-out arithmetic after each stage", ylabel="accuracy (exact match)")
    axis.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    figure.savefig(folder / "evals.png", dpi=100)
    plt.close(figure)


def load_report(folder: str | Path) -> dict[str, Any]:
    """The ``report.json`` that ``build_report`` wrote into ``folder``."""
    path = Path(folder) / "report.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"No report.json in {folder}: run `llmcourse capstone --size SIZE --report-dir "
            f"{folder}` first."
        )
    return json.loads(path.read_text())


def compare_reports(reports: dict[str, dict[str, Any]]) -> str:
    """A markdown table with one row per (report, model): what changing one choice did.

    ``reports`` maps a label (``"baseline"``, ``"vocab 512"``) to a ``load_report`` result."""
    lines = [
        "| run | model | perplexity | arithmetic accuracy | multiple choice | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for label, report in reports.items():
        for row in report["models"]:
            lines.append(
                f"| {label} | {row['model']} | {row['perplexity']:.2f} | {row['arithmetic']:.3f} "
                f"± {row['arithmetic_spread']:.3f} | {row['multiple_choice']:.3f} | "
                f"{report['n_params']:,} |"
            )
    return "\n".join(lines)
