"""The capstone model's chat format, its data and the reward GRPO checks it with.

**Tokenizer.** Byte-level BPE (``llmcourse.tokenizers.BPETokenizer``) with three special tokens
reserved before training, so no merge ever produces them from text: ``<|endoftext|>`` (end of
a document), ``<|im_start|>`` and ``<|im_end|>`` (a turn, as ChatML). Its pre-tokenizer is
GPT-2's with one change, ``DIGITS_PATTERN``: every digit is its own pre-token (as LLaMA splits
numbers into digits, Touvron et al. 2023), so ``"37"`` is always ``"3"`` ``"7"`` and a sum is
written digit by digit in every problem, whatever the merges learnt from Shakespeare.

**Chat template.** ChatML without a system prompt (a 64- to 256-token context cannot spare one)::

    <|im_start|>user\\n37+45=<|im_end|>\\n<|im_start|>assistant\\n82<|im_end|>

The model stops at ``<|im_end|>`` (``stop_ids``). ``chat_prompt_ids`` renders a conversation
and drops its oldest turns until it fits the context with room for the reply.

**Data.** ``sft_mix``: arithmetic dialogues (``llmcourse.data.arithmetic`` training problems)
and Shakespeare instructions (``llmcourse.data.instructions``, training plays), loss on the
replies only (``SFTCollator``). ``ChatArithmeticReward`` reads the problem back from a prompt
and scores a reply 1 when it is exactly the answer (``check_answer``, the exact checker).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from llmcourse.data.arithmetic import ArithmeticProblems, Problem, check_answer
from llmcourse.data.instructions import shakespeare_instructions
from llmcourse.tokenizers import BPETokenizer

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
#: GPT-2's pattern with single digits (`` ?\p{N}`` instead of `` ?\p{N}+``).
DIGITS_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ROLES = ("system", "user", "assistant")
_SUM = re.compile(r"(\d+[+\-*]\d+=)")


def new_tokenizer() -> BPETokenizer:
    """An untrained tokenizer with the capstone's pattern and special tokens."""
    return BPETokenizer(pattern=DIGITS_PATTERN, special_tokens=SPECIAL_TOKENS, eos_token=ENDOFTEXT)


def render_chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
    """``messages`` (``[{"role": "user", "content": "…"}, …]``) in the capstone's ChatML."""
    parts = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not {"role", "content"} <= set(message):
            raise ValueError(
                f"Message {index} must be a dict with 'role' and 'content', got {message!r}."
            )
        if message["role"] not in ROLES:
            raise ValueError(f"Message {index} has role {message['role']!r}; use one of {ROLES}.")
        parts.append(f"{IM_START}{message['role']}\n{message['content']}{IM_END}\n")
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
    return "".join(parts)


