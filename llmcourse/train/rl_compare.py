"""One honest comparison on the arithmetic task: more SFT, DPO, PPO and GRPO from the same SFT
start at the same compute, over several seeds, into a results file lesson 09 loads.

Each method gets **GRPO's compute** (``budget``), counted in FLOPs as 2N per token a model reads
without gradients and 6N per token it trains on (N parameters; Kaplan et al. 2020), with
responses at their longest. From each seed's SFT start (``rlvr.sft_start``):

- **more SFT**: the same demonstrations, continued (``run_more_sft``);
- **DPO**: offline, on pairs of the start's own right and wrong answers (``answer_pairs``),
  plain and with the chosen answers' NLL added (Pang et al. 2024);
- **PPO**: a value head, GAE and the clipped loss on the same rollouts (``run_ppo``);
- **GRPO**: ``rlvr.run_grpo``; and GRPO rewarded by a **lax checker** that accepts the answer
  anywhere in the response, to measure what a loophole in a grader does.

``compare`` evaluates every model on the same held-out problems (``rlvr.evaluate_policy``) and
keeps the per-seed numbers with their mean and standard deviation; ``write_results`` stamps
them with the command, the config hash, the date and the machine into ``RESULTS`` (JSON) and a
markdown table beside it. More SFT can win here: every training problem comes with its answer,
and RL is for rewards you can check but cannot demonstrate.
"""

from __future__ import annotations

import copy
import json
import math
import multiprocessing
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmcourse.data.arithmetic import (
    ArithmeticReward,
    arithmetic_tokenizer,
    check_answer,
    encode_prompts,
    response_text,
)
from llmcourse.infer import generate
from llmcourse.train.batches import TensorRows
from llmcourse.train.config import TrainConfig
from llmcourse.train.dpo import DPOTask, preference_batches
from llmcourse.train.ppo_task import PolicyWithValue, PPOConfig, PPOTask
from llmcourse.train.preferences import PreferencePair
from llmcourse.train.rlvr import (
    RLVRConfig,
    arithmetic_model,
    evaluate_policy,
    greedy_answers,
    parameter_count,
    rl_train_changes,
    run_grpo,
    sft_start,
    sft_trainer,
)
from llmcourse.train.rollouts import response_ids, response_mask
from llmcourse.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results" / "rl_arithmetic.json"
EXAMPLES = 6  # greedy answers kept per method and seed, to read what a number hides
METHODS = (
    "SFT start",
    "more SFT",
    "SFT → DPO",
    "SFT → DPO + NLL",
    "SFT → PPO",
    "SFT → GRPO",
    "SFT → GRPO, lax checker",
)


def budget(config: RLVRConfig, n_params: int) -> dict[str, Any]:
    """GRPO's FLOPs, and what the other methods do with the same amount.

    Per GRPO rollout of R responses of L tokens: sampling (2N·R·L), π_old's and π_ref's
    log-probs (2 × 2N·R·L) and one training pass (6N·R·L). PPO runs the same rollouts (its
    value head adds under 0.1 %). An SFT step of B demonstrations costs 6N·B·L; DPO spends
    ``dpo_sampling_share`` of the budget sampling G answers per training prompt (2N·G·L each)
    and the rest on steps of B pairs (policy 2 × 6N·L and reference 2 × 2N·L per pair).
    """
    n, length = n_params, config.seq_len
    responses = config.prompts_per_rollout * config.group_size
    flops = config.rollouts * responses * length * n * (2 + 2 + 2 + 6)
    sft_steps = round(flops / (6 * n * config.sft_batch_size * length))
    dpo_prompts = round(config.dpo_sampling_share * flops / (2 * n * config.group_size * length))
    dpo_steps = round(
        (1 - config.dpo_sampling_share) * flops / (16 * n * length * config.dpo_batch_size)
    )
    return {
        "flops": flops,
        "sft_steps": sft_steps,
        "dpo_prompts": dpo_prompts,
        "dpo_steps": dpo_steps,
    }


