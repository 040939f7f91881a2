"""RL with verifiable rewards on arithmetic: the SFT start, GRPO from it, held-out evaluation.

The recipe of reasoning models (DeepSeek-AI 2025; Lambert et al. 2024, Tülu 3, "RLVR"): a model
that has seen demonstrations (SFT) samples answers, a program checks them, and RL raises the
share it gets right. Here, on ``llmcourse.data.arithmetic``:

1. ``sft_start``: a small character GPT (``arithmetic_model``, 3 layers) trained on
   demonstrations ``"37+45=82<eos>"`` of training-split problems until it gets 30 % of a fixed
   set of *training* problems right (``cached_sft_start`` keeps it in the course cache);
2. ``run_grpo``: GRPO (``llmcourse.train.grpo``) from a copy of that start, which stays frozen
   as the reference;
3. ``evaluate_policy``: accuracy of greedy answers on held-out problems, pass@1 and pass@k of
   sampled ones (``llmcourse.eval.pass_at_k``), the KL to the start and the response length.

``llmcourse.train.rl_compare`` runs more SFT, DPO and PPO from the same start at the same
compute; ``python -m llmcourse.train grpo`` (``rlvr_cli``) runs both from the command line.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmcourse.config import ModelConfig
from llmcourse.data.arithmetic import (
    CHECKERS,
    OPERATIONS,
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
from llmcourse.train.checkpoints import model_from_checkpoint
from llmcourse.train.config import TrainConfig
from llmcourse.train.grpo import GRPOConfig, GRPOTask
from llmcourse.train.ppo import kl_from_logits
from llmcourse.train.rollouts import response_ids, response_mask
from llmcourse.train.trainer import Trainer
from llmcourse.utils.checkpoint import save_checkpoint
from llmcourse.utils.checks import check_choice, check_int, check_number, check_type
from llmcourse.utils.logging import get_logger
from llmcourse.utils.paths import cache_dir
from llmcourse.utils.seed import seed_everything

SFT_FIELDS = (
    "digits", "ops", "held_out", "n_layer", "d_model", "n_head", "context_length", "sft_steps",
    "sft_batch_size", "sft_lr", "sft_target", "sft_check_every", "sft_check_problems",
)  # fmt: skip


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
    dpo_nll_coef: float = 1.0  # "SFT → DPO + NLL" (Pang et al. 2024)
    # "SFT → GRPO, lax checker": rewarded when the answer appears anywhere in the response,
    # sampled hotter and allowed longer answers, so that the policy can find the loophole.
    lax_checker: str = "contains"
    lax_temperature: float = 2.0
    lax_max_new_tokens: int = 8
    # Evaluation: greedy answers to eval_problems held-out problems; eval_samples sampled
    # answers to the first sample_problems of them for pass@k and the KL.
    eval_problems: int = 500
    sample_problems: int = 100
    eval_samples: int = 8

    def __post_init__(self) -> None:
        check_int("RLVRConfig.digits", self.digits, 1, 6)
        check_type("RLVRConfig.ops", self.ops, str, "a string of operators")
        if not self.ops or any(op not in OPERATIONS for op in self.ops):
            raise ValueError(
                f"RLVRConfig.ops must be drawn from {''.join(OPERATIONS)!r}, got {self.ops!r}."
            )
        check_number("RLVRConfig.held_out", self.held_out, 0, 1, low_open=True, high_open=True)
        positive = (
            "n_layer", "d_model", "n_head", "context_length", "sft_steps", "sft_batch_size",
            "sft_check_every", "sft_check_problems", "rollouts", "prompts_per_rollout",
            "minibatch_size", "dpo_batch_size", "lax_max_new_tokens", "eval_problems",
            "sample_problems", "eval_samples",
        )  # fmt: skip
        for name in positive:
            check_int(f"RLVRConfig.{name}", getattr(self, name), 1)
        check_int("RLVRConfig.group_size", self.group_size, 2)  # a group is GRPO's baseline
        check_int("RLVRConfig.rl_warmup_steps", self.rl_warmup_steps, 0)
        for name in ("sft_lr", "rl_lr", "dpo_beta", "dpo_lr", "lax_temperature"):
            check_number(f"RLVRConfig.{name}", getattr(self, name), 0, low_open=True)
        for name in ("kl_coef", "dpo_nll_coef"):
            check_number(f"RLVRConfig.{name}", getattr(self, name), 0)
        check_number("RLVRConfig.sft_target", self.sft_target, 0, 1, low_open=True, optional=True)
        share = self.dpo_sampling_share
        check_number("RLVRConfig.dpo_sampling_share", share, 0, 1, low_open=True, high_open=True)
        check_choice("RLVRConfig.lax_checker", self.lax_checker, CHECKERS)
        if self.d_model % self.n_head:
            raise ValueError(
                f"RLVRConfig.d_model={self.d_model} is not divisible by n_head={self.n_head}."
            )
        if self.sample_problems > self.eval_problems:
            raise ValueError(
                f"RLVRConfig.sample_problems={self.sample_problems} must be <= eval_problems="
                f"{self.eval_problems} (they are the first of the evaluation problems)."
            )

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


def sft_trainer(
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
    trainer = sft_trainer(model, config, config.sft_steps, seed,
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


def _sft_recipe(config: RLVRConfig, seed: int) -> dict[str, Any]:
    return {name: getattr(config, name) for name in SFT_FIELDS} | {"seed": seed}


def sft_cache_folder(config: RLVRConfig | None = None, seed: int = 0) -> Path:
    """Where ``cached_sft_start`` keeps the model of ``config``'s SFT fields and ``seed``."""
    recipe = _sft_recipe(config or RLVRConfig(), seed)
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "arithmetic-sft" / key


