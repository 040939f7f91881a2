"""Multiple-choice evaluation by log-likelihood, in the MMLU prompt format.

MMLU (Hendrycks et al. 2021, "Measuring Massive Multitask Language Understanding") asks four-way
questions in a fixed layout, optionally after ``k`` solved examples ("k-shot")::

    The following are multiple choice questions (with answers) about <subject>.

    <question>
    A. <choice>
    B. <choice>
    C. <choice>
    D. <choice>
    Answer:

and reads the model's answer from the next-token logits of ``" A"``, ``" B"``, ``" C"``,
``" D"``: the prediction is the letter with the largest log-likelihood, and the softmax over the
four letters is the model's confidence (what calibration measures). One forward pass per
question, no sampling, so the score is deterministic.

``play_questions`` writes such a question set from our own corpus: "Which play is this passage
from?" with the true play and three others drawn at random (seeded). A passage goes to the
``"dev"`` split (few-shot examples) or the held-out ``"test"`` split by a hash of its text, so the
two never share a passage and the split does not depend on how many questions are asked for.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

LETTERS = ("A", "B", "C", "D")

#: The plays questions are drawn from, with the titles shown as options.
PLAY_TITLES: dict[str, str] = {
    "as_you_like_it": "As You Like It",
    "hamlet": "Hamlet",
    "julius_caesar": "Julius Caesar",
    "lear": "King Lear",
    "macbeth": "Macbeth",
    "merchant_of_venice": "The Merchant of Venice",
    "midsummer_nights_dream": "A Midsummer Night's Dream",
    "much_ado_about_nothing": "Much Ado About Nothing",
    "othello": "Othello",
    "romeo_and_juliet": "Romeo and Juliet",
    "tempest": "The Tempest",
    "twelfth_night": "Twelfth Night",
}


class Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class MCQuestion:
    """One question with its options and the index of the right one."""

    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str = "general knowledge"

    def __post_init__(self) -> None:
        if not 2 <= len(self.choices) <= len(LETTERS):
            raise ValueError(f"Give 2 to {len(LETTERS)} choices, got {len(self.choices)}.")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"answer {self.answer} is not an index into the choices.")


@dataclass(frozen=True)
class MCResult:
    """Scores of a question set: ``probabilities`` ``(n, n_choices)`` over the letters."""

    probabilities: np.ndarray
    answers: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.answers

    @property
    def confidences(self) -> np.ndarray:
        """The probability the model gave to the answer it picked."""
        return self.probabilities.max(axis=1)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())


def _block(question: MCQuestion, with_answer: bool) -> str:
    lines = [question.question]
    lines += [
        f"{letter}. {choice}" for letter, choice in zip(LETTERS, question.choices, strict=False)
    ]
    answer = f" {LETTERS[question.answer]}\n\n" if with_answer else ""
    return "\n".join(lines) + "\nAnswer:" + answer


def format_mmlu(question: MCQuestion, shots: Sequence[MCQuestion] = ()) -> str:
    """The MMLU prompt for ``question``, after the solved ``shots`` (see the module docstring)."""
    header = (
        f"The following are multiple choice questions (with answers) about {question.subject}.\n\n"
    )
    return header + "".join(_block(s, True) for s in shots) + _block(question, False)


def letter_token_ids(tokenizer: Encoder, n_choices: int = 4) -> list[int]:
    """The token id of each answer letter as it follows ``"Answer:"`` (``" A"``, ...)."""
    ids = []
    for letter in LETTERS[:n_choices]:
        tokens = tokenizer.encode(" " + letter)
        if len(tokens) != 1:
            raise ValueError(
                f"' {letter}' is {len(tokens)} tokens for this tokenizer; letter scoring needs "
                "each answer letter to be one token."
            )
        ids.append(tokens[0])
    return ids


@torch.inference_mode()
def score_multiple_choice(
    model: torch.nn.Module,
    tokenizer: Encoder,
    questions: Sequence[MCQuestion],
    shots: Sequence[MCQuestion] = (),
    batch_size: int = 8,
) -> MCResult:
    """Answer every question by the letter with the largest next-token log-likelihood.

    Prompts are left-padded into batches of ``batch_size`` (so every row's last token is
    ``"Answer:"``); ``model(ids, attention_mask=mask)`` must return ``.logits``.
    """
    if not questions:
        raise ValueError("Give at least one question.")
    n_choices = len(questions[0].choices)
    if any(len(q.choices) != n_choices for q in questions):
        raise ValueError("Every question needs the same number of choices.")
    letters = torch.tensor(letter_token_ids(tokenizer, n_choices))
    probabilities = []
    for start in range(0, len(questions), batch_size):
        prompts = [
            tokenizer.encode(format_mmlu(q, shots)) for q in questions[start : start + batch_size]
        ]
        width = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), width, dtype=torch.long)
        mask = torch.zeros(len(prompts), width, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        logits = model(ids, attention_mask=None if bool(mask.all()) else mask).logits[:, -1]
        probabilities.append(torch.softmax(logits[:, letters].double(), dim=-1))
    return MCResult(torch.cat(probabilities).numpy(), np.array([q.answer for q in questions]))


def _passages(text: str, lines_per_passage: int) -> list[str]:
    """Runs of consecutive verse/prose lines (no speaker names, stage directions or headings)."""

    def is_speech(line: str) -> bool:
        line = line.strip()
        return (
            len(line) >= 25
            and line[0].isalpha()
            and not line.startswith(("Scene", "SCENE", "ACT", "Act "))
            and not line.endswith("]")
            and not line.isupper()
        )

    lines = text.splitlines()
    passages = []
    for start in range(0, len(lines) - lines_per_passage, lines_per_passage):
        window = lines[start : start + lines_per_passage]
        if all(is_speech(line) for line in window):
            passages.append(" / ".join(line.strip() for line in window))
    return passages


def play_questions(
    n: int,
    split: Literal["dev", "test"] = "test",
    seed: int = 0,
    lines_per_passage: int = 2,
    works: dict[str, str] | None = None,
) -> list[MCQuestion]:
    """``n`` "Which play is this passage from?" questions over ``PLAY_TITLES`` (seeded).

    A passage belongs to ``"dev"`` when ``crc32(passage) % 5 == 0`` (about 20%), otherwise to
    ``"test"``. ``works`` (name → text) defaults to ``llmcourse.pretrained.shakespeare_works()``.
    """
    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}.")
    if works is None:
        from llmcourse.pretrained import shakespeare_works

        works = shakespeare_works()
    plays = sorted(name for name in PLAY_TITLES if name in works)
    if len(plays) < len(LETTERS):
        raise ValueError(f"Need at least {len(LETTERS)} of the plays in PLAY_TITLES.")
    in_split: Callable[[str], bool] = lambda p: (
        (zlib.crc32(p.encode()) % 5 == 0) == (split == "dev")
    )
    pools = {
        name: [p for p in _passages(works[name], lines_per_passage) if in_split(p)]
        for name in plays
    }
    rng = random.Random(f"{seed}-{split}")
    questions = []
    for _ in range(n):
        play = rng.choice(plays)
        passage = rng.choice(pools[play])
        options = [play, *rng.sample([p for p in plays if p != play], len(LETTERS) - 1)]
        rng.shuffle(options)
        questions.append(
            MCQuestion(
                question=f'Which play is this passage from?\n"{passage}"',
                choices=tuple(PLAY_TITLES[o] for o in options),
                answer=options.index(play),
                subject="Shakespeare's plays",
            )
        )
    return questions
