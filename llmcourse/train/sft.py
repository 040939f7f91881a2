"""Supervised fine-tuning (SFT): train on (prompt, response) pairs, with loss on the response only.

    L = −(1/|R|) Σ_{t ∈ R} log π(x_t | x_<t)         R: the response positions

The prompt is context, not something the model should learn to write, so its labels are -100
(Ouyang et al. 2022, §3.5, train on demonstrations; the "loss mask" of most SFT recipes). The
response ends with the template's end marker (an EOS or ``<|im_end|>``): without that target the
model never learns to stop.

Pieces: ``sft_example`` (template + tokenizer → ``prompt_ids``/``response_ids``, with a clear
error when it does not fit the context), ``sft_labels`` (the masking itself), ``SFTDataset``
(examples for ``Trainer`` with ``llmcourse.data.collators.SFTCollator``), ``pack_examples``
(optional packing of several short examples into one row), and two task metrics:
``choice_accuracy`` (rank classification: which allowed answer does the model find likeliest?)
and ``response_nll`` (mean loss on held-out responses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from llmcourse.data.collators import IGNORE_INDEX, SFTCollator
from llmcourse.data.instructions import InstructionExample, PromptTemplate
from llmcourse.tokenizers.base import Tokenizer
from llmcourse.train.logprobs import sequence_logprobs
from llmcourse.utils.modes import eval_mode


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with an llmcourse tokenizer or a ``transformers`` one.

    ``transformers`` tokenizers are asked not to add their own BOS/EOS: the template decides.
    """
    if isinstance(tokenizer, Tokenizer):
        return tokenizer.encode(text)
    return list(tokenizer.encode(text, add_special_tokens=False))


def sft_labels(prompt_ids: Sequence[int], response_ids: Sequence[int]) -> tuple[list, list]:
    """``(input_ids, labels)`` of one example: labels are -100 on the prompt, else the ids.

    >>> sft_labels([5, 6], [7, 8])
    ([5, 6, 7, 8], [-100, -100, 7, 8])
    """
    input_ids = [*prompt_ids, *response_ids]
    return input_ids, [IGNORE_INDEX] * len(prompt_ids) + list(response_ids)


def sft_example(
    tokenizer: Any,
    template: PromptTemplate,
    example: InstructionExample,
    max_length: int | None = None,
) -> dict[str, list[int]]:
    """``{"prompt_ids", "response_ids"}`` of ``example`` formatted by ``template``.

    Raises ``ValueError`` when prompt + response exceed ``max_length`` (the model's context):
    cutting the response would teach the model to stop mid-answer without its end marker.
    """
    prompt_ids = encode_text(tokenizer, template.format_prompt(example))
    response_ids = encode_text(tokenizer, template.format_response(example.output))
    total = len(prompt_ids) + len(response_ids)
    if max_length is not None and total > max_length:
        raise ValueError(
            f"Prompt ({len(prompt_ids)} tokens) + response ({len(response_ids)} tokens) = "
            f"{total} tokens exceed the context of {max_length}: shorten the input, drop the "
            "example, or use a model with a longer context (the response is never truncated)."
        )
    return {"prompt_ids": prompt_ids, "response_ids": response_ids}


class SFTDataset(Dataset):
    """Tokenized examples for ``Trainer(..., collate_fn=SFTCollator(pad_id))``.

    ``skip_too_long=True`` drops examples that do not fit ``max_length`` (and counts them in
    ``skipped``) instead of raising.
    """

    def __init__(
        self,
        tokenizer: Any,
        template: PromptTemplate,
        examples: Sequence[InstructionExample],
        max_length: int | None = None,
        skip_too_long: bool = False,
    ) -> None:
        self.items: list[dict[str, list[int]]] = []
        self.skipped = 0
        for example in examples:
            try:
                self.items.append(sft_example(tokenizer, template, example, max_length))
            except ValueError:
                if not skip_too_long:
                    raise
                self.skipped += 1
        if not self.items:
            raise ValueError("No example fits: every one is longer than max_length.")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.items[index]


