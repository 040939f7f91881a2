"""Instruction data made from the Shakespeare plays, and the prompt templates that format it.

Supervised fine-tuning (SFT) teaches a pretrained model to answer instructions by training it on
(prompt, response) pairs (Ouyang et al. 2022, InstructGPT, §3.5; Taori et al. 2023, Alpaca). The
pairs here are made from real text, by rule, so every answer is checkable:

| task | instruction | input | response |
|---|---|---|---|
| ``speaker`` | Who speaks this line? Answer X or Y. | two speeches, then the line | a name |
| ``continue`` | Continue the speech. | speaker and first line of a speech | the next line |
| ``play`` | Which play is this from? Answer X or Y. | a line | the play's title |

The ``speaker`` task is answerable from the text: dialogue takes turns, so the name that spoke
two speeches ago, or the one not yet in the excerpt, is usually right. ``play`` is not answerable
for a held-out play the model never read: it measures knowledge, which SFT does not add. Splits
follow ``llmcourse.pretrained.VAL_PLAYS`` (whole plays held out), so no line, speaker or scene
of a validation play appears in training.

``edition_instructions`` makes a fourth task from the two editions of each play
(``llmcourse.data.folio``): "Folio or modern?" about one line, printed either as in 1623
("Ile leaue you") or in modern spelling ("I'll leave you."). The evidence is in the characters
of the line itself (u for v, doubled letters, capitalised nouns, missing end punctuation), so
even a small character-level model can learn it from a few hundred examples and be checked on
plays it never saw; a model that has only read modern spelling starts at chance.

Templates turn an example into text. ``ALPACA`` is the plain "### Instruction / ### Response"
layout of Alpaca (Taori et al. 2023) without its preamble; ``CHATML`` is the chat markup SmolLM2
was instruction-tuned with (``<|im_start|>role\\n…<|im_end|>``), identical to its tokenizer's
``apply_chat_template`` output (tested). ``QA`` is a compact "Q: … A: …" layout for models
whose context or alphabet cannot hold Alpaca's (the course's tiny GPT reads 64 characters and
has no ``#``). The response ends with the template's end marker so a fine-tuned model learns
to stop.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmcourse.pretrained import Split, shakespeare_works

TASKS = ("speaker", "continue", "play")
EDITIONS = ("Folio", "modern")
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@dataclass(frozen=True)
class InstructionExample:
    """One instruction-following example; ``choices`` lists the allowed answers (if any)."""

    instruction: str
    input: str
    output: str
    task: str = ""
    play: str = ""
    choices: tuple[str, ...] = ()

    def fields(self) -> dict[str, str]:
        return {"instruction": self.instruction, "input": self.input, "output": self.output}


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt layout with named fields (``{instruction}``, ``{input}``, ``{system}``).

    ``prompt`` is used when the example has an input, ``prompt_no_input`` when it is empty;
    the response is ``output + response_end``. ``defaults`` fill fields an example may omit.
    """

    name: str
    prompt: str
    prompt_no_input: str
    response_end: str
    defaults: Mapping[str, str] = field(default_factory=dict)

    def format_prompt(self, example: InstructionExample | Mapping[str, str]) -> str:
        """The prompt text for ``example`` (an ``InstructionExample`` or a dict of fields)."""
        values = {**self.defaults, **_as_fields(example)}
        layout = self.prompt if values.get("input") else self.prompt_no_input
        needed = [name for _, name, _, _ in string.Formatter().parse(layout) if name]
        missing = [name for name in needed if not isinstance(values.get(name), str)]
        if missing or not values.get("instruction"):
            missing = missing or ["instruction"]
            raise ValueError(
                f"Template {self.name!r} needs the field(s) {missing}; the example has "
                f"{sorted(k for k, v in values.items() if v)}. Give each a string (an empty "
                "'input' is allowed, an empty 'instruction' is not)."
            )
        return layout.format(**{name: values[name] for name in needed})

    def format_response(self, output: str) -> str:
        """The response text: the answer, then the end marker the model must learn to emit."""
        if not isinstance(output, str) or not output:
            raise ValueError(f"The response must be a non-empty string, got {output!r}.")
        return output + self.response_end


