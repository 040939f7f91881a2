"""RL with verifiable rewards on arithmetic: an SFT start, held-out evaluation, and one honest
comparison of more SFT, DPO, PPO and GRPO from that start.

The recipe of reasoning models (DeepSeek-AI 2025; Lambert et al. 2024, Tülu 3, "RLVR"): a model
that has seen demonstrations (SFT) samples answers, a program checks them, and RL raises the
share it gets right. Here, on ``llmcourse.data.arithmetic``:

1. ``sft_start``: a small character GPT (``arithmetic_model``, 3 layers) trained on
   demonstrations ``"37+45=82<eos>"`` of training-split problems;
2. one more phase from that start (``run_method``): GRPO (``llmcourse.train.grpo``), PPO with a
   value head (``ppo_task``), offline DPO on pairs of the start's own right and wrong answers
   (``dpo``), or simply more SFT. Each gets the **same compute** as GRPO, counted in FLOPs as
   2N per token a model reads without gradients and 6N per token it trains on (N parameters;
   Kaplan et al. 2020), with responses at their longest (``budget``);
3. ``evaluate_policy``: accuracy of greedy answers on held-out problems, pass@1 and pass@k of
   sampled ones (``llmcourse.eval.pass_at_k``), the KL to the start and the response length.

``python -m llmcourse.train grpo`` runs 1-3 with GRPO over several seeds; with ``--compare`` it
runs every method and writes ``rl_arithmetic.json`` and ``.md`` (``RESULTS``, which lesson 09
loads with ``load_results``). More SFT can win here: every training problem comes with its
answer, and RL is for rewards you can check but cannot demonstrate.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import multiprocessing
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmcourse.config import ModelConfig
from llmcourse.data.arithmetic import (
    ArithmeticProblems,
    ArithmeticReward,
    Problem,
    arithmetic_tokenizer,
    check_answer,
    encode_prompts,
    response_text,
    sft_examples,
)
from llmcourse.data.collators import SFTCollator
from llmcourse.eval.passk import mean_pass_at_k
from llmcourse.infer import generate
from llmcourse.models import DecoderLM
from llmcourse.tokenizers import CharTokenizer
from llmcourse.train.batches import TensorRows
from llmcourse.train.config import TrainConfig
from llmcourse.train.dpo import DPOTask, preference_batches
from llmcourse.train.grpo import GRPOConfig, GRPOTask
from llmcourse.train.ppo import kl_from_logits
from llmcourse.train.ppo_task import PolicyWithValue, PPOConfig, PPOTask
from llmcourse.train.preferences import PreferencePair
from llmcourse.train.rollouts import response_ids, response_mask
from llmcourse.train.trainer import Trainer
from llmcourse.utils.seed import seed_everything

RESULTS = Path(__file__).resolve().parent / "results" / "rl_arithmetic.json"
METHODS = ("SFT start", "more SFT", "SFT → DPO", "SFT → PPO", "SFT → GRPO")


@dataclass(frozen=True)
class RLVRConfig:
    """Everything the comparison depends on (its hash names the results)."""

    digits: int = 2
    ops: str = "+"
    held_out: float = 0.1
    n_layer: int = 3
    d_model: int = 96
    n_head: int = 4
    context_length: int = 16  # room for responses longer than the answer (lax checkers)
    # The SFT start: Adam at a constant rate after a warm-up, until the greedy accuracy on
    # sft_check_problems training problems (checked every sft_check_every steps) reaches
    # sft_target, or for at most sft_steps steps.
    sft_steps: int = 3000
    sft_batch_size: int = 64
    sft_lr: float = 3e-3
    sft_target: float | None = 0.3
    sft_check_every: int = 50
    sft_check_problems: int = 200
    # The RL phase (GRPO, and PPO with the same rollouts).
    rollouts: int = 200
    prompts_per_rollout: int = 64
    group_size: int = 8
    minibatch_size: int = 256
    rl_lr: float = 3e-4
    rl_warmup_steps: int = 10
    kl_coef: float = 0.0
    # DPO: a quarter of the budget samples pairs, the rest trains on them.
    dpo_beta: float = 0.1
    dpo_lr: float = 2e-5
    dpo_batch_size: int = 64
    dpo_sampling_share: float = 0.25
    # Evaluation: greedy answers to eval_problems held-out problems; eval_samples sampled
    # answers to the first sample_problems of them for pass@k and the KL.
    eval_problems: int = 500
    sample_problems: int = 100
    eval_samples: int = 8

    @classmethod
    def tiny(cls) -> RLVRConfig:
        """Seconds instead of minutes: what the tests run (the numbers mean nothing)."""
        return cls(
            digits=1, held_out=0.4, n_layer=2, d_model=32, sft_steps=60, sft_batch_size=32,
            sft_target=None,
            rollouts=3, prompts_per_rollout=8, group_size=4, minibatch_size=16,
            rl_warmup_steps=0, dpo_batch_size=8, dpo_sampling_share=0.5, eval_problems=16,
            sample_problems=8,
            eval_samples=4,
        )  # fmt: skip

    def replace(self, **changes: Any) -> RLVRConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def problems(self) -> ArithmeticProblems:
        return ArithmeticProblems(self.digits, self.ops, self.held_out)

    @property
    def max_new_tokens(self) -> int:
        return self.problems.max_answer_length + 1  # the answer and <eos>

    @property
    def seq_len(self) -> int:
        """Tokens of a prompt and its longest answer: what every phase reads per example."""
        return self.problems.prompt_length + self.max_new_tokens

    def grpo(self, tokenizer: CharTokenizer) -> GRPOConfig:
        return GRPOConfig(
            prompts_per_rollout=self.prompts_per_rollout,
            group_size=self.group_size,
            max_new_tokens=self.max_new_tokens,
            minibatch_size=self.minibatch_size,
            lr=self.rl_lr,
            kl_coef=self.kl_coef,
            stop_token=tokenizer.eos_id,
        )


# -- the model and its SFT start ----------------------------------------------------------------


def arithmetic_model(config: RLVRConfig, seed: int) -> DecoderLM:
    """A LLaMA-style character GPT (RoPE, RMSNorm, SwiGLU) sized by ``config``, seeded."""
    seed_everything(seed)
    model_config = ModelConfig(
        vocab_size=arithmetic_tokenizer().vocab_size,
        context_length=config.context_length,
        d_model=config.d_model,
        n_layer=config.n_layer,
        n_head=config.n_head,
        position="rope",
        norm="rmsnorm",
        mlp="swiglu",
        bias=False,
    )
    return DecoderLM(model_config)


def _sft_trainer(
    model: nn.Module,
    config: RLVRConfig,
    steps: int,
    seed: int,
    *,
    warmup_steps: int = 0,
    progress_bar: bool = False,
) -> Trainer:
    """A ``Trainer`` for ``steps`` steps of SFT on fresh training-split demonstrations drawn
    with ``seed``, Adam at ``sft_lr`` (constant after the warm-up)."""
    tokenizer = arithmetic_tokenizer()
    problems = config.problems.sample(
        steps * config.sft_batch_size, torch.Generator().manual_seed(seed), "train"
    )
    train_config = TrainConfig(
        max_steps=steps, batch_size=config.sft_batch_size, lr=config.sft_lr,
        warmup_steps=warmup_steps, schedule="constant", weight_decay=0.0, betas=(0.9, 0.99),
        log_every=config.sft_check_every, seed=seed, progress_bar=progress_bar, shuffle=False,
    )  # fmt: skip
    data = sft_examples(tokenizer, problems)
    return Trainer(model, train_config, data, collate_fn=SFTCollator(tokenizer.eos_id))


def sft_start(
    config: RLVRConfig, seed: int, progress_bar: bool = False
) -> tuple[DecoderLM, list[dict[str, Any]]]:
    """The model every method starts from: SFT from random weights until the greedy accuracy
    on a fixed set of *training* problems reaches ``sft_target`` (the held-out set is never
    looked at), or ``sft_steps``. The history's records carry ``train_accuracy`` where checked.

    Small models learn addition with a sudden jump whose timing varies from seed to seed; a
    fixed step count would start some seeds before the jump and some after it.
    """
    model = arithmetic_model(config, seed)
    trainer = _sft_trainer(model, config, config.sft_steps, seed,
                           warmup_steps=min(20, config.sft_steps // 10),
                           progress_bar=progress_bar)  # fmt: skip
    check = config.problems.sample(
        config.sft_check_problems, torch.Generator().manual_seed(seed + 10_000), "train"
    )
    while trainer.step < config.sft_steps:
        trainer.fit(steps=config.sft_check_every)
        accuracy = evaluate_policy(model, check, samples=0, max_new_tokens=config.max_new_tokens)
        trainer.history[-1]["train_accuracy"] = accuracy["accuracy"]
        if config.sft_target is not None and accuracy["accuracy"] >= config.sft_target:
            break
    return model.eval(), trainer.history


# -- evaluation ---------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_policy(
    model: nn.Module,
    problems: Sequence[Problem],
    *,
    reference: nn.Module | None = None,
    samples: int = 8,
    sample_problems: int | None = None,
    max_new_tokens: int = 4,
    ks: Sequence[int] = (1, 4, 8),
    seed: int = 0,
    checker: str = "exact",
) -> dict[str, float]:
    """Held-out numbers of a policy on ``problems``.

    ``accuracy``: greedy answers judged by ``checker`` (and ``accuracy_se``, its binomial
    standard error). From ``samples`` answers sampled at temperature 1 to each of the first
    ``sample_problems`` problems: ``pass@k`` (unbiased, for each k ≤ samples), ``reward`` (the
    share of samples right), ``response_length`` (tokens, <eos> included) and, given the
    ``reference``, ``kl``: Σ_t KL(π(·|prefix) ‖ π_ref(·|prefix)) over a sampled response, in
    nats, averaged (``kl_from_logits``: exact per position, so not noisy like k1).
    """
    tokenizer = arithmetic_tokenizer()
    model.eval()
    prompts = encode_prompts(tokenizer, problems).to(next(model.parameters()).device)
    prompt_len = prompts.shape[1]

    def judge(tokens: torch.Tensor, chosen: Sequence[Problem]) -> tuple[list[bool], torch.Tensor]:
        mask = response_mask(tokens, prompt_len, tokenizer.eos_id)
        texts = [response_text(tokenizer, ids) for ids in response_ids(tokens, mask, prompt_len)]
        verdicts = [
            check_answer(text, problem.answer, checker)  # type: ignore[arg-type]
            for text, problem in zip(texts, chosen, strict=True)
        ]
        return verdicts, mask

    greedy = generate(model, prompts, max_new_tokens, temperature=0.0, stop_tokens=tokenizer.eos_id)
    correct, _ = judge(greedy, problems)
    accuracy = sum(correct) / len(correct)
    result = {
        "accuracy": accuracy,
        "accuracy_se": math.sqrt(accuracy * (1 - accuracy) / len(correct)),
    }
    if samples:
        chosen = list(problems[:sample_problems])
        repeated = prompts[: len(chosen)].repeat_interleave(samples, dim=0)
        generator = torch.Generator(repeated.device).manual_seed(seed)
        tokens = generate(
            model, repeated, max_new_tokens, temperature=1.0, stop_tokens=tokenizer.eos_id,
            generator=generator,
        )  # fmt: skip
        verdicts, mask = judge(tokens, [p for p in chosen for _ in range(samples)])
        right = torch.tensor(verdicts, dtype=torch.float32).view(len(chosen), samples)
        for k in ks:
            if k <= samples:
                result[f"pass@{k}"] = mean_pass_at_k(samples, right.sum(1).int().tolist(), k)
        result["reward"] = float(right.mean())
        result["response_length"] = float(mask.sum(-1).mean())
        if reference is not None:
            reference.eval()
            kl = kl_from_logits(model(tokens).logits[:, :-1], reference(tokens).logits[:, :-1])
            result["kl"] = float((kl * mask).sum(-1).mean())
    return result


# -- the methods, at equal compute ---------------------------------------------------------------


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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


def _rl_train_config(config: RLVRConfig, steps_per_rollout: int, seed: int, **changes: Any):
    return {
        "warmup_steps": min(config.rl_warmup_steps, config.rollouts * steps_per_rollout),
        "seed": seed,
        **changes,
    }


def run_grpo(
    start: nn.Module,
    config: RLVRConfig,
    seed: int,
    progress_bar: bool = False,
    eval_every: int = 0,
    **grpo: Any,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """GRPO from a copy of ``start`` (frozen as the reference); ``grpo`` overrides
    ``GRPOConfig`` fields (the loss, the aggregation, the KL, ...) and ``checker`` the reward's
    laxness. ``eval_every`` > 0 logs held-out greedy ``accuracy`` (exact checker, and
    ``accuracy_<checker>`` for a lax one) every that many rollouts."""
    tokenizer = arithmetic_tokenizer()
    checker = grpo.pop("checker", "exact")
    grpo_config = dataclasses.replace(config.grpo(tokenizer), **grpo)
    held_out = config.problems.held_out_set(config.eval_problems)

    def held_out_accuracy(model: nn.Module) -> dict[str, float]:
        numbers = {}
        for name in dict.fromkeys(("exact", checker)):
            key = "accuracy" if name == "exact" else f"accuracy_{name}"
            numbers[key] = evaluate_policy(
                model, held_out, samples=0, max_new_tokens=grpo_config.max_new_tokens,
                checker=name,
            )["accuracy"]  # fmt: skip
        return numbers

    task = GRPOTask(
        copy.deepcopy(start).eval(),
        ArithmeticReward(tokenizer, checker),
        config.problems.prompt_fn(tokenizer),
        grpo_config,
        seed=seed,
        evaluate_fn=held_out_accuracy if eval_every else None,
    )
    policy = copy.deepcopy(start)
    changes = _rl_train_config(
        config, grpo_config.steps_per_rollout, seed, progress_bar=progress_bar,
        eval_every=eval_every * grpo_config.steps_per_rollout,
    )  # fmt: skip
    trainer = Trainer(policy, grpo_config.train_config(config.rollouts, **changes), task=task)
    return policy.eval(), trainer.fit().history


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
    changes = _rl_train_config(
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
    start: nn.Module, config: RLVRConfig, seed: int, progress_bar: bool = False
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Offline DPO on pairs of the start's right and wrong answers (``answer_pairs``), with the
    budget ``budget`` leaves it."""
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
    task = DPOTask(copy.deepcopy(start).eval(), beta=config.dpo_beta)
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
    trainer = _sft_trainer(policy, config, max(1, plan["sft_steps"]), seed + 1000,
                           progress_bar=progress_bar)  # fmt: skip
    return policy.eval(), trainer.fit().history