def run_ppo(
    start: nn.Module, config: RLVRConfig, seed: int, progress_bar: bool = False
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """PPO with a value head on the same rollouts as GRPO (R independent prompts instead of
    R / G prompts × G answers), the same optimiser and KL coefficient, fixed."""
    tokenizer = arithmetic_tokenizer()
    ppo_config = PPOConfig(
        batch_size=config.prompts_per_rollout * config.group_size,
        minibatch_size=config.minibatch_size,
        max_new_tokens=config.max_new_tokens,
        ppo_epochs=1,
        lr=config.rl_lr,
        kl_coef=config.kl_coef,
        target_kl=None,
        stop_token=tokenizer.eos_id,
    )
    task = PPOTask(
        copy.deepcopy(start).eval(),
        ArithmeticReward(tokenizer),
        config.problems.prompt_fn(tokenizer),
        ppo_config,
        seed=seed,
    )
    policy = PolicyWithValue(copy.deepcopy(start))
    changes = rl_train_changes(
        config, ppo_config.steps_per_rollout, seed, progress_bar=progress_bar
    )
    trainer = Trainer(policy, ppo_config.train_config(config.rollouts, **changes), task=task)
    return policy.lm.eval(), trainer.fit().history


@torch.no_grad()
def answer_pairs(
    model: nn.Module, config: RLVRConfig, n_prompts: int, seed: int
) -> list[PreferencePair]:
    """Preference pairs from the model's own answers: for each of ``n_prompts`` training
    problems, ``group_size`` samples; every right answer is paired with a wrong one (as many
    pairs as the smaller side has). Prompts whose answers are all right or all wrong give none.
    """
    tokenizer = arithmetic_tokenizer()
    generator = torch.Generator().manual_seed(seed)
    problems = config.problems.sample(n_prompts, generator, "train")
    pairs: list[PreferencePair] = []
    model.eval()
    for start in range(0, len(problems), 512):
        chunk = problems[start : start + 512]
        prompts = encode_prompts(tokenizer, chunk).repeat_interleave(config.group_size, dim=0)
        tokens = generate(
            model, prompts, config.max_new_tokens, temperature=1.0,
            stop_tokens=tokenizer.eos_id, generator=generator,
        )  # fmt: skip
        mask = response_mask(tokens, prompts.shape[1], tokenizer.eos_id)
        answers = response_ids(tokens, mask, prompts.shape[1])
        for index, problem in enumerate(chunk):
            group = answers[index * config.group_size : (index + 1) * config.group_size]
            texts = [tokenizer.decode(ids) for ids in group]  # "82<eos>" keeps its end token
            right = [t for t, ids in zip(texts, group, strict=True)
                     if check_answer(response_text(tokenizer, ids), problem.answer)]  # fmt: skip
            wrong = sorted({t for t in texts if t not in right})
            for chosen, rejected in zip(sorted(set(right)), wrong, strict=False):
                pairs.append(PreferencePair(problem.prompt, chosen, rejected))
    return pairs


def run_dpo(
    start: nn.Module,
    config: RLVRConfig,
    seed: int,
    progress_bar: bool = False,
    nll_coef: float = 0.0,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Offline DPO on pairs of the start's right and wrong answers (``answer_pairs``), with the
    budget ``budget`` leaves it; ``nll_coef`` > 0 adds the chosen answers' NLL (``DPOTask``)."""
    tokenizer = arithmetic_tokenizer()
    plan = budget(config, parameter_count(start))
    pairs = answer_pairs(start, config, plan["dpo_prompts"], seed)
    if len(pairs) < config.dpo_batch_size:
        raise ValueError(
            f"Only {len(pairs)} preference pairs from {plan['dpo_prompts']} prompts: the start "
            "answers (almost) everything right or wrong, so DPO has nothing to compare."
        )
    data = TensorRows(preference_batches(tokenizer, pairs, pad_id=tokenizer.eos_id))
    train_config = TrainConfig(
        max_steps=max(1, plan["dpo_steps"]), batch_size=config.dpo_batch_size, lr=config.dpo_lr,
        warmup_steps=min(config.rl_warmup_steps, plan["dpo_steps"]), weight_decay=0.0,
        betas=(0.9, 0.999), schedule="constant", log_every=max(1, plan["dpo_steps"] // 20),
        seed=seed, progress_bar=progress_bar,
    )  # fmt: skip
    policy = copy.deepcopy(start)
    task = DPOTask(copy.deepcopy(start).eval(), beta=config.dpo_beta, nll_coef=nll_coef)
    history = Trainer(policy, train_config, data, task=task).fit().history
    history[0]["pairs"] = len(pairs)
    return policy.eval(), history


def run_more_sft(
    start: nn.Module, config: RLVRConfig, seed: int, progress_bar: bool = False
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """SFT continued on fresh demonstrations, at the start's learning rate, for as many FLOPs
    as GRPO spends."""
    plan = budget(config, parameter_count(start))
    policy = copy.deepcopy(start)
    trainer = sft_trainer(policy, config, max(1, plan["sft_steps"]), seed + 1000,
                           progress_bar=progress_bar)  # fmt: skip
    return policy.eval(), trainer.fit().history


def run_dpo_nll(
    start: nn.Module, config: RLVRConfig, seed: int, progress_bar: bool = False
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """``run_dpo`` with ``dpo_nll_coef`` times the chosen answers' NLL added (Pang et al. 2024)."""
    return run_dpo(start, config, seed, progress_bar, nll_coef=config.dpo_nll_coef)


def run_grpo_lax(
    start: nn.Module, config: RLVRConfig, seed: int, progress_bar: bool = False
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """GRPO rewarded by the lax checker (``lax_*`` fields): what a loophole in a grader does."""
    return run_grpo(
        start, config, seed, progress_bar, checker=config.lax_checker,
        temperature=config.lax_temperature, max_new_tokens=config.lax_max_new_tokens,
    )  # fmt: skip


RUNNERS: dict[str, Callable[..., tuple[nn.Module, list[dict[str, Any]]]]] = {
    "more SFT": run_more_sft,
    "SFT → DPO": run_dpo,
    "SFT → DPO + NLL": run_dpo_nll,
    "SFT → PPO": run_ppo,
    "SFT → GRPO": run_grpo,
    "SFT → GRPO, lax checker": run_grpo_lax,
}


def evaluate_for(config: RLVRConfig, model: nn.Module, reference: nn.Module) -> dict[str, float]:
    """``evaluate_policy`` on the config's held-out set (the same problems for every method),
    with room for answers as long as the context allows and the lax checker's verdict too."""
    return evaluate_policy(
        model,
        config.problems.held_out_set(config.eval_problems),
        reference=reference,
        samples=config.eval_samples,
        sample_problems=config.sample_problems,
        max_new_tokens=config.context_length - config.problems.prompt_length,
        checkers=("exact", config.lax_checker),
    )


def run_seed(
    config: RLVRConfig, seed: int, methods: Sequence[str] = METHODS, threads: int | None = None
) -> dict[str, dict[str, Any]]:
    """Each method from this seed's SFT start, evaluated on the held-out set, timed."""
    if threads:
        torch.set_num_threads(threads)
    tick = time.perf_counter()
    start, history = sft_start(config, seed)
    start_seconds = time.perf_counter() - tick
    entries = {}
    examples = config.problems.held_out_set(config.eval_problems)[:EXAMPLES]
    for method in methods:
        tick = time.perf_counter()
        if method == "SFT start":
            model, seconds = start, start_seconds
        else:
            model, history = RUNNERS[method](start, config, seed)
            seconds = time.perf_counter() - tick
        numbers = evaluate_for(config, model, start)
        entries[method] = {"seed": seed, **numbers, "seconds": round(seconds, 1)}
        entries[method]["steps"] = history[-1]["step"]
        entries[method]["curve"] = thin(history)
        entries[method]["examples"] = greedy_answers(
            model, examples, config.context_length - config.problems.prompt_length
        )
        print(f"seed {seed} {method:12} accuracy {numbers['accuracy']:.3f} "
              f"KL {numbers['kl']:.3f} ({seconds:.0f} s)", flush=True)  # fmt: skip
    return entries


def thin(history: list[dict[str, Any]], points: int = 40) -> list[dict[str, float]]:
    """At most ``points`` log records (evenly spaced, the last included), with the numbers
    that make a training curve: step, loss and, for RL, the rollout's reward, KL and length."""
    keys = ("step", "rollout", "loss", "reward", "kl", "response_length", "entropy", "margin")
    stride = max(1, math.ceil(len(history) / points))
    chosen = history[::stride] + ([history[-1]] if (len(history) - 1) % stride else [])
    return [{k: record[k] for k in keys if k in record} for record in chosen]


def compare(
    config: RLVRConfig, seeds: Sequence[int], methods: Sequence[str] = METHODS, jobs: int = 1
) -> dict[str, Any]:
    """``run_seed`` for every seed (``jobs`` > 1: that many processes of one thread each), then
    per method the per-seed numbers with their mean and standard deviation, and the budget."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; choose from {list(METHODS)}.")
    if jobs > 1:
        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            n = len(seeds)
            per_seed = list(pool.map(run_seed, [config] * n, seeds, [methods] * n, [1] * n))
    else:
        per_seed = [run_seed(config, seed, methods) for seed in seeds]
    n_params = parameter_count(arithmetic_model(config, 0))
    return {
        "config": config.to_dict(),
        "config_hash": config.hash,
        "seeds": list(seeds),
        "parameters": n_params,
        "budget": budget(config, n_params),
        "methods": {m: summarize([entries[m] for entries in per_seed]) for m in methods},
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed runs with the mean and the (n − 1) standard deviation of each number."""
    names = [k for k, v in runs[0].items() if k != "seed" and isinstance(v, int | float)]
    mean = {k: statistics.fmean(r[k] for r in runs) for k in names}
    std = {k: statistics.stdev(r[k] for r in runs) if len(runs) > 1 else 0.0 for k in names}
    return {"runs": runs, "mean": mean, "std": std}


# -- the results file ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def write_results(results: dict[str, Any], path: str | Path, command: str) -> Path:
    """``path`` (JSON) and the same name with ``.md``: the table, the command, the config hash,
    the date and the machine."""
    path = Path(path)
    stamped = {
        "command": command,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        **results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamped, indent=1, ensure_ascii=False) + "\n")
    path.with_suffix(".md").write_text(results_markdown(stamped))
    return path


def results_markdown(results: dict[str, Any]) -> str:
    """The comparison as a markdown table (mean ± standard deviation over the seeds)."""

    def cell(summary: dict[str, Any], key: str, digits: int = 3) -> str:
        if key not in summary["mean"]:
            return "–"
        return f"{summary['mean'][key]:.{digits}f} ± {summary['std'][key]:.{digits}f}"

    seeds, k = results["seeds"], results["config"]["eval_samples"]
    lines = [
        "# Arithmetic: SFT vs DPO vs PPO vs GRPO at equal compute",
        "",
        f"Command: `{results['command']}`  ",
        f"Config hash `{results['config_hash']}`, {results['date']}, "
        f"{results['machine']['processor']} ({results['machine']['platform']}), "
        f"torch {results['machine']['torch']}, {results['machine']['threads']} thread(s).",
        "",
        f"Held-out problems, mean ± standard deviation over {len(seeds)} seeds {seeds}. "
        f"Budget per method after the SFT start: {results['budget'].get('flops', 0):.3g} FLOPs.",
        "",
        f"| method | held-out accuracy (greedy) | pass@1 | pass@{k} | KL to start (nats) "
        "| seconds |",
        "|---|---|---|---|---|---|",
    ]
    for method, summary in results["methods"].items():
        lines.append(
            f"| {method} | {cell(summary, 'accuracy')} | {cell(summary, 'pass@1')} | "
            f"{cell(summary, f'pass@{k}')} | {cell(summary, 'kl')} | "
            f"{cell(summary, 'seconds', 0)} |"
        )
    return "\n".join(lines) + "\n"


def load_results(path: str | Path = RESULTS) -> dict[str, Any]:
    """The committed comparison (``python -m llmcourse.train grpo --compare``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No results at {path}: run `python -m llmcourse.train grpo --compare` to make them."
        )
    return json.loads(path.read_text())
