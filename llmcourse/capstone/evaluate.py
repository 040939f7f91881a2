"""The evaluation the capstone runs after every stage: one function, the same numbers each time.

- **perplexity** on the held-out plays (``llmcourse.pretrained.VAL_PLAYS``), the first
  ``eval_perplexity_tokens`` tokens in windows of the context length (``eval.perplexity``), and
  bits per byte, which does not depend on the vocabulary (Gao et al. 2020);
- **arithmetic**: greedy replies to ``eval_arithmetic`` held-out problems in the chat format,
  judged by the exact checker; accuracy with its binomial standard error √(p(1−p)/n);
- **multiple choice**: a seeded sample of the course benchmark's Shakespeare questions
  (``eval.course_benchmark``, ``MC_SOURCES``) scored by the likeliest choice text
  (``score_choice_likelihoods``, per-character normalised), questions that do not fit the
  context left out; chance is 1/4;
- **generations**: greedy replies to ``sample_prompts(config)``: a held-out sum of the task's
  size, then ``SAMPLE_PROMPTS``.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
from torch import nn

from llmcourse.capstone.chat import prompt_ids, render_chat, reply_text, stop_id
from llmcourse.capstone.config import CapstoneConfig
from llmcourse.data.arithmetic import ArithmeticProblems, check_answer
from llmcourse.eval.multiple_choice import format_cloze, score_choice_likelihoods
from llmcourse.eval.perplexity import sliding_window_nll
from llmcourse.eval.question_sets import course_benchmark
from llmcourse.infer import generate
from llmcourse.tokenizers import BPETokenizer

#: The benchmark's Shakespeare questions: what pretraining on the plays can teach (the Python
#: docstring questions are out of this model's domain, at chance whatever the stage).
MC_SOURCES = ("shakespeare_next_line", "shakespeare_play")
SAMPLE_PROMPTS = (
    "Continue the speech.\nHamlet: To be, or not to be, that is the question:",
    "Who are you?",
)


def sample_prompts(config: CapstoneConfig) -> tuple[str, ...]:
    """The first held-out sum of the config's task (``37+45=`` when ``digits`` is 2: a model
    trained on two-digit sums is not asked a one-digit one), then ``SAMPLE_PROMPTS``."""
    problem = ArithmeticProblems(config.digits, "+", config.held_out).held_out_set(1)[0]
    return (problem.prompt, *SAMPLE_PROMPTS)


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n) if n else float("nan")


@torch.no_grad()
def arithmetic_accuracy(
    model: nn.Module, tokenizer: BPETokenizer, config: CapstoneConfig
) -> dict[str, float]:
    """Greedy exact-match accuracy on the fixed held-out problems (and its standard error)."""
    problems = ArithmeticProblems(config.digits, "+", config.held_out)
    held_out = problems.held_out_set(min(config.eval_arithmetic, problems.size("held_out")))
    device = next(model.parameters()).device
    prompts = prompt_ids(tokenizer, held_out).to(device)
    tokens = generate(
        model.eval(), prompts, problems.max_answer_length + 1, temperature=0.0,
        stop_tokens=stop_id(tokenizer),
    )  # fmt: skip
    replies = [reply_text(tokenizer, row[prompts.shape[1] :].tolist()) for row in tokens]
    right = [check_answer(r, p.answer) for r, p in zip(replies, held_out, strict=True)]
    accuracy = sum(right) / len(right)
    return {
        "accuracy": accuracy,
        "accuracy_se": binomial_se(accuracy, len(right)),
        "n": len(right),
    }


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    tokenizer: BPETokenizer,
    config: CapstoneConfig,
    val_ids: torch.Tensor,
    val_bytes_per_token: float,
) -> dict[str, Any]:
    """Every number of the module docstring for ``model``; ``val_ids`` are the held-out plays'
    tokens (the first ``eval_perplexity_tokens`` are scored)."""
    model.eval()
    ids = val_ids[: config.eval_perplexity_tokens]
    total_nll, count = sliding_window_nll(model, ids, config.context_length)
    loss = total_nll / count
    result: dict[str, Any] = {
        "val_loss": loss,
        "perplexity": math.exp(loss),
        "bits_per_byte": loss / math.log(2) / val_bytes_per_token,
        "arithmetic": arithmetic_accuracy(model, tokenizer, config),
        "multiple_choice": multiple_choice_accuracy(model, tokenizer, config),
        "generations": generations(model, tokenizer, config),
    }
    return result


def multiple_choice_accuracy(
    model: nn.Module, tokenizer: BPETokenizer, config: CapstoneConfig
) -> dict[str, float]:
    questions = [q for q in course_benchmark("test") if q.source in MC_SOURCES]
    random.Random(config.seed).shuffle(questions)
    fitting = [
        q for q in questions
        if len(tokenizer.encode(format_cloze(q)))
        + max(len(tokenizer.encode(" " + c)) for c in q.choices) <= config.context_length
    ][: config.eval_multiple_choice]  # fmt: skip
    result = score_choice_likelihoods(model, tokenizer, fitting, normalize="char")
    return {
        "accuracy": result.accuracy,
        "accuracy_se": binomial_se(result.accuracy, len(fitting)),
        "n": len(fitting),
    }


@torch.no_grad()
def generations(
    model: nn.Module, tokenizer: BPETokenizer, config: CapstoneConfig, max_new_tokens: int = 24
) -> list[dict[str, str]]:
    """Greedy replies to ``sample_prompts(config)`` in the chat format."""
    device = next(model.parameters()).device
    out = []
    for text in sample_prompts(config):
        ids = tokenizer.encode(render_chat([{"role": "user", "content": text}]))
        ids = ids[-(config.context_length - max_new_tokens) :]
        prompt = torch.tensor([ids], device=device)
        tokens = generate(
            model, prompt, max_new_tokens, temperature=0.0, stop_tokens=stop_id(tokenizer)
        )
        out.append({"prompt": text, "reply": reply_text(tokenizer, tokens[0, len(ids) :].tolist())})
    return out