def pack_examples(
    items: Sequence[dict[str, Sequence[int]]], block_size: int, pad_id: int
) -> list[dict[str, torch.Tensor]]:
    """Pack tokenized examples into rows of ``block_size`` tokens (first fit, in order).

    Short examples waste most of a padded row; packing fills the row with several of them, each
    keeping its own -100 prompt labels. Without a block-diagonal mask a packed example can attend
    to the one before it; with a few short unrelated examples that costs little, and it is what
    many SFT recipes accept for the speed. Each row: ``input_ids``, ``labels``,
    ``attention_mask`` (0 on the padding at the end).
    """
    rows: list[tuple[list[int], list[int]]] = []
    for index, item in enumerate(items):
        ids, labels = sft_labels(item["prompt_ids"], item["response_ids"])
        if len(ids) > block_size:
            raise ValueError(
                f"Example {index} has {len(ids)} tokens, more than block_size={block_size}."
            )
        if not rows or len(rows[-1][0]) + len(ids) > block_size:
            rows.append(([], []))
        rows[-1][0].extend(ids)
        rows[-1][1].extend(labels)
    packed = []
    for ids, labels in rows:
        pad = block_size - len(ids)
        packed.append(
            {
                "input_ids": torch.tensor(ids + [pad_id] * pad),
                "labels": torch.tensor(labels + [IGNORE_INDEX] * pad),
                "attention_mask": torch.tensor([1] * len(ids) + [0] * pad),
            }
        )
    return packed


def choice_logprobs(
    model: nn.Module,
    tokenizer: Any,
    template: PromptTemplate,
    example: InstructionExample,
) -> torch.Tensor:
    """``log π(choice + end marker | prompt)`` for each of ``example.choices``: ``(n_choices,)``."""
    return _choice_scores(model, tokenizer, template, [example])[0]


def choice_accuracy(
    model: nn.Module,
    tokenizer: Any,
    template: PromptTemplate,
    examples: Sequence[InstructionExample],
    batch_size: int = 32,
) -> float:
    """Fraction of ``examples`` whose likeliest choice is the right answer (rank classification).

    Scoring the allowed answers instead of parsing free generation measures what the model
    knows, not whether it already follows the answer format (Brown et al. 2020, §2.4). Every
    (prompt, choice) pair is one row; ``batch_size`` rows of similar length run together.
    """
    scores = _choice_scores(model, tokenizer, template, examples, batch_size)
    correct = sum(
        example.choices[int(score.argmax())] == example.output
        for example, score in zip(examples, scores, strict=True)
    )
    return correct / max(len(examples), 1)


@torch.no_grad()
def _choice_scores(model, tokenizer, template, examples, batch_size=32) -> list[torch.Tensor]:
    items, owner = [], []
    for index, example in enumerate(examples):
        if not example.choices:
            raise ValueError(f"Example {index} has no choices to rank (task {example.task!r}).")
        prompt_ids = encode_text(tokenizer, template.format_prompt(example))
        for choice in example.choices:
            response_ids = encode_text(tokenizer, template.format_response(choice))
            items.append({"prompt_ids": prompt_ids, "response_ids": response_ids})
            owner.append(index)
    # Rows sorted by length waste little on padding. Right padding needs no attention mask:
    # causal attention never lets a scored position see the padding after it.
    order = sorted(range(len(items)), key=lambda i: sum(map(len, items[i].values())))
    collate = SFTCollator(pad_id=0)
    flat = torch.empty(len(items))
    with eval_mode(model):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = collate([items[i] for i in rows])
            flat[rows] = sequence_logprobs(model, batch["input_ids"], batch["labels"])
    grouped: list[list[torch.Tensor]] = [[] for _ in examples]
    for index, score in zip(owner, flat, strict=True):
        grouped[index].append(score)
    return [torch.stack(scores) for scores in grouped]


@torch.no_grad()
def response_nll(
    model: nn.Module, dataset: SFTDataset, pad_id: int = 0, batch_size: int = 16
) -> float:
    """Mean negative log-likelihood (nats per response token) of ``dataset``'s responses."""
    collate = SFTCollator(pad_id)
    total, count = 0.0, 0
    with eval_mode(model):
        for start in range(0, len(dataset), batch_size):
            indices = range(start, min(start + batch_size, len(dataset)))
            batch = collate([dataset[i] for i in indices])
            logps = sequence_logprobs(
                model, batch["input_ids"], batch["labels"], batch["attention_mask"]
            )
            total -= float(logps.sum())
            count += int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    return total / max(count, 1)
