"""Arithmetic with an exact checker: the course's task for RL with verifiable rewards.

Reasoning models since DeepSeek-R1 (DeepSeek-AI 2025) are trained with rewards a program can
check (a maths answer, a passing unit test) instead of a learned reward model. This module is
the smallest such task a CPU can learn in minutes, shared by lesson 09 and the capstone:

- **problems**: ``a + b`` (or ``−``, ``×``) with operands of exactly ``digits`` digits, written
  ``"37+45="``; the answer is ``"82"`` followed by the end token. Every prompt of one
  ``ArithmeticProblems`` has the same length, so a batch needs no padding.
- **disjoint splits**: a problem is held out when a hash of ``(split_seed, prompt)`` falls below
  ``held_out`` (the ``TrainValSplit`` idea of ``llmcourse.data.split``): deterministic on any
  machine, with no list to store, and no held-out problem is ever sampled for training.
- **a tokenizer of its own** (``arithmetic_tokenizer``): the course's Shakespeare character model
  has no ``+``, ``=`` or ``#``, so this task trains its own small model over 19 characters
  and an end token ``<eos>``.
- **an exact checker** (``check_answer``) and two lax ones. ``"exact"``: the response, up to the
  end token, is the answer and nothing else. ``"last_number"``: the last number in the response
  is the answer (GSM8K graders, ``llmcourse.eval.last_number``). ``"contains"``: the answer
  appears somewhere in the response, a checker a policy learns to game by writing many numbers
  (lesson 09 shows it).
- ``ArithmeticReward``: the checker as the ``reward_fn(prompts, responses)`` that
  ``PPOTask`` and ``GRPOTask`` take (1 for a correct answer, 0 otherwise).
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from llmcourse.eval.answers import last_number
from llmcourse.tokenizers import CharTokenizer

Checker = Literal["exact", "last_number", "contains"]
CHECKERS: tuple[str, ...] = ("exact", "last_number", "contains")
EOS = "<eos>"
ALPHABET = " #()*+,-0123456789="  # digits, operators, and what answer formats need
OPERATIONS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_PROMPT = re.compile(r"^(\d+)([+\-*])(\d+)=$")


def arithmetic_tokenizer() -> CharTokenizer:
    """A character tokenizer over ``ALPHABET`` plus ``<eos>`` (its ``eos_id``), 20 ids."""
    return CharTokenizer(special_tokens=[EOS], eos_token=EOS).train(ALPHABET)


@dataclass(frozen=True)
class Problem:
    """``a op b``: ``prompt`` is ``"37+45="``, ``answer`` the integer result."""

    a: int
    b: int
    op: str = "+"

    def __post_init__(self) -> None:
        if self.op not in OPERATIONS:
            raise ValueError(f"op must be one of {''.join(OPERATIONS)!r}, got {self.op!r}.")
        if self.a < 0 or self.b < 0:
            raise ValueError(f"operands must be non-negative, got {self.a} and {self.b}.")

    @property
    def prompt(self) -> str:
        return f"{self.a}{self.op}{self.b}="

    @property
    def answer(self) -> int:
        return OPERATIONS[self.op](self.a, self.b)

    @classmethod
    def from_prompt(cls, prompt: str) -> Problem:
        """Parse ``"37+45="`` back into a problem (what a reward function reads)."""
        match = _PROMPT.match(prompt)
        if match is None:
            raise ValueError(f"{prompt!r} is not an arithmetic prompt such as '37+45='.")
        return cls(int(match.group(1)), int(match.group(3)), match.group(2))


def split_of(prompt: str, held_out: float, split_seed: int = 0) -> str:
    """``"held_out"`` or ``"train"``: a hash of ``(split_seed, prompt)`` against ``held_out``."""
    digest = hashlib.blake2b(f"{split_seed}:{prompt}".encode(), digest_size=8).digest()
    return "held_out" if int.from_bytes(digest, "big") / 2**64 < held_out else "train"


class ArithmeticProblems:
    """Problems ``a op b`` with ``digits``-digit operands, split into train and held-out.

    ``sample(n, generator, split)`` draws problems of one split uniformly (with replacement);
    ``held_out_set(n)`` is a fixed list of ``n`` distinct held-out problems, the same on every
    machine; ``size(split)`` counts a split's problems.

    >>> problems = ArithmeticProblems(digits=2)
    >>> problems.size("train") + problems.size("held_out") == 90 * 90
    True
    """

    def __init__(
        self,
        digits: int = 2,
        ops: str | Sequence[str] = "+",
        held_out: float = 0.1,
        split_seed: int = 0,
    ) -> None:
        if not isinstance(digits, int) or not 1 <= digits <= 6:
            raise ValueError(f"digits must be an integer from 1 to 6, got {digits!r}.")
        if not 0.0 < held_out < 1.0:
            raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out}.")
        self.ops = tuple(ops)
        if not self.ops or any(op not in OPERATIONS for op in self.ops):
            raise ValueError(f"ops must be drawn from {''.join(OPERATIONS)!r}, got {ops!r}.")
        self.digits, self.held_out, self.split_seed = digits, held_out, split_seed
        # Operands have exactly `digits` digits (no leading zeros): every prompt has one length.
        self.low, self.high = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits
        self._sizes: dict[str, int] | None = None

    @property
    def prompt_length(self) -> int:
        return 2 * self.digits + 2

    @property
    def max_answer_length(self) -> int:
        """Characters of the longest answer (a product has up to 2·digits, a difference a sign)."""
        if "*" in self.ops:
            return 2 * self.digits
        return self.digits + 1

    def split(self, problem: Problem) -> str:
        return split_of(problem.prompt, self.held_out, self.split_seed)

    def size(self, split: str = "train") -> int:
        """How many distinct problems the split holds (counted once, then remembered)."""
        _check_split(split)
        if self._sizes is None:
            sizes = {"train": 0, "held_out": 0}
            for op in self.ops:
                for a in range(self.low, self.high):
                    for b in range(self.low, self.high):
                        sizes[self.split(Problem(a, b, op))] += 1
            self._sizes = sizes
        return self._sizes[split]

    def sample(
        self, n: int, generator: torch.Generator | None = None, split: str = "train"
    ) -> list[Problem]:
        """``n`` problems of ``split`` drawn uniformly with ``generator`` (rejection sampling)."""
        _check_split(split)
        if n < 0:
            raise ValueError(f"n must be ≥ 0, got {n}.")
        problems: list[Problem] = []
        while len(problems) < n:
            draws = torch.randint(self.low, self.high, (2 * n + 8, 2), generator=generator)
            ops = torch.randint(len(self.ops), (2 * n + 8,), generator=generator)
            for (a, b), op in zip(draws.tolist(), ops.tolist(), strict=True):
                problem = Problem(a, b, self.ops[op])
                if self.split(problem) == split:
                    problems.append(problem)
                    if len(problems) == n:
                        break
        return problems

    def held_out_set(self, n: int, seed: int = 0) -> list[Problem]:
        """``n`` distinct held-out problems, drawn with ``seed`` (the evaluation set)."""
        if n > self.size("held_out"):
            raise ValueError(f"n={n} exceeds the {self.size('held_out')} held-out problems.")
        generator = torch.Generator().manual_seed(seed)
        chosen: dict[Problem, None] = {}
        while len(chosen) < n:
            for problem in self.sample(n, generator, "held_out"):
                chosen.setdefault(problem)
                if len(chosen) == n:
                    break
        return list(chosen)

    def prompt_fn(self, tokenizer: CharTokenizer, split: str = "train"):
        """``prompt_fn(n, generator) -> (n, prompt_length)`` ids, as ``GRPOTask`` and
        ``PPOTask`` take it."""

        def prompts(n: int, generator: torch.Generator) -> torch.Tensor:
            return encode_prompts(tokenizer, self.sample(n, generator, split))

        return prompts


def _check_split(split: str) -> None:
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}.")


def encode_prompts(tokenizer: CharTokenizer, problems: Sequence[Problem]) -> torch.Tensor:
    """The prompts' ids ``(n, prompt_length)``; they must all have the same length."""
    ids = [tokenizer.encode(p.prompt) for p in problems]
    if len({len(i) for i in ids}) > 1:
        raise ValueError("Prompts differ in length: use operands with the same number of digits.")
    return torch.tensor(ids, dtype=torch.long)


