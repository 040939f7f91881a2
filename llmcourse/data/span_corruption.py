"""T5's span corruption (Raffel et al. 2020, section 3.3): drop spans, predict them back.

Random spans covering ``noise_density`` (15%) of the tokens, ``mean_span_length`` (3) tokens long
on average, are cut out of the input. Each span is replaced by one sentinel token; the target
lists each sentinel followed by the tokens it hides:

    original  Thank you for inviting me to your party last week .
    inputs    Thank you <X> me to your party <Y> week . </s>
    targets   <X> for inviting <Y> last </s>

Targets are short (about 15% of the tokens plus one sentinel per span), which made this
objective the cheapest of those T5 compared at equal quality. Span placement follows T5's
``random_spans_noise_mask``: the noise tokens and the kept tokens are each split into the same
number of random non-empty runs, interleaved so the sequence starts with kept text.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from llmcourse.data.collators import IGNORE_INDEX, as_ids, pad_batch


def _random_segmentation(n_items: int, n_segments: int, generator: Any) -> list[int]:
    """``n_segments`` positive lengths summing to ``n_items``, uniformly over all such splits."""
    cuts = torch.randperm(n_items - 1, generator=generator)[: n_segments - 1] + 1
    bounds = [0, *sorted(cuts.tolist()), n_items]
    return [b - a for a, b in itertools.pairwise(bounds)]


def random_spans_noise_mask(
    length: int,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bool mask of shape (length,): True on the tokens to hide, in random spans."""
    if length < 2:
        raise ValueError(f"Span corruption needs at least 2 tokens, got {length}.")
    if not 0.0 < noise_density < 1.0 or mean_span_length < 1.0:
        raise ValueError(
            f"Need 0 < noise_density < 1 and mean_span_length ≥ 1, got {noise_density}, "
            f"{mean_span_length}."
        )
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = min(max(round(n_noise / mean_span_length), 1), length - n_noise)
    noise = _random_segmentation(n_noise, n_spans, generator)
    kept = _random_segmentation(length - n_noise, n_spans, generator)
    mask = []
    for keep, hide in zip(kept, noise, strict=True):
        mask += [False] * keep + [True] * hide
    return torch.tensor(mask)


def span_corruption(
    ids: Sequence[int],
    sentinel_ids: Sequence[int],
    eos_id: int,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> tuple[list[int], list[int]]:
    """``(inputs, targets)`` for one sequence; span k is marked by ``sentinel_ids[k]``.

    T5's sentinels are ``<extra_id_0>``, ``<extra_id_1>``, ... (ids 32099, 32098, ... in its
    vocabulary); pass enough of them for the spans (about length · density / mean + 1).
    """
    ids = list(ids)
    mask = random_spans_noise_mask(len(ids), noise_density, mean_span_length, generator).tolist()
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    for position, (token, hidden) in enumerate(zip(ids, mask, strict=True)):
        if hidden:
            if position == 0 or not mask[position - 1]:
                span += 1
                if span >= len(sentinel_ids):
                    raise ValueError(
                        f"{len(sentinel_ids)} sentinel ids are not enough for the spans of a "
                        f"{len(ids)}-token sequence; pass more."
                    )
                inputs.append(sentinel_ids[span])
                targets.append(sentinel_ids[span])
            targets.append(token)
        else:
            inputs.append(token)
    return [*inputs, eos_id], [*targets, eos_id]


def fill_spans(
    inputs: Sequence[int], targets: Sequence[int], sentinel_ids: Sequence[int], eos_id: int
) -> list[int]:
    """Undo ``span_corruption``: put each sentinel's span back into the inputs."""
    position = {sentinel: k for k, sentinel in enumerate(sentinel_ids)}
    spans: dict[int, list[int]] = {}
    current: list[int] = []
    for token in list(targets)[:-1] if targets and targets[-1] == eos_id else targets:
        if token in position:
            current = spans.setdefault(position[token], [])
        else:
            current.append(token)
    restored: list[int] = []
    for token in list(inputs)[:-1] if inputs and inputs[-1] == eos_id else inputs:
        restored += spans.get(position[token], []) if token in position else [token]
    return restored


class SpanCorruptionCollator:
    """Batches for an encoder-decoder: ``input_ids``, ``attention_mask`` (batch, in_len) and
    ``labels`` (batch, out_len), padded with ``pad_id`` and -100 respectively."""

    def __init__(
        self,
        sentinel_ids: Sequence[int],
        eos_id: int,
        pad_id: int,
        noise_density: float = 0.15,
        mean_span_length: float = 3.0,
        generator: torch.Generator | None = None,
    ) -> None:
        if not sentinel_ids:
            raise ValueError("Give at least one sentinel id.")
        self.sentinel_ids, self.eos_id, self.pad_id = list(sentinel_ids), eos_id, pad_id
        self.noise_density, self.mean_span_length = noise_density, mean_span_length
        self.generator = generator

    def __call__(self, examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        pairs = [
            span_corruption(
                as_ids(example),
                self.sentinel_ids,
                self.eos_id,
                self.noise_density,
                self.mean_span_length,
                self.generator,
            )
            for example in examples
        ]
        inputs = [p[0] for p in pairs]
        return {
            "input_ids": pad_batch(inputs, self.pad_id),
            "attention_mask": pad_batch([[1] * len(ids) for ids in inputs], 0),
            "labels": pad_batch([p[1] for p in pairs], IGNORE_INDEX),
        }
