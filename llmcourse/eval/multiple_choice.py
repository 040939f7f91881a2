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

import inspect
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
    source: str = ""  # where the question and its key come from (see ``question_sets``)

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

    Prompts are sorted by length (less padding), left-padded into batches of ``batch_size`` (so
    every row's last token is ``"Answer:"``); ``model(ids, attention_mask=mask)`` must return
    ``.logits``. When the model also takes ``kv_cache=`` (every llmcourse decoder does), the
    tokens a batch's prompts share at the start (the MMLU header and the ``shots``) are run
    once and their keys and values reused by every row: the same numbers for less compute.
    Results come back in the order of ``questions``.
    """
    if not questions:
        raise ValueError("Give at least one question.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    n_choices = len(questions[0].choices)
    if any(len(q.choices) != n_choices for q in questions):
        raise ValueError("Every question needs the same number of choices.")
    letters = torch.tensor(letter_token_ids(tokenizer, n_choices))
    prompts = [tokenizer.encode(format_mmlu(q, shots)) for q in questions]
    # Sorting by (subject, length) groups prompts with the same header and similar lengths.
    order = sorted(range(len(prompts)), key=lambda i: (questions[i].subject, len(prompts[i])))
    reuse = "kv_cache" in inspect.signature(model.forward).parameters
    probabilities = torch.empty(len(prompts), n_choices, dtype=torch.float64)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        logits = _last_logits(model, [prompts[i] for i in rows], reuse)
        probabilities[rows] = torch.softmax(logits[:, letters].double(), dim=-1).cpu()
    return MCResult(probabilities.numpy(), np.array([q.answer for q in questions]))


def _shared_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, leaving each prompt at least one token of its own."""
    shortest = min(len(p) for p in prompts)
    length = 0
    while length < shortest - 1 and all(p[length] == prompts[0][length] for p in prompts):
        length += 1
    return length


def _last_logits(model: torch.nn.Module, prompts: Sequence[Sequence[int]], reuse: bool):
    """Next-token logits after each prompt, ``(len(prompts), vocab)``."""
    device = next(model.parameters()).device
    shared = _shared_prefix(prompts) if reuse and len(prompts) > 1 else 0
    cache = None
    if shared:
        from llmcourse.nn.kv_cache import KVCache

        cache = KVCache()
        model(torch.tensor([prompts[0][:shared]], device=device), kv_cache=cache)
        cache.select_rows(torch.zeros(len(prompts), dtype=torch.long, device=device))
    tails = [p[shared:] for p in prompts]
    width = max(len(t) for t in tails)
    ids = torch.zeros(len(tails), width, dtype=torch.long)
    mask = torch.zeros(len(tails), shared + width, dtype=torch.long)
    mask[:, :shared] = 1
    for row, tail in enumerate(tails):
        ids[row, width - len(tail) :] = torch.tensor(tail)
        mask[row, shared + width - len(tail) :] = 1
    kwargs = {"kv_cache": cache} if cache is not None else {}
    attention_mask = None if bool(mask.all()) else mask.to(device)
    return model(ids.to(device), attention_mask=attention_mask, **kwargs).logits[:, -1]


def format_cloze(question: MCQuestion, shots: Sequence[MCQuestion] = ()) -> str:
    """The cloze prompt for ``question``: ``"Question: ...\nAnswer:"``, after the solved
    ``shots`` (each followed by its right choice written out)."""

    def block(q: MCQuestion) -> str:
        return f"Question: {q.question}\nAnswer:"

    return "".join(f"{block(s)} {s.choices[s.answer]}\n\n" for s in shots) + block(question)


Normalization = Literal["none", "token", "char"]


@torch.inference_mode()
def score_choice_likelihoods(
    model: torch.nn.Module,
    tokenizer: Encoder,
    questions: Sequence[MCQuestion],
    shots: Sequence[MCQuestion] = (),
    batch_size: int = 8,
    normalize: Normalization = "none",
) -> MCResult:
    """Answer every question by the choice whose *text* is likeliest after the question.

    The cloze formulation (Brown et al. 2020, GPT-3's multiple-choice evaluation; Gu et al.
    2024, "OLMES"): the score of choice ``c`` is ``log P(" " + c | format_cloze(question))``,
    summed over its tokens, and the prediction is the best-scoring choice. It asks nothing of
    the letters, which small models cannot yet bind to options, so it separates models that
    the letter format (``score_multiple_choice``) leaves all at chance. ``normalize`` divides
    each score by the choice's length (``"token"``: tokens, ``"char"``: characters, as
    lm-evaluation-harness's ``acc_norm``) so long choices are not penalised for their length;
    with ``"none"`` the softmax over the four scores is the model's probability of each choice
    given that the answer is one of them, the confidence calibration measures.

    Questions are batched by length (``batch_size`` at a time); each question's prompt runs
    once and its keys and values are copied to one row per choice (``KVCache.reorder``), so the
    question is not recomputed four times. ``model`` must accept
    ``attention_mask=`` and ``kv_cache=`` like every llmcourse decoder.
    """
    if not questions:
        raise ValueError("Give at least one question.")
    if normalize not in ("none", "token", "char"):
        raise ValueError(f"normalize must be 'none', 'token' or 'char', got {normalize!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    n_choices = len(questions[0].choices)
    if any(len(q.choices) != n_choices for q in questions):
        raise ValueError("Every question needs the same number of choices.")
    if "kv_cache" not in inspect.signature(model.forward).parameters:
        raise TypeError("score_choice_likelihoods needs a model whose forward takes kv_cache=.")
    contexts = [tokenizer.encode(format_cloze(q, shots)) for q in questions]
    longest_choice = [max(len(tokenizer.encode(" " + c)) for c in q.choices) for q in questions]
    # Batches of similar choice and context lengths: every row is padded to the batch's longest.
    order = sorted(range(len(questions)), key=lambda i: (longest_choice[i], len(contexts[i])))
    scores = torch.empty(len(questions), n_choices, dtype=torch.float64)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = [questions[i] for i in rows]
        log_likelihoods = _choice_log_likelihoods(
            model, tokenizer, [contexts[i] for i in rows], batch
        )
        if normalize != "none":
            lengths = torch.tensor(
                [
                    [
                        len(tokenizer.encode(" " + c)) if normalize == "token" else len(c) + 1
                        for c in q.choices
                    ]
                    for q in batch
                ],
                dtype=torch.float64,
            )
            log_likelihoods = log_likelihoods / lengths
        scores[rows] = log_likelihoods
    probabilities = torch.softmax(scores, dim=-1).numpy()
    return MCResult(probabilities, np.array([q.answer for q in questions]))


def _choice_log_likelihoods(
    model: torch.nn.Module,
    tokenizer: Encoder,
    contexts: Sequence[Sequence[int]],
    questions: Sequence[MCQuestion],
) -> torch.Tensor:
    """``(len(questions), n_choices)`` summed log-probabilities of each choice's tokens."""
    from llmcourse.nn.kv_cache import KVCache

    device = next(model.parameters()).device
    n_choices = len(questions[0].choices)
    # 1. The contexts, left-padded, once: their cache and the distribution of the next token.
    width = max(len(c) for c in contexts)
    ids = torch.zeros(len(contexts), width, dtype=torch.long)
    mask = torch.zeros(len(contexts), width, dtype=torch.long)
    for row, context in enumerate(contexts):
        ids[row, width - len(context) :] = torch.tensor(context)
        mask[row, width - len(context) :] = 1
    cache = KVCache()
    first = (
        model(
            ids.to(device),
            attention_mask=None if bool(mask.all()) else mask.to(device),
            kv_cache=cache,
        )
        .logits[:, -1]
        .float()
        .log_softmax(-1)
    )
    # 2. One row per (question, choice): the context's cache copied, the choice right-padded.
    rows = torch.arange(len(contexts), device=device).repeat_interleave(n_choices)
    cache.select_rows(rows)
    choices = [tokenizer.encode(" " + c) for q in questions for c in q.choices]
    if any(len(c) == 0 for c in choices):
        raise ValueError("Every choice must be at least one token long.")
    length = max(len(c) for c in choices)
    tokens = torch.zeros(len(choices), length, dtype=torch.long)
    real = torch.zeros(len(choices), length, dtype=torch.bool)
    for row, choice in enumerate(choices):
        tokens[row, : len(choice)] = torch.tensor(choice)
        real[row, : len(choice)] = True
    tokens, real = tokens.to(device), real.to(device)
    full_mask = torch.cat([mask.to(device)[rows], real.long()], dim=1)
    logits = model(tokens, attention_mask=full_mask, kv_cache=cache).logits.float()
    # 3. Token 0 of a choice is scored by the context's last position, token j by choice
    #    position j - 1; padding scores nothing.
    log_probs = torch.empty(len(choices), length, device=device)
    log_probs[:, 0] = first[rows].gather(-1, tokens[:, :1]).squeeze(-1)
    if length > 1:
        later = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
        log_probs[:, 1:] = later
    total = (log_probs * real).sum(-1).double().cpu()
    return total.reshape(len(questions), n_choices)


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
