"""The course's labelled safety set: 340 prompts and model outputs, harmful or benign.

No package on PyPI ships a labelled harmful-and-benign set with the hard benign cases that
make a filter's false positives visible (StrongREJECT, HarmBench and similar ship harmful
requests only), so the course wrote one: labelling rules first (``data/LABELLING.md``), then
the items (``data/safety_set.jsonl``, one JSON object a line):

- ``id``: ``<category>-<nn>``, unique; ``text``: the prompt or output, unique in the file;
- ``kind``: ``"prompt"`` (a user's request) or ``"output"`` (a model's answer, often its
  opening);
- ``label``: ``"harmful"`` or ``"benign"``;
- ``category``: a harm category (``moderation.CATEGORIES``) for a harmful item, the topic of a
  benign one (``BENIGN_TOPICS``: medical, history, fiction, security, news, refusal, support,
  everyday);
- ``hard``: a harmful item that avoids every phrase of the phrase list, a benign item that
  shares words or topic with harm;
- ``split``: ``"train"`` (filters may be fitted and tuned on it) or ``"test"`` (held out).

Harmful items state intent or a request, or open a compliant answer and stop before any
detail: the set teaches filtering without containing instructions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from llmcourse.ethics.moderation import CATEGORIES

SAFETY_SET = Path(__file__).with_name("data") / "safety_set.jsonl"
BENIGN_TOPICS: tuple[str, ...] = (
    "medical",
    "history",
    "fiction",
    "security",
    "news",
    "refusal",
    "support",
    "everyday",
)
Split = Literal["all", "train", "test"]


@dataclass(frozen=True)
class SafetyItem:
    """One labelled text of the safety set (fields as in the module docstring)."""

    id: str
    text: str
    kind: Literal["prompt", "output"]
    label: Literal["harmful", "benign"]
    category: str
    hard: bool
    split: Literal["train", "test"]

    @property
    def harmful(self) -> bool:
        return self.label == "harmful"


_FIELDS = {"id": str, "text": str, "kind": str, "label": str, "category": str, "hard": bool}
_CHOICES = {
    "kind": ("prompt", "output"),
    "label": ("harmful", "benign"),
    "split": ("train", "test"),
}


def _parse(line: str, where: str) -> SafetyItem:
    record = json.loads(line)
    if set(record) != {*_FIELDS, "split"}:
        raise ValueError(
            f"{where}: fields {sorted(record)}, expected {sorted({*_FIELDS, 'split'})}."
        )
    for name, kind in _FIELDS.items():
        if not isinstance(record[name], kind):
            raise ValueError(f"{where}: {name}={record[name]!r} is not a {kind.__name__}.")
    for name, allowed in _CHOICES.items():
        if record[name] not in allowed:
            raise ValueError(f"{where}: {name}={record[name]!r}, expected one of {allowed}.")
    topics = CATEGORIES if record["label"] == "harmful" else BENIGN_TOPICS
    if record["category"] not in topics:
        raise ValueError(
            f"{where}: category {record['category']!r} is not one of {topics} for a "
            f"{record['label']} item."
        )
    return SafetyItem(**record)


@cache
def _load(path: Path) -> tuple[SafetyItem, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(_parse(line, f"{path.name}:{n}") for n, line in enumerate(lines, 1) if line)


def safety_set(split: Split = "all", path: Path | None = None) -> list[SafetyItem]:
    """The labelled items of ``split`` (``"all"``, ``"train"`` or ``"test"``), in file order."""
    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}.")
    items = _load(Path(path) if path is not None else SAFETY_SET)
    return [item for item in items if split == "all" or item.split == split]


def safety_set_hash(path: Path | None = None) -> str:
    """The first 12 hex digits of the set file's SHA-256: names caches built from it."""
    data = (Path(path) if path is not None else SAFETY_SET).read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


def labels(items: list[SafetyItem]) -> list[int]:
    """1 for each harmful item, 0 for each benign one."""
    return [int(item.harmful) for item in items]
