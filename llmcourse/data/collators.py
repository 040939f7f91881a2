"""Collators for masked-LM pre-training and supervised fine-tuning: lists of token ids to batches.

A ``collate_fn`` turns the examples a DataLoader fetched into padded tensors. All outputs are
int64 tensors of shape (batch, seq); ``labels`` are aligned with ``input_ids`` and -100 marks a
position the loss ignores (``torch.nn.functional.cross_entropy(ignore_index=-100)``).
Padding is on the right and ``attention_mask`` is 1 on real tokens, 0 on padding.

Randomness comes from ``generator`` when given, else from torch's global generator, which
a DataLoader seeds differently in each worker (so workers do not repeat each other's masks)
and deterministically from its own ``generator``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

IGNORE_INDEX = -100


def as_ids(example: Any) -> list[int]:
    if isinstance(example, Mapping):
        example = example["input_ids"]
    if isinstance(example, torch.Tensor):
        return example.tolist()
    return [int(token) for token in example]


def pad_batch(sequences: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad lists of ids to the longest: shape (batch, longest)."""
    if not sequences:
        raise ValueError("Cannot collate an empty batch.")
    longest = max(len(s) for s in sequences)
    batch = torch.full((len(sequences), longest), value, dtype=torch.long)
    for row, ids in enumerate(sequences):
        batch[row, : len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
    return batch


def mask_tokens(
    input_ids: torch.Tensor,
    vocab_size: int,
    mask_id: int,
    special_mask: torch.Tensor,
    probability: float = 0.15,
    mask_fraction: float = 0.8,
    random_fraction: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking (Devlin et al. 2019, section 3.1): ``(corrupted inputs, labels)``.

    Each non-special token is selected with ``probability`` (15%). A selected token becomes
    ``mask_id`` 80% of the time, a uniformly random token 10%, and stays unchanged 10%, so the
    model cannot assume that only [MASK] positions need predicting. Labels hold the original
    token at selected positions and -100 elsewhere. ``special_mask`` (same shape, bool) marks
    positions never selected: [CLS], [SEP], padding.

    Draw order: selection, then [MASK] among selected, then random among the rest (with
    probability random_fraction / (1 − mask_fraction)), then the random tokens.
    """
    if not 0.0 <= probability <= 1.0 or mask_fraction + random_fraction > 1.0:
        raise ValueError(
            "Need 0 ≤ probability ≤ 1 and mask_fraction + random_fraction ≤ 1, got "
            f"{probability}, {mask_fraction}, {random_fraction}."
        )
    labels = input_ids.clone()
    inputs = input_ids.clone()
    chance = torch.full(labels.shape, probability).masked_fill(special_mask.bool(), 0.0)
    selected = torch.bernoulli(chance, generator=generator).bool()
    labels[~selected] = IGNORE_INDEX
    to_mask = torch.bernoulli(torch.full(labels.shape, mask_fraction), generator=generator)
    to_mask = to_mask.bool() & selected
    inputs[to_mask] = mask_id
    if mask_fraction < 1.0 and random_fraction > 0.0:
        share = random_fraction / (1.0 - mask_fraction)
        to_random = torch.bernoulli(torch.full(labels.shape, share), generator=generator).bool()
        to_random &= selected & ~to_mask
        random_ids = torch.randint(vocab_size, labels.shape, dtype=torch.long, generator=generator)
        inputs[to_random] = random_ids[to_random]
    return inputs, labels


class MLMCollator:
    """Pad a batch and apply ``mask_tokens``: ``input_ids``, ``attention_mask``, ``labels``.

    ``special_ids`` ([CLS], [SEP], ...) and ``pad_id`` are never selected for prediction.
    """

    def __init__(
        self,
        vocab_size: int,
        mask_id: int,
        pad_id: int,
        special_ids: Iterable[int] = (),
        probability: float = 0.15,
        mask_fraction: float = 0.8,
        random_fraction: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        for name, value in (("mask_id", mask_id), ("pad_id", pad_id)):
            if not 0 <= value < vocab_size:
                raise ValueError(f"{name}={value} is outside the vocabulary [0, {vocab_size}).")
        self.vocab_size, self.mask_id, self.pad_id = vocab_size, mask_id, pad_id
        self.special_ids = torch.tensor(sorted({*special_ids, pad_id}), dtype=torch.long)
        self.probability, self.mask_fraction = probability, mask_fraction
        self.random_fraction, self.generator = random_fraction, generator

    def __call__(self, examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        sequences = [as_ids(e) for e in examples]
        input_ids = pad_batch(sequences, self.pad_id)
        attention_mask = pad_batch([[1] * len(s) for s in sequences], 0)
        special = torch.isin(input_ids, self.special_ids) | (attention_mask == 0)
        inputs, labels = mask_tokens(
            input_ids,
            self.vocab_size,
            self.mask_id,
            special,
            self.probability,
            self.mask_fraction,
            self.random_fraction,
            self.generator,
        )
        return {"input_ids": inputs, "attention_mask": attention_mask, "labels": labels}


class SFTCollator:
    """Supervised fine-tuning batches: the loss sees only the response tokens.

    Each example is ``{"prompt_ids": [...], "response_ids": [...]}`` (the response should end
    with EOS so the model learns to stop). Output, shapes (batch, longest):

    - ``input_ids``: prompt + response, right-padded with ``pad_id``;
    - ``labels``: -100 on prompt and padding, the response tokens elsewhere;
    - ``attention_mask``: 1 on prompt and response.

    With ``max_length``, longer examples are cut at the end (the response loses its tail).
    """

    def __init__(self, pad_id: int, max_length: int | None = None) -> None:
        if max_length is not None and max_length <= 0:
            raise ValueError(f"max_length must be positive or None, got {max_length}.")
        self.pad_id, self.max_length = pad_id, max_length

    def __call__(self, examples: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        inputs, labels = [], []
        for index, example in enumerate(examples):
            if "prompt_ids" not in example or "response_ids" not in example:
                raise KeyError(
                    f"Example {index} needs 'prompt_ids' and 'response_ids', has {list(example)}."
                )
            prompt, response = list(example["prompt_ids"]), list(example["response_ids"])
            ids = (prompt + response)[: self.max_length]
            inputs.append(ids)
            labels.append(([IGNORE_INDEX] * len(prompt) + response)[: self.max_length])
        return {
            "input_ids": pad_batch(inputs, self.pad_id),
            "attention_mask": pad_batch([[1] * len(ids) for ids in inputs], 0),
            "labels": pad_batch(labels, IGNORE_INDEX),
        }