ALPACA = PromptTemplate(
    name="alpaca",
    prompt="### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
    prompt_no_input="### Instruction:\n{instruction}\n\n### Response:\n",
    response_end="\n",
)
CHATML = PromptTemplate(
    name="chatml",
    prompt=(
        "<|im_start|>system\n{system}<|im_end|>\n"
        "<|im_start|>user\n{instruction}\n\n{input}<|im_end|>\n<|im_start|>assistant\n"
    ),
    prompt_no_input=(
        "<|im_start|>system\n{system}<|im_end|>\n"
        "<|im_start|>user\n{instruction}<|im_end|>\n<|im_start|>assistant\n"
    ),
    response_end="<|im_end|>\n",
    defaults={"system": SMOLLM2_SYSTEM},
)
QA = PromptTemplate(
    name="qa",
    prompt="Q: {instruction}\n{input}\nA: ",
    prompt_no_input="Q: {instruction}\nA: ",
    response_end="\n",
)
TEMPLATES = {template.name: template for template in (ALPACA, CHATML, QA)}


def get_template(name: str) -> PromptTemplate:
    """``"alpaca"``, ``"chatml"`` or ``"qa"``."""
    if name not in TEMPLATES:
        raise ValueError(f"Unknown template {name!r}; choose one of {sorted(TEMPLATES)}.")
    return TEMPLATES[name]