def cached_sft_start(
    config: RLVRConfig | None = None, seed: int = 0, retrain: bool = False, verbose: bool = False
) -> tuple[DecoderLM, list[dict[str, Any]]]:
    """``sft_start``, trained once and kept in the course cache under a hash of the fields it
    depends on (``SFT_FIELDS``) and the seed; later calls load it in a fraction of a second.
    ``llmcourse data`` calls it at set-up (lesson 09 starts from it)."""
    config = config or RLVRConfig()
    recipe = _sft_recipe(config, seed)
    folder = sft_cache_folder(config, seed)
    weights, log = folder / "model.safetensors", folder / "history.json"
    if retrain or not (weights.is_file() and log.is_file()):
        get_logger().info(
            f"Teaching the arithmetic GPT to add by SFT (up to {config.sft_steps} steps; once, "
            f"about a minute on 2 CPU cores); later calls load it from {folder}."
        )
        model, history = sft_start(config, seed, progress_bar=verbose)
        folder.mkdir(parents=True, exist_ok=True)
        # History first, weights last: a run killed in between leaves no weights, so it retrains.
        partial = folder / "history.json.partial"
        partial.write_text(json.dumps({"recipe": recipe, "history": history}, indent=1))
        partial.replace(log)
        extra = {"model_class": "DecoderLM", "model_config": model.config.to_dict()}
        save_checkpoint(weights, {"model": model.state_dict(), "extra": extra})
    model = model_from_checkpoint(weights)
    return model, json.loads(log.read_text())["history"]


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
    checkers: Sequence[str] = ("exact",),
) -> dict[str, float]:
    """Held-out numbers of a policy on ``problems``.

    ``accuracy``: greedy answers judged by the first of ``checkers`` (and ``accuracy_se``, its
    binomial standard error); ``accuracy_<name>`` by each other checker. From ``samples``
    answers sampled at temperature 1 to each of the first ``sample_problems`` problems, judged
    by the first checker: ``pass@k`` (unbiased, for each k ≤ samples), ``reward`` (the share of
    samples right), ``response_length`` (tokens, <eos> included) and, given the ``reference``,
    ``kl``: Σ_t KL(π(·|prefix) ‖ π_ref(·|prefix)) over a sampled response, in nats, averaged
    (``kl_from_logits``: exact per position, so less noisy than k1 or k3).
    """
    tokenizer = arithmetic_tokenizer()
    model.eval()
    prompts = encode_prompts(tokenizer, problems).to(next(model.parameters()).device)
    prompt_len = prompts.shape[1]

    def judge(
        tokens: torch.Tensor, chosen: Sequence[Problem], checker: str
    ) -> tuple[list[bool], torch.Tensor]:
        mask = response_mask(tokens, prompt_len, tokenizer.eos_id)
        texts = [response_text(tokenizer, ids) for ids in response_ids(tokens, mask, prompt_len)]
        verdicts = [
            check_answer(text, problem.answer, checker)  # type: ignore[arg-type]
            for text, problem in zip(texts, chosen, strict=True)
        ]
        return verdicts, mask

    greedy = generate(model, prompts, max_new_tokens, temperature=0.0, stop_tokens=tokenizer.eos_id)
    result: dict[str, float] = {}
    for index, checker in enumerate(checkers):
        correct, _ = judge(greedy, problems, checker)
        accuracy = sum(correct) / len(correct)
        if index == 0:
            result["accuracy"] = accuracy
            result["accuracy_se"] = math.sqrt(accuracy * (1 - accuracy) / len(correct))
        else:
            result[f"accuracy_{checker}"] = accuracy
    if samples:
        chosen = list(problems[:sample_problems])
        repeated = prompts[: len(chosen)].repeat_interleave(samples, dim=0)
        generator = torch.Generator(repeated.device).manual_seed(seed)
        tokens = generate(
            model, repeated, max_new_tokens, temperature=1.0, stop_tokens=tokenizer.eos_id,
            generator=generator,
        )  # fmt: skip
        verdicts, mask = judge(tokens, [p for p in chosen for _ in range(samples)], checkers[0])
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


