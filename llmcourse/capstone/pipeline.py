"""``run_capstone``: tokenizer → pretraining → SFT → GRPO (and equal-compute SFT) → evaluation →
report, each stage cached under its key so a re-run does only what changed.

A stage lives in ``OUT/stages/NAME-KEY/`` (``config.stage_key``: the fields it reads and the
keys of the stages before it). It is done when its ``result.json`` exists; that file is written
last, by an atomic rename, so a run killed halfway leaves no result and the stage runs again,
and training stages resume from the ``Trainer`` checkpoint they write every few steps
(``checkpoint_every``), reproducing the uninterrupted run exactly on a CPU.

From one SFT model, each seed of ``rl_seeds`` runs

- **GRPO** (``llmcourse.train.grpo``) on the arithmetic task with the exact checker, and
- **more SFT** at GRPO's compute, the same mix continued: GRPO's FLOPs counted as in
  ``llmcourse.train.rl_compare.budget`` (sampling 2N, π_old and π_ref 2 × 2N and training 6N
  per token, N parameters; Kaplan et al. 2020), and SFT steps of 6N per token of the mix,

so the report can tell what RL bought over spending the same compute on demonstrations.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from llmcourse.capstone.chat import (
    ChatArithmeticReward,
    new_tokenizer,
    prompt_ids,
    sft_mix,
    stop_id,
)
from llmcourse.capstone.config import CapstoneConfig, stage_key
from llmcourse.capstone.evaluate import evaluate_model
from llmcourse.config import ModelConfig
from llmcourse.data.arithmetic import ArithmeticProblems
from llmcourse.data.collators import SFTCollator
from llmcourse.data.loaders import ContiguousBlocks, RandomWindows
from llmcourse.models import DecoderLM
from llmcourse.pretrained import shakespeare
from llmcourse.scaling.hardware import training_energy_kwh
from llmcourse.tokenizers import BPETokenizer
from llmcourse.train.checkpoints import model_from_checkpoint
from llmcourse.train.config import TrainConfig
from llmcourse.train.grpo import GRPOConfig, GRPOTask
from llmcourse.train.trainer import CHECKPOINT_NAME, Trainer
from llmcourse.utils.checkpoint import save_checkpoint
from llmcourse.utils.devices import device as pick_device
from llmcourse.utils.distributed import DistributedContext, init_distributed
from llmcourse.utils.seed import seed_everything

MODEL, TOKENIZER, RESULT = "model.safetensors", "tokenizer.json", "result.json"


class Stages:
    """Runs stages into ``out_dir/stages`` and remembers what each returned.

    Under ``torchrun`` (``ctx.world_size`` > 1, the folder on a filesystem every process sees),
    training stages run in every process (the ``Trainer``'s DDP) and the others on rank 0 alone;
    rank 0 writes every result, and all processes read it back after a barrier.
    """

    def __init__(
        self,
        out_dir: Path,
        log: Callable[[str], None] = print,
        ctx: DistributedContext | None = None,
    ) -> None:
        self.root, self.ctx = out_dir / "stages", ctx or init_distributed()
        self.log = log if self.ctx.is_main else (lambda _: None)
        self.results: dict[str, dict[str, Any]] = {}

    def run(
        self,
        name: str,
        key: str,
        build: Callable[[Path], dict[str, Any]],
        everywhere: bool = False,
    ) -> dict[str, Any]:
        """``build(folder)``'s result, or the one cached in ``folder/result.json``;
        ``everywhere``: build in every process (a training stage), else on rank 0 only."""
        folder = self.root / f"{name}-{key}"
        done = folder / RESULT
        cached = done.is_file()
        self._barrier()  # every process has looked before rank 0 may write
        if cached:
            self.log(f"[capstone] {name}: cached ({folder.name})")
        else:
            self.log(f"[capstone] {name}: running ({folder.name})")
            folder.mkdir(parents=True, exist_ok=True)
            if everywhere or self.ctx.is_main:
                start = time.perf_counter()
                result = build(folder)
                result.update(stage=name, key=key, wall_s=time.perf_counter() - start)
                if self.ctx.is_main:
                    partial = folder / (RESULT + ".partial")
                    partial.write_text(json.dumps(result, indent=1))
                    partial.replace(done)  # last: the stage counts as done only now
            self._barrier()
        result = json.loads(done.read_text()) | {"cached": cached, "folder": str(folder)}
        self.results[name] = result
        return result

    def _barrier(self) -> None:
        if self.ctx.is_distributed:
            dist.barrier()


def run_capstone(
    config: CapstoneConfig,
    out_dir: str | Path,
    *,
    progress_bar: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every stage (cached), then the report data (``report.build_report`` writes the files)."""
    out = Path(out_dir)
    stages = Stages(out, log)
    start = time.perf_counter()

    tok_key = stage_key(config, "tokenizer")
    tokenizer_result = stages.run("tokenizer", tok_key, lambda f: _tokenizer(config, f))
    tok_folder = Path(tokenizer_result["folder"])
    tokenizer = BPETokenizer.load(tok_folder / TOKENIZER)
    train_ids = torch.from_numpy(np.load(tok_folder / "train_ids.npy").astype(np.int64))
    val_ids = torch.from_numpy(np.load(tok_folder / "val_ids.npy").astype(np.int64))

    pre_key = stage_key(config, "pretrain", tok_key)
    stages.run(
        "pretrain",
        pre_key,
        lambda f: _pretrain(config, tokenizer.vocab_size, train_ids, val_ids, f, progress_bar),
        everywhere=True,
    )
    sft_key = stage_key(config, "sft", pre_key)
    stages.run(
        "sft",
        sft_key,
        lambda f: _sft(config, tokenizer, _model(stages, "pretrain"), config.sft_steps,
                       config.sft_lr, "cosine", config.seed, f, progress_bar),
        everywhere=True,
    )  # fmt: skip
    for seed in config.rl_seeds:
        # Several processes sample different rollouts (a seed per process): another run.
        world = {"processes": stages.ctx.world_size} if stages.ctx.is_distributed else {}
        grpo_key = stage_key(config, "grpo", sft_key, seed=seed, **world)
        grpo = stages.run(
            f"grpo-{seed}", grpo_key,
            lambda f, s=seed: _grpo(config, tokenizer, _model(stages, "sft"), s, f, progress_bar),
            everywhere=True,
        )  # fmt: skip
        sft = stages.results["sft"]
        steps = equal_compute_sft_steps(
            grpo["flops"], sft["n_params"], config.sft_batch_size, sft["mean_example_tokens"]
        )
        # More SFT continues at the rate SFT's cosine ended on, on fresh draws of the same mix.
        stages.run(
            f"sft_more-{seed}",
            stage_key(config, "sft_more", sft_key, seed=seed, steps=steps),
            lambda f, s=seed, n=steps: _sft(
                config, tokenizer, _model(stages, "sft"), n, config.sft_lr * 0.1, "constant",
                1000 + s, f, progress_bar,
            ),
            everywhere=True,
        )  # fmt: skip

    bytes_per_token = tokenizer_result["val_bytes_per_token"]
    models = ["pretrain", "sft"]
    models += [f"{method}-{s}" for s in config.rl_seeds for method in ("grpo", "sft_more")]
    for name in models:
        model_stage = stages.results[name]
        stages.run(
            f"eval-{name}",
            stage_key(config, "evaluate", model_stage["key"]),
            lambda f, n=name: evaluate_model(
                _model(stages, n).to(pick_device()), tokenizer, config, val_ids, bytes_per_token
            ),
        )
    final = out / "final"
    if stages.ctx.is_main:
        _publish_final(out, stages, config)
    return {
        "config": config.to_dict(),
        "config_hash": config.hash,
        "stages": stages.results,
        "final_model": str(final),
        "total_wall_s": time.perf_counter() - start,
    }


def equal_compute_sft_steps(
    grpo_flops: float, n_params: int, batch_size: int, tokens_per_example: float
) -> int:
    """SFT steps whose training FLOPs, 6N per token (Kaplan et al. 2020) of ``batch_size``
    examples of ``tokens_per_example`` tokens, add up to ``grpo_flops`` (rounded, at least 1)."""
    if grpo_flops < 0 or n_params <= 0 or batch_size <= 0 or tokens_per_example <= 0:
        raise ValueError(
            "Need grpo_flops ≥ 0 and positive n_params, batch_size and tokens_per_example, got "
            f"{grpo_flops}, {n_params}, {batch_size}, {tokens_per_example}."
        )
    return max(1, round(grpo_flops / (6 * n_params * batch_size * tokens_per_example)))


def energy_wh(seconds: float, watts: float) -> float:
    """Wall time × the stated power, PUE 1 (a laptop: no data-centre overhead)."""
    return 1000.0 * training_energy_kwh(max(seconds, 1e-9) / 3600.0, watts, pue=1.0)


# -- the stages -----------------------------------------------------------------------------------


def _tokenizer(config: CapstoneConfig, folder: Path) -> dict[str, Any]:
    train_text, val_text = shakespeare("train"), shakespeare("val")
    tokenizer = new_tokenizer().train(train_text[: config.tokenizer_chars], config.vocab_size)
    tokenizer.save(folder / TOKENIZER)
    dtype = np.uint16 if config.vocab_size <= 65_536 else np.int32
    result: dict[str, Any] = {"vocab_size": tokenizer.vocab_size}
    for split, text in (("train", train_text), ("val", val_text)):
        ids = np.asarray(tokenizer.encode(text), dtype=dtype)
        np.save(folder / f"{split}_ids.npy", ids)
        result[f"{split}_tokens"] = len(ids)
        result[f"{split}_bytes_per_token"] = len(text.encode()) / len(ids)
    return result


def _model_config(config: CapstoneConfig, vocab_size: int) -> ModelConfig:
    return ModelConfig(
        name=f"capstone-{config.size}", vocab_size=vocab_size,
        context_length=config.context_length, d_model=config.d_model, n_layer=config.n_layer,
        n_head=config.n_head, position="rope", norm="rmsnorm", mlp="swiglu", bias=False,
    )  # fmt: skip


def _pretrain(
    config: CapstoneConfig,
    vocab_size: int,
    train_ids: torch.Tensor,
    val_ids: torch.Tensor,
    folder: Path,
    progress_bar: bool,
) -> dict[str, Any]:
    seed_everything(config.seed)
    model = DecoderLM(_model_config(config, vocab_size))
    steps = config.pretrain_steps
    samples = steps * config.pretrain_batch_size
    train = RandomWindows(train_ids.numpy(), config.context_length, samples, config.seed)
    val = ContiguousBlocks(val_ids[: config.eval_perplexity_tokens].numpy(), config.context_length)
    train_config = TrainConfig(
        max_steps=steps, batch_size=_per_process(config.pretrain_batch_size, "pretrain_batch_size"),
        lr=config.pretrain_lr,
        warmup_steps=max(1, steps // 10), schedule="cosine", eval_every=max(1, steps // 5),
        eval_batches=8, log_every=max(1, steps // 50), checkpoint_every=max(50, steps // 5),
        out_dir=str(folder / "train"), progress_bar=progress_bar, shuffle=False, seed=config.seed,
    )  # fmt: skip
    return _fit(Trainer(model, train_config, train, val), folder, config)


def _sft(
    config: CapstoneConfig,
    tokenizer: BPETokenizer,
    model: DecoderLM,
    steps: int,
    lr: float,
    schedule: str,
    seed: int,
    folder: Path,
    progress_bar: bool,
) -> dict[str, Any]:
    seed_everything(seed)
    problems = ArithmeticProblems(config.digits, "+", config.held_out)
    data = sft_mix(
        tokenizer, problems, steps * config.sft_batch_size, config.sft_arithmetic_share,
        config.sft_instructions_per_play, config.context_length, seed, config.sft_batch_size,
    )  # fmt: skip
    train_config = TrainConfig(
        max_steps=steps, batch_size=_per_process(config.sft_batch_size, "sft_batch_size"), lr=lr,
        warmup_steps=max(1, steps // 10) if schedule == "cosine" else 0, schedule=schedule,
        log_every=max(1, steps // 50), checkpoint_every=max(50, steps // 5),
        out_dir=str(folder / "train"), progress_bar=progress_bar, shuffle=False, seed=seed,
    )  # fmt: skip
    collate = SFTCollator(tokenizer.eos_id, max_length=config.context_length)
    trainer = Trainer(model, train_config, data, collate_fn=collate)
    result = _fit(trainer, folder, config)
    lengths = [len(e["prompt_ids"]) + len(e["response_ids"]) for e in data]
    result["mean_example_tokens"] = sum(lengths) / len(lengths)
    # Training FLOPs as equal_compute_sft_steps counts them: 6N per token of the examples.
    result["flops"] = (
        6 * result["n_params"] * steps * config.sft_batch_size * result["mean_example_tokens"]
    )
    result["arithmetic_examples"] = sum(e["kind"] == "arithmetic" for e in data)
    result["instruction_examples"] = len(data) - result["arithmetic_examples"]
    return result


def _grpo(
    config: CapstoneConfig,
    tokenizer: BPETokenizer,
    model: DecoderLM,
    seed: int,
    folder: Path,
    progress_bar: bool,
) -> dict[str, Any]:
    seed_everything(seed)
    problems = ArithmeticProblems(config.digits, "+", config.held_out)
    # Each process samples its share of the rollout with its own seed (GRPOTask's rule).
    grpo = GRPOConfig(
        prompts_per_rollout=_per_process(config.prompts_per_rollout, "prompts_per_rollout"),
        group_size=config.group_size, max_new_tokens=problems.max_answer_length + 1,
        minibatch_size=_per_process(config.minibatch_size, "minibatch_size"), lr=config.rl_lr,
        stop_token=stop_id(tokenizer),
    )  # fmt: skip
    rank = init_distributed().rank

    def prompts(n: int, generator: torch.Generator) -> torch.Tensor:
        return prompt_ids(tokenizer, problems.sample(n, generator, "train"))

    task = GRPOTask(
        copy.deepcopy(model).eval(), ChatArithmeticReward(tokenizer), prompts, grpo,
        seed=seed + 1000 * rank,
    )  # fmt: skip
    train_config = grpo.train_config(
        config.rollouts, seed=seed, progress_bar=progress_bar, out_dir=str(folder / "train"),
        checkpoint_every=grpo.steps_per_rollout * max(1, config.rollouts // 5),
        warmup_steps=min(5, config.rollouts * grpo.steps_per_rollout),
    )  # fmt: skip
    result = _fit(Trainer(model, train_config, task=task), folder, config)
    length = prompts(1, torch.Generator().manual_seed(0)).shape[1] + grpo.max_new_tokens
    # Sampling (2N), π_old and π_ref log-probs (2 × 2N), one training pass (6N) per token.
    responses = config.prompts_per_rollout * config.group_size  # all processes together
    result["flops"] = config.rollouts * responses * length * result["n_params"] * 12
    return result


def _fit(trainer: Trainer, folder: Path, config: CapstoneConfig) -> dict[str, Any]:
    """Train (resuming from the stage's checkpoint if a killed run left one), save the model."""
    checkpoint = folder / "train" / CHECKPOINT_NAME
    if checkpoint.is_file():
        trainer.load_checkpoint(checkpoint)
    start = time.perf_counter()
    fit = trainer.fit()
    seconds = time.perf_counter() - start
    if fit.interrupted:
        # The Trainer stops cleanly on SIGINT/SIGTERM and returns: that is not a finished stage.
        # Write no result (the checkpoint stays), so the next run resumes instead of caching a
        # half-trained model.
        raise SystemExit(
            f"[capstone] interrupted at step {fit.step}: its checkpoint is kept; run the same "
            "command again to resume."
        )
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    n_params = sum(p.numel() for p in model.parameters())
    if not trainer.ctx.is_main:  # rank 0 writes the model and the result
        return {"n_params": n_params}
    extra = {"model_class": "DecoderLM", "model_config": model.config.to_dict()}
    save_checkpoint(folder / MODEL, {"model": model.state_dict(), "extra": extra})
    log_file = folder / "train" / "log.jsonl"
    # A resumed run appends to the log: keep the last record of each step.
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    history = list({r["step"]: r for r in records if "step" in r}.values())
    return {
        "steps": fit.step,
        "tokens": fit.tokens,
        "train_loss": fit.train_loss,
        "val_loss": fit.val_loss,
        "tokens_per_s": fit.tokens_per_s,
        "train_s": seconds,
        "energy_wh": energy_wh(seconds, config.cpu_watts),
        "n_params": n_params,
        "history": history,
    }


def _per_process(size: int, name: str) -> int:
    """``size`` split over the processes, so that 1 or N processes take the same global batch."""
    world = init_distributed().world_size
    if size % world:
        raise ValueError(
            f"{name}={size} must be divisible by the {world} processes; change it with --set "
            f"{name}=... or launch a divisor of it."
        )
    return size // world


def _model(stages: Stages, name: str) -> DecoderLM:
    return model_from_checkpoint(Path(stages.results[name]["folder"]) / MODEL)


def _publish_final(out: Path, stages: Stages, config: CapstoneConfig) -> Path:
    """``OUT/final``: the first seed's GRPO model with its tokenizer, what ``serve`` loads."""
    final = out / "final"
    final.mkdir(parents=True, exist_ok=True)
    source = Path(stages.results[f"grpo-{config.rl_seeds[0]}"]["folder"])
    tok_source = Path(stages.results["tokenizer"]["folder"])
    for src, name in ((source / MODEL, MODEL), (tok_source / TOKENIZER, TOKENIZER)):
        partial = final / (name + ".partial")
        partial.write_bytes(src.read_bytes())
        partial.replace(final / name)
    (final / "capstone.json").write_text(
        json.dumps({"config_hash": config.hash, "stage": source.name}, indent=1)
    )
    return final