RUNNERS: dict[str, Callable[..., tuple[nn.Module, list[dict[str, Any]]]]] = {
    "more SFT": run_more_sft,
    "SFT → DPO": run_dpo,
    "SFT → PPO": run_ppo,
    "SFT → GRPO": run_grpo,
}


def evaluate_for(config: RLVRConfig, model: nn.Module, reference: nn.Module) -> dict[str, float]:
    """``evaluate_policy`` on the config's held-out set (the same problems for every method)."""
    return evaluate_policy(
        model,
        config.problems.held_out_set(config.eval_problems),
        reference=reference,
        samples=config.eval_samples,
        sample_problems=config.sample_problems,
        max_new_tokens=config.max_new_tokens,
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
    for method in methods:
        tick = time.perf_counter()
        model = start if method == "SFT start" else RUNNERS[method](start, config, seed)[0]
        seconds = start_seconds if method == "SFT start" else time.perf_counter() - tick
        numbers = evaluate_for(config, model, start)
        entries[method] = {"seed": seed, **numbers, "seconds": round(seconds, 1)}
        if method == "SFT start":
            entries[method]["steps"] = history[-1]["step"]
        print(f"seed {seed} {method:12} accuracy {numbers['accuracy']:.3f} "
              f"KL {numbers['kl']:.3f} ({seconds:.0f} s)", flush=True)  # fmt: skip
    return entries


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