@torch.no_grad()
def greedy_answers(model: nn.Module, problems: Sequence[Problem], max_new_tokens: int) -> list[str]:
    """``"17+83=100"``: each prompt with the model's greedy answer (up to its end token)."""
    tokenizer = arithmetic_tokenizer()
    model.eval()
    prompts = encode_prompts(tokenizer, problems).to(next(model.parameters()).device)
    tokens = generate(model, prompts, max_new_tokens, temperature=0.0, stop_tokens=tokenizer.eos_id)
    mask = response_mask(tokens, prompts.shape[1], tokenizer.eos_id)
    answers = response_ids(tokens, mask, prompts.shape[1])
    return [
        p.prompt + response_text(tokenizer, ids) for p, ids in zip(problems, answers, strict=True)
    ]


# -- GRPO from the start -------------------------------------------------------------------------


def parameter_count(model: nn.Module) -> int:
    """N, every parameter (the embeddings of a 20-character vocabulary are a rounding error)."""
    return sum(p.numel() for p in model.parameters())


def rl_train_changes(
    config: RLVRConfig, steps_per_rollout: int, seed: int, **changes: Any
) -> dict[str, Any]:
    """``TrainConfig`` changes every RL phase shares: a short warm-up (Adam's first steps from
    a fresh state are large) and the seed."""
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
        numbers = evaluate_policy(
            model, held_out, samples=0, max_new_tokens=grpo_config.max_new_tokens,
            checkers=tuple(dict.fromkeys(("exact", checker))),
        )  # fmt: skip
        return {k: v for k, v in numbers.items() if k.startswith("accuracy") and k[-3:] != "_se"}

    task = GRPOTask(
        copy.deepcopy(start).eval(),
        ArithmeticReward(tokenizer, checker),
        config.problems.prompt_fn(tokenizer),
        grpo_config,
        seed=seed,
        evaluate_fn=held_out_accuracy if eval_every else None,
    )
    policy = copy.deepcopy(start)
    changes = rl_train_changes(
        config, grpo_config.steps_per_rollout, seed, progress_bar=progress_bar,
        eval_every=eval_every * grpo_config.steps_per_rollout,
    )  # fmt: skip
    trainer = Trainer(policy, grpo_config.train_config(config.rollouts, **changes), task=task)
    return policy.eval(), trainer.fit().history
