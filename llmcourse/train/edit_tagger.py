"""Rewriting text by tagging its characters: a copy-aware model for spelling modernisation.

When output and input are nearly the same text (First Folio → modern spelling, typo fixing,
grammar correction), an encoder-decoder spends most of its training learning to *copy*: every
output character is generated from scratch through cross-attention. An edit tagger starts
from the copy instead (LaserTagger, Malmi et al. 2019; GECToR, Omelianchuk et al. 2020): a
bidirectional encoder reads the source and predicts, for each character, what to write in
its place:

    source   [^] V  p  o  n      t  h  e      H  e  a  t  h
    tags      =  =u $  $  $   $  $  $  $   $  %  $  $  $  $.
    output       u  p  o  n      t  h  e      h  e  a  t  h.

``$`` keeps the character, ``%`` writes it in lower case, ``=`` replaces it by the text after
the sign (``=`` alone deletes it); text after ``$`` or ``%`` is inserted after the character,
and the start slot ``[^]`` holds text inserted before the first character. ``edit_tags``
derives the tags from a (source, target) pair by a character alignment (Ratcliff/Obershelp,
``difflib``), and ``apply_tags(source, edit_tags(source, target)) == target`` for every pair.
Tags seen fewer than ``min_count`` times in training are left out of the vocabulary (their
positions are not trained on), so the model chooses among edits the data supports; predicting
``$`` everywhere *is* the copy baseline, so the model only has to learn where to leave it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.config import ModelConfig
from llmcourse.data.collators import IGNORE_INDEX, pad_batch
from llmcourse.models.encoder import EncoderLM
from llmcourse.train.tasks import Metrics, Task
from llmcourse.utils.modes import eval_mode

KEEP, LOWER, REPLACE = "$", "%", "="


def edit_tags(source: str, target: str) -> list[str]:
    """``len(source) + 1`` tags that turn ``source`` into ``target`` (the first: the start slot).

    Aligned characters keep (or lower-case) themselves; a replaced run of equal length is
    replaced character by character, an unequal one is written by its first character and the
    rest deleted; inserted text joins the tag of the character before it.
    """
    if not isinstance(source, str) or not isinstance(target, str):
        raise TypeError(f"edit_tags takes two strings, got {type(source).__name__} and "
                        f"{type(target).__name__}.")  # fmt: skip
    written = [""] * (len(source) + 1)  # slot 0: before the text; slot i + 1: source[i]
    matcher = SequenceMatcher(None, source, target, autojunk=False)
    for operation, i1, i2, j1, j2 in matcher.get_opcodes():
        if operation == "equal" or (operation == "replace" and i2 - i1 == j2 - j1):
            for offset in range(i2 - i1):
                written[i1 + offset + 1] = target[j1 + offset]
        elif operation == "replace":
            written[i1 + 1] = target[j1:j2]
        elif operation == "insert":
            written[i1] += target[j1:j2]  # after source[i1 - 1], or at the start when i1 == 0
    tags = [REPLACE + written[0]]
    for char, text in zip(source, written[1:], strict=True):
        if text.startswith(char):
            tags.append(KEEP + text[1:])
        elif char != char.lower() and text.startswith(char.lower()):
            tags.append(LOWER + text[1:])
        else:
            tags.append(REPLACE + text)
    return tags


def apply_tags(source: str, tags: Sequence[str]) -> str:
    """The text that ``tags`` (one for the start slot, then one per character) write."""
    if len(tags) != len(source) + 1:
        raise ValueError(
            f"Need len(source) + 1 = {len(source) + 1} tags (the start slot first), got "
            f"{len(tags)}."
        )
    pieces = []
    for char, tag in zip(["", *source], tags, strict=True):
        if not tag or tag[0] not in (KEEP, LOWER, REPLACE):
            raise ValueError(f"A tag starts with '$', '%' or '=', got {tag!r}.")
        head = {KEEP: char, LOWER: char.lower(), REPLACE: ""}[tag[0]]
        pieces.append(head + tag[1:])
    return "".join(pieces)


class EditTagger(nn.Module):
    """A character-level ``EncoderLM`` (no MLM head) and a linear layer over the tag vocabulary.

    ``EditTagger.build(pairs)`` reads the alphabet and the tags from training pairs;
    ``forward(input_ids, attention_mask)`` → logits ``(batch, 1 + chars, n_tags)``;
    ``examples(pairs)`` makes training examples; ``rewrite(lines)`` applies the argmax tags.
    """

    PAD, START, UNKNOWN = 0, 1, 2

    def __init__(
        self,
        alphabet: str,
        tags: Sequence[str],
        *,
        max_chars: int = 64,
        d_model: int = 128,
        n_layer: int = 3,
        n_head: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not tags or tags[0] != KEEP:
            raise ValueError(f"The tag vocabulary must start with the keep tag {KEEP!r}.")
        self.alphabet, self.tags = alphabet, list(tags)
        self.char_ids = {char: index + 3 for index, char in enumerate(alphabet)}
        self.tag_ids = {tag: index for index, tag in enumerate(self.tags)}
        self.max_chars = max_chars
        config = ModelConfig(
            name="edit-tagger", architecture="encoder", vocab_size=len(alphabet) + 3,
            context_length=max_chars + 1, d_model=d_model, n_layer=n_layer, n_head=n_head,
            mlm_head=False, dropout=dropout,
        )  # fmt: skip
        self.config = config
        self.encoder = EncoderLM(config)
        self.head = nn.Linear(d_model, len(self.tags))

    @classmethod
    def build(
        cls, pairs: Iterable[tuple[str, str]], min_count: int = 2, **model_args: Any
    ) -> EditTagger:
        """A fresh tagger whose alphabet and tags (seen at least ``min_count`` times) come from
        ``(source, target)`` pairs; ``model_args`` go to the constructor."""
        pairs = list(pairs)
        if not pairs:
            raise ValueError("EditTagger.build needs at least one (source, target) pair.")
        counts = Counter(tag for source, target in pairs for tag in edit_tags(source, target))
        counts.pop(KEEP, None)
        tags = [KEEP, *sorted(tag for tag, count in counts.items() if count >= min_count)]
        alphabet = "".join(sorted({char for source, _ in pairs for char in source}))
        return cls(alphabet, tags, **model_args)

    def encode(self, text: str) -> list[int]:
        """The start token, then one id per character (unknown characters share one id)."""
        if len(text) > self.max_chars:
            raise ValueError(
                f"Text of {len(text)} characters is longer than max_chars={self.max_chars}: "
                f"{text[:40]!r}…; split it or build the tagger with a larger max_chars."
            )
        return [self.START] + [self.char_ids.get(char, self.UNKNOWN) for char in text]

    def examples(self, pairs: Iterable[tuple[str, str]]) -> list[dict[str, list[int]]]:
        """``{"input_ids", "labels"}`` per pair; a tag outside the vocabulary is labelled -100."""
        return [
            {
                "input_ids": self.encode(source),
                "labels": [self.tag_ids.get(t, IGNORE_INDEX) for t in edit_tags(source, target)],
            }
            for source, target in pairs
        ]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.encoder(input_ids, attention_mask=attention_mask).hidden_states
        return self.head(hidden)

    @torch.no_grad()
    def rewrite(self, lines: Sequence[str], batch_size: int = 256) -> list[str]:
        """Each line rewritten by its most likely tag at every position."""
        out = []
        device = self.head.weight.device
        with eval_mode(self):
            for start in range(0, len(lines), batch_size):
                chunk = list(lines[start : start + batch_size])
                batch = TaggingCollator()([{"input_ids": self.encode(line)} for line in chunk])
                logits = self(batch["input_ids"].to(device), batch["attention_mask"].to(device))
                for line, best in zip(chunk, logits.argmax(-1).tolist(), strict=True):
                    out.append(apply_tags(line, [self.tags[i] for i in best[: len(line) + 1]]))
        return out


class TaggingCollator:
    """Examples ``{"input_ids", "labels"?}`` → right-padded ``input_ids`` (pad id 0),
    ``attention_mask`` and, when given, ``labels`` padded with -100."""

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [list(e["input_ids"]) for e in examples]
        batch = {
            "input_ids": pad_batch(ids, EditTagger.PAD),
            "attention_mask": pad_batch([[1] * len(i) for i in ids], 0),
        }
        if examples and "labels" in examples[0]:
            batch["labels"] = pad_batch([list(e["labels"]) for e in examples], IGNORE_INDEX)
        return batch


class EditTaggingTask(Task):
    """Cross-entropy of the tag at every labelled position, on ``Trainer``; the unit is a
    character, and ``accuracy`` the share of characters whose tag is right."""

    name = "edit_tagging"

    def count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (batch["labels"] != IGNORE_INDEX).sum()

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, Metrics]:
        logits = model(batch["input_ids"], batch.get("attention_mask")).float()
        labels = batch["labels"]
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
        right = ((logits.argmax(-1) == labels) & (labels != IGNORE_INDEX)).sum()
        return loss, {"accuracy": right.detach()}