def sft_examples(tokenizer: CharTokenizer, problems: Sequence[Problem]) -> list[dict]:
    """Demonstrations for ``SFTCollator``: the prompt, then the answer and ``<eos>``."""
    return [
        {
            "prompt_ids": tokenizer.encode(p.prompt),
            "response_ids": [*tokenizer.encode(str(p.answer)), tokenizer.eos_id],
        }
        for p in problems
    ]


def response_text(tokenizer: CharTokenizer, response_ids: Sequence[int]) -> str:
    """The text of a response up to (not including) its first end token."""
    ids = list(response_ids)
    if tokenizer.eos_id in ids:
        ids = ids[: ids.index(tokenizer.eos_id)]
    return tokenizer.decode(ids)


def check_answer(response: str, answer: int, checker: Checker = "exact") -> bool:
    """Is ``response`` (text before the end token) a correct answer, by ``checker``?

    >>> check_answer("82", 82), check_answer("82 ", 82), check_answer("7, 82", 82, "last_number")
    (True, False, True)
    >>> check_answer("1828384", 82, "contains")
    True
    """
    if checker == "exact":
        return response == str(answer)
    if checker == "last_number":
        return last_number(response) == str(answer)
    if checker == "contains":
        return str(answer) in response
    raise ValueError(f"checker must be one of {', '.join(CHECKERS)}, got {checker!r}.")


class ArithmeticReward:
    """``reward_fn(prompts (n, P), responses: list[list[int]]) -> (n,)``: 1.0 where the response
    is correct by ``checker``, else 0.0. The problem is read back from the prompt's text."""

    def __init__(self, tokenizer: CharTokenizer, checker: Checker = "exact") -> None:
        if checker not in CHECKERS:
            raise ValueError(f"checker must be one of {', '.join(CHECKERS)}, got {checker!r}.")
        self.tokenizer, self.checker = tokenizer, checker

    def __call__(self, prompts: torch.Tensor, responses: Sequence[Sequence[int]]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses.")
        rewards = [
            float(
                check_answer(
                    response_text(self.tokenizer, response),
                    Problem.from_prompt(self.tokenizer.decode(prompt.tolist())).answer,
                    self.checker,
                )
            )
            for prompt, response in zip(prompts, responses, strict=True)
        ]
        return torch.tensor(rewards)