def chat_prompt_ids(
    tokenizer: BPETokenizer, messages: Sequence[Mapping[str, str]], max_tokens: int
) -> list[int]:
    """The ids of ``messages`` ready for the reply, at most ``max_tokens`` long: the oldest
    turns go first (a system message stays); a last message too long alone is cut from the left.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}.")
    messages = list(messages)
    system = messages[:1] if messages and messages[0].get("role") == "system" else []
    turns = messages[len(system) :]
    while True:
        ids = tokenizer.encode(render_chat(system + turns))
        if len(ids) <= max_tokens:
            return ids
        if len(turns) > 1:
            turns = turns[1:]
        elif system:
            system = []
        else:
            return ids[-max_tokens:]


class ChatCodec:
    """The text side of the capstone model for ``llmcourse serve``'s engine: ``encode``,
    ``decode`` (special tokens dropped), ``chat_prompt`` (the template) and ``stop_ids``.

    ``max_prompt_tokens`` bounds what ``chat_prompt`` renders (history truncated to the
    context, leaving room for the reply)."""

    def __init__(self, tokenizer: BPETokenizer, max_prompt_tokens: int) -> None:
        self.tokenizer, self.max_prompt_tokens = tokenizer, max_prompt_tokens
        self.special_ids = {tokenizer.encode(token)[0] for token in SPECIAL_TOKENS}
        self.stop_ids = frozenset(tokenizer.encode(t)[0] for t in (IM_END, ENDOFTEXT))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i not in self.special_ids])

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        ids = chat_prompt_ids(self.tokenizer, messages, self.max_prompt_tokens)
        return self.tokenizer.decode(ids)


def stop_id(tokenizer: BPETokenizer) -> int:
    """The id of ``<|im_end|>``, where a reply ends."""
    return tokenizer.encode(IM_END)[0]


# -- data -----------------------------------------------------------------------------------------


def arithmetic_dialogue(problem: Problem) -> tuple[str, str]:
    """``("<|im_start|>user\\n37+45=<|im_end|>\\n<|im_start|>assistant\\n", "82<|im_end|>")``."""
    return render_chat([{"role": "user", "content": problem.prompt}]), f"{problem.answer}{IM_END}"


def sft_mix(
    tokenizer: BPETokenizer,
    problems: ArithmeticProblems,
    n: int,
    arithmetic_share: float,
    instructions_per_play: int,
    max_length: int,
    seed: int,
    batch_size: int | None = None,
) -> list[dict[str, Any]]:
    """``n`` SFT examples ``{"prompt_ids", "response_ids", "kind"}``: ``round(share · n)``
    arithmetic dialogues on training problems, the rest Shakespeare instructions of the training
    plays (those longer than ``max_length`` tokens left out, the rest drawn with replacement).

    With ``batch_size``, the examples are ordered so that each run of ``batch_size`` (a batch of
    an unshuffled loader) holds one kind: arithmetic or instructions, the batches in random
    order. A dialogue ``7+5=`` → ``12`` is about 15 tokens and an instruction up to
    ``max_length``; padded into one batch, every arithmetic dialogue would cost as much as the
    longest instruction beside it, so the arithmetic share would buy few cheap demonstrations."""
    rng = random.Random(seed)
    n_arithmetic = round(arithmetic_share * n)
    examples = []
    for problem in problems.sample(n_arithmetic, torch.Generator().manual_seed(seed), "train"):
        prompt, reply = arithmetic_dialogue(problem)
        examples.append(_example(tokenizer, prompt, reply, "arithmetic"))
    if n > n_arithmetic:
        pool = []
        for item in shakespeare_instructions("train", per_play=instructions_per_play, seed=seed):
            content = item.instruction + (f"\n{item.input}" if item.input else "")
            prompt = render_chat([{"role": "user", "content": content}])
            example = _example(tokenizer, prompt, item.output + IM_END, item.task)
            if len(example["prompt_ids"]) + len(example["response_ids"]) <= max_length:
                pool.append(example)
        if not pool:
            raise ValueError(f"No instruction fits {max_length} tokens; raise context_length.")
        examples += [rng.choice(pool) for _ in range(n - n_arithmetic)]
    rng.shuffle(examples)
    if batch_size is None:
        return examples
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive or None, got {batch_size}.")
    arithmetic = [e for e in examples if e["kind"] == "arithmetic"]
    others = [e for e in examples if e["kind"] != "arithmetic"]
    batches, rest = [], []
    for group in (arithmetic, others):
        full = len(group) - len(group) % batch_size
        batches += [group[i : i + batch_size] for i in range(0, full, batch_size)]
        rest += group[full:]
    rng.shuffle(batches)
    # Each kind's leftovers (fewer than batch_size) go last, so every batch before them is whole
    # and of one kind.
    return [example for batch in batches for example in batch] + rest


def _example(tokenizer: BPETokenizer, prompt: str, reply: str, kind: str) -> dict[str, Any]:
    return {
        "prompt_ids": tokenizer.encode(prompt),
        "response_ids": tokenizer.encode(reply),
        "kind": kind,
    }


def prompt_ids(tokenizer: BPETokenizer, problems: Sequence[Problem]) -> torch.Tensor:
    """``(n, P)`` chat prompts of ``problems`` (equal lengths: digits are single tokens)."""
    ids = [tokenizer.encode(arithmetic_dialogue(p)[0]) for p in problems]
    if len({len(row) for row in ids}) != 1:
        raise ValueError("Chat prompts differ in length: use operands with one number of digits.")
    return torch.tensor(ids, dtype=torch.long)


def reply_text(tokenizer: BPETokenizer, ids: Sequence[int]) -> str:
    """The text of a reply up to (not including) its first ``<|im_end|>`` or ``<|endoftext|>``."""
    ends = {stop_id(tokenizer), tokenizer.eos_id}
    ids = list(ids)
    cut = next((i for i, token in enumerate(ids) if token in ends), len(ids))
    return tokenizer.decode(ids[:cut])


def score_reply(prompt: str, reply: str) -> float:
    """1.0 when ``reply`` is exactly the answer to the sum in ``prompt`` (the first ``a+b=`` in
    its text, chat markup around it allowed), else 0.0.

    >>> score_reply("<|im_start|>user\\n3+4=<|im_end|>", "7"), score_reply("3+4=", " 7")
    (1.0, 0.0)
    """
    match = _SUM.search(prompt)
    if match is None:
        raise ValueError(f"The prompt {prompt!r} holds no arithmetic problem such as '37+45='.")
    return float(check_answer(reply, Problem.from_prompt(match.group(1)).answer))


class ChatArithmeticReward:
    """``reward_fn(prompts (n, P), responses) -> (n,)`` for ``GRPOTask``: 1.0 where the reply is
    exactly the sum asked for in the prompt (read back from its text), else 0.0."""

    def __init__(self, tokenizer: BPETokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, prompts: torch.Tensor, responses: Sequence[Sequence[int]]) -> torch.Tensor:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses.")
        rewards = [
            score_reply(
                self.tokenizer.decode(prompt.tolist()), reply_text(self.tokenizer, response)
            )
            for prompt, response in zip(prompts, responses, strict=True)
        ]
        return torch.tensor(rewards)


def load_chat_model(folder: str | Path) -> tuple[torch.nn.Module, BPETokenizer]:
    """The model and tokenizer of a capstone stage folder (``model.safetensors`` and
    ``tokenizer.json``, as ``llmcourse capstone`` writes them under ``final/``)."""
    from llmcourse.train.checkpoints import model_from_checkpoint

    folder = Path(folder)
    weights, vocabulary = folder / "model.safetensors", folder / "tokenizer.json"
    missing = [p.name for p in (weights, vocabulary) if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks {', '.join(missing)}: point --model at a capstone model folder "
            "(e.g. ~/.cache/llmcourse/capstone/tiny/final after `llmcourse capstone --size tiny`)."
        )
    return model_from_checkpoint(weights), BPETokenizer.load(vocabulary)