def chatml(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False) -> str:
    """A conversation in ChatML, as SmolLM2's chat template renders it.

    ``messages``: ``[{"role": "user", "content": "…"}, …]``; when the first message is not a
    system message, SmolLM2's default system prompt is put in front.
    """
    parts = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not {"role", "content"} <= set(message):
            raise ValueError(
                f"Message {index} must be a dict with 'role' and 'content', got {message!r}."
            )
        if index == 0 and message["role"] != "system":
            parts.append(f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n")
        parts.append(f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>\n")
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _as_fields(example: InstructionExample | Mapping[str, str]) -> dict[str, str]:
    if isinstance(example, InstructionExample):
        return example.fields()
    if isinstance(example, Mapping):
        return dict(example)
    raise TypeError(f"Expected an InstructionExample or a dict, got {type(example).__name__}.")


# --------------------------------------------------------------------------------------------
# Plays → speeches → examples
# --------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^([A-Z][\w']*(?:\s[A-Z][\w']*){0,3})\.$")
_SCENE = re.compile(r"^(ACT|SCENE|Scene)\b")


@dataclass(frozen=True)
class Speech:
    """One speech: who speaks, the spoken lines, and the scene it belongs to (a counter)."""

    speaker: str
    lines: tuple[str, ...]
    scene: int


def speeches(text: str) -> list[Speech]:
    """Split a modern-edition play into speeches (a heading line, then the spoken lines).

    Stage directions in brackets are dropped; a new ``ACT``/``SCENE`` heading starts a new scene.
    """
    result, scene = [], 0
    for block in re.split(r"\n\s*\n", text):
        lines = [re.sub(r"\[[^\]]*\]?", "", line).strip() for line in block.splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            continue
        if _SCENE.match(lines[0]):
            scene += 1
            continue
        heading = _HEADING.match(lines[0])
        if heading and len(lines) > 1 and scene > 0:  # scene 0: the list of persons
            result.append(Speech(heading.group(1).title(), tuple(lines[1:]), scene))
    return result


def play_title(name: str) -> str:
    """``"much_ado_about_nothing"`` → ``"Much Ado About Nothing"``."""
    return name.replace("_", " ").title()


def shakespeare_instructions(
    split: Split = "train",
    tasks: Sequence[str] = TASKS,
    per_play: int = 50,
    seed: int = 0,
    max_line_chars: int = 60,
) -> list[InstructionExample]:
    """Up to ``per_play`` examples of each task from each play of ``split`` (shuffled).

    Lines longer than ``max_line_chars`` are skipped, which keeps prompts short enough for a
    character-level model's context.
    """
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"Unknown task(s) {unknown or tasks!r}; choose from {TASKS}.")
    if per_play <= 0:
        raise ValueError(f"per_play must be positive, got {per_play}.")
    rng = random.Random(seed)
    works = {
        name: speeches(text)
        for name, text in shakespeare_works("modern", split).items()
        if name not in _POEMS
    }
    titles = [play_title(name) for name in works]
    examples: list[InstructionExample] = []
    for name, play in works.items():
        for task in tasks:
            builder = {"speaker": _speaker, "continue": _continue, "play": _play}[task]
            candidates = builder(name, play, titles, max_line_chars, rng)
            rng.shuffle(candidates)
            examples += candidates[:per_play]
    rng.shuffle(examples)
    return examples


_POEMS = {
    "lovers_complaint",
    "passionate_pilgrim",
    "phoenix_and_the_turtle",
    "rape_of_lucrece",
    "sonnets",
    "venus_and_adonis",
}


def _speaker(name, play, titles, max_chars, rng) -> list[InstructionExample]:
    """Who speaks the line after two speeches of the same scene? Choices: the answer and one
    other speaker of the play (in random order)."""
    cast = sorted({s.speaker for s in play})
    out = []
    for before, previous, current in zip(play, play[1:], play[2:], strict=False):
        if not before.scene == previous.scene == current.scene or len(cast) < 2:
            continue
        line = current.lines[0]
        if len(line) > max_chars or len(before.lines[0]) > max_chars:
            continue
        if len(previous.lines[0]) > max_chars:
            continue
        other = rng.choice([c for c in cast if c != current.speaker])
        choices = (current.speaker, other) if rng.random() < 0.5 else (other, current.speaker)
        context = (
            f"{before.speaker}: {before.lines[0]}\n{previous.speaker}: {previous.lines[0]}\n"
            f"?: {line}"
        )
        instruction = f"Who speaks this line? Answer {choices[0]} or {choices[1]}."
        out.append(
            InstructionExample(instruction, context, current.speaker, "speaker", name, choices)
        )
    return out


def _continue(name, play, titles, max_chars, rng) -> list[InstructionExample]:
    out = []
    for speech in play:
        if len(speech.lines) < 2 or max(len(line) for line in speech.lines[:2]) > max_chars:
            continue
        out.append(
            InstructionExample(
                "Continue the speech.",
                f"{speech.speaker}: {speech.lines[0]}",
                speech.lines[1],
                "continue",
                name,
            )
        )
    return out


def _play(name, play, titles, max_chars, rng) -> list[InstructionExample]:
    title = play_title(name)
    others = [t for t in titles if t != title]
    out = []
    if not others:
        return out
    for speech in play:
        line = speech.lines[0]
        if len(line) > max_chars or len(line.split()) < 4:
            continue
        other = rng.choice(others)
        choices = (title, other) if rng.random() < 0.5 else (other, title)
        instruction = f"Which play is this from? Answer {choices[0]} or {choices[1]}."
        out.append(InstructionExample(instruction, line, title, "play", name, choices))
    return out


def edition_instructions(
    split: Split = "train",
    plays: Sequence[str] | None = None,
    per_play: int | None = None,
    max_chars: int = 32,
    alphabet: str | None = None,
    instruction: str = "Folio or modern?",
    seed: int = 0,
) -> list[InstructionExample]:
    """ "Folio or modern?" examples: both spellings of aligned lines of ``split``'s plays.

    Lines come from ``llmcourse.data.folio.folio_modern_pairs``; a pair is kept only when its
    letters differ (a spelling difference, not just punctuation), both lines have at most
    ``max_chars`` characters, and, with ``alphabet``, use only those characters (a character
    model's vocabulary). ``per_play`` caps the pairs drawn from each play. Each kept pair gives
    two examples (the Folio line answered ``"Folio"``, the modern one ``"modern"``), so the
    classes are balanced and the model sees minimal pairs; the result is shuffled.
    """
    from llmcourse.data.folio import folio_modern_pairs

    if per_play is not None and per_play <= 0:
        raise ValueError(f"per_play must be positive (or None for all pairs), got {per_play}.")
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}.")
    allowed = None if alphabet is None else set(alphabet)
    rng = random.Random(seed)
    by_play: dict[str, list] = {}
    chosen_plays = list(plays) if plays else None
    for pair in folio_modern_pairs(split, plays=chosen_plays, max_chars=max_chars):
        if _letters(pair.folio) == _letters(pair.modern):
            continue
        if allowed is not None and not set(pair.folio + pair.modern) <= allowed:
            continue
        by_play.setdefault(pair.play, []).append(pair)
    examples = []
    for play, pairs in by_play.items():
        chosen = rng.sample(pairs, min(per_play, len(pairs))) if per_play else pairs
        for pair in chosen:
            for line, answer in ((pair.folio, EDITIONS[0]), (pair.modern, EDITIONS[1])):
                examples.append(
                    InstructionExample(instruction, line, answer, "edition", play, EDITIONS)
                )
    rng.shuffle(examples)
    return examples


def _letters(line: str) -> str:
    return re.sub(r"[^a-z]", "", line.lower())
