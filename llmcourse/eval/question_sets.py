"""A multiple-choice benchmark built from data every course install has, answer keys included.

MMLU itself cannot be downloaded here, and a dozen questions cannot carry a conclusion: at
n = 12 a 95% interval on accuracy is about ±0.25 wide. ``course_benchmark`` writes a few hundred
four-way questions whose right answers come *from the data itself*, so no key is typed by hand:

- ``python_exceptions``: CPython's docstring of each built-in exception (its first sentence, the
  line ``help()`` shows, read with ``inspect.getdoc``) → the exception's name.
  *"Which built-in exception is documented as: "Sequence index out of range."?"* → ``IndexError``;
- ``python_builtins``: the same for built-in functions and types (``abs``, ``zip``, ``float``);
- ``python_methods``: the same for the methods of ``str``, ``list``, ``dict`` and ``set``;
- ``shakespeare_next_line``: a line of verse from one of the plays in ``PLAY_TITLES`` → the line
  that follows it in the text, against three other lines of the same play (the ``shakespeare``
  package's Project Gutenberg texts);
- ``shakespeare_play``: ``play_questions``, "which play is this passage from?".

Construction, so that every key is unambiguous and the set is the same on every run:

1. Only objects of the ``builtins`` module itself count (not what IPython or ``site`` add
   there). A description is its docstring's first sentence with signature lines (``abs(x) -> y``)
   removed. Descriptions that are empty, shorter than three words, or that contain the answer's
   own name as a word are left out (the question would answer itself). Names that share a
   description (``OSError``, ``IOError``, ``EnvironmentError``; ``str.find``, ``str.index``) are
   left out altogether, since a distractor could then be as right as the key.
2. Distractors are three other names of the same kind (exceptions with exceptions, ``str``
   methods with ``str`` methods), drawn with ``random.Random(seed)``.
3. The right answer's position rotates A, B, C, D through each source, so a model that always
   answers one letter scores exactly chance.
4. A question goes to the ``"dev"`` split (few-shot examples) when ``crc32(question) % 10 == 0``,
   otherwise to ``"test"``: the split never depends on how many questions are asked for.

The Python questions follow the installed Python's docstrings (the set is fixed for one Python
version; 3.11 gives the sizes the tests check). ``to_records`` exports a set as plain records
(question, choices, answer index, source), ready for other evaluation tools.
"""

from __future__ import annotations

import builtins
import inspect
import itertools
import random
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, Literal

from llmcourse.eval.multiple_choice import LETTERS, PLAY_TITLES, MCQuestion, play_questions

Split = Literal["dev", "test"]

#: The sources of ``course_benchmark``, in the order its questions come.
SOURCES: tuple[str, ...] = (
    "python_exceptions",
    "python_builtins",
    "python_methods",
    "shakespeare_next_line",
    "shakespeare_play",
)
_SUBJECTS = {
    "python_exceptions": "Python's built-in exceptions",
    "python_builtins": "Python's built-in functions and types",
    "python_methods": "methods of Python's built-in types",
    "shakespeare_next_line": "Shakespeare's plays",
    "shakespeare_play": "Shakespeare's plays",
}
_REPLACED_IN_KERNELS = frozenset({"input"})  # see _python_entries
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)\s*(-+>.*)?$")
_SENTENCE = re.compile(r"(.+?[.!?])(\s|$)")


def description(obj: Any) -> str:
    """The first sentence of ``obj``'s docstring, without signature lines ("" if none)."""
    lines = [line.strip() for line in (inspect.getdoc(obj) or "").splitlines()]
    paragraph: list[str] = []
    for line in lines:
        if not line:
            if paragraph:
                break
            continue
        if not paragraph and _SIGNATURE.match(line):
            continue
        paragraph.append(line)
    text = " ".join(paragraph)
    match = _SENTENCE.match(text)
    return (match.group(1) if match else text).strip()


def _python_entries() -> dict[str, dict[str, str]]:
    """``{source: {name: description}}`` for the three Python sources, keys still unfiltered.

    Inside ``python_methods`` each type is its own group of names (``"str"``, ``"list"``, ...):
    distractors come from the same group.
    """
    groups: dict[str, dict[str, str]] = defaultdict(dict)
    for name in dir(builtins):
        obj = getattr(builtins, name)
        # Only Python's own: IPython adds display() and get_ipython() to builtins in a notebook,
        # and site adds help(), exit() and friends; the set must not depend on where it runs.
        # A Jupyter kernel also *replaces* input() (to forward it to the browser), so input is
        # left out everywhere: kept in a script and dropped in a notebook, it would change the
        # distractors drawn for every built-in question.
        if name.startswith("_") or name in _REPLACED_IN_KERNELS or not callable(obj):
            continue
        if obj.__module__ != "builtins":
            continue
        is_exception = isinstance(obj, type) and issubclass(obj, BaseException)
        groups["python_exceptions" if is_exception else "python_builtins"][name] = description(obj)
    for kind in (str, list, dict, set):
        for name in dir(kind):
            if not name.startswith("_"):
                groups[kind.__name__][f"{kind.__name__}.{name}"] = description(getattr(kind, name))
    return groups


def _usable(entries: dict[str, str]) -> dict[str, str]:
    """Step 1 of the module docstring: drop empty, short, self-answering or shared descriptions."""
    owners: dict[str, list[str]] = defaultdict(list)
    for name, text in entries.items():
        owners[text.casefold()].append(name)
    kept = {}
    for name, text in entries.items():
        short_name = name.rsplit(".", 1)[-1]
        if len(text.split()) < 3 or len(owners[text.casefold()]) > 1:
            continue
        if re.search(rf"\b{re.escape(short_name)}\b", text, flags=re.IGNORECASE):
            continue
        kept[name] = text
    return kept


def _in_split(question: str, split: Split) -> bool:
    return (zlib.crc32(question.encode()) % 10 == 0) == (split == "dev")


def _questions(
    items: Sequence[tuple[str, str, Sequence[str]]], source: str, seed: int
) -> list[MCQuestion]:
    """``(question, answer, pool)`` triples → questions with three distractors from ``pool``
    and the answer's position rotating through the letters (steps 2 and 3)."""
    rng = random.Random(f"{seed}-{source}")
    questions = []
    for index, (question, answer, pool) in enumerate(items):
        distractors = rng.sample([p for p in pool if p != answer], len(LETTERS) - 1)
        rng.shuffle(distractors)
        position = index % len(LETTERS)
        choices = (*distractors[:position], answer, *distractors[position:])
        questions.append(
            MCQuestion(question, tuple(choices), position, _SUBJECTS[source], source=source)
        )
    return questions


def python_doc_questions(source: str, seed: int = 0) -> list[MCQuestion]:
    """Every usable question of one Python source (both splits), in a fixed order."""
    groups = _python_entries()
    if source == "python_methods":
        kinds = {f"{kind} method": kind for kind in ("str", "list", "dict", "set")}
    elif source in ("python_exceptions", "python_builtins"):
        kinds = {"built-in exception" if source == "python_exceptions" else "built-in": source}
    else:
        raise ValueError(
            f"source must be python_exceptions, python_builtins or python_methods, got {source!r}."
        )
    items = []
    for what, group in kinds.items():
        entries = groups[group]
        for name, text in sorted(_usable(entries).items()):
            # Distractors: any other name of the group (documented or not) whose description
            # differs from the answer's, so none of them fits the question as well.
            pool = sorted(n for n, t in entries.items() if t.casefold() != text.casefold())
            items.append((f'Which {what} is documented as: "{text}"?', name, pool))
    return _questions(items, source, seed)


def _verse_lines(text: str) -> list[str]:
    """The play's lines as printed, with speaker names, stage directions and headings blanked
    (``""``) so that a cue and its next line are always two lines of one speech."""

    def is_verse(line: str) -> bool:
        return (
            30 <= len(line) <= 70
            and line[0].isupper()  # verse lines start with a capital; wrapped prose does not
            and not line.startswith(("Scene", "SCENE", "ACT", "Act "))
            and not line.endswith("]")
            and not line.isupper()
        )

    return [line.strip() if is_verse(line.strip()) else "" for line in text.splitlines()]


def next_line_questions(
    n: int, seed: int = 0, works: dict[str, str] | None = None
) -> list[MCQuestion]:
    """``n`` "which line follows?" questions (both splits), seeded; see the module docstring.

    The cue and its answer are consecutive verse lines of one speech; the three distractors are
    other verse lines of the same play, never the cue or a line equal to the answer.
    """
    if works is None:
        from llmcourse.pretrained import shakespeare_works

        works = shakespeare_works()
    plays = sorted(name for name in PLAY_TITLES if name in works)
    if not plays:
        raise ValueError("works holds none of the plays in PLAY_TITLES.")
    rng = random.Random(f"{seed}-shakespeare_next_line")
    verse = {play: _verse_lines(works[play]) for play in plays}
    items = []
    for index in range(n):
        play = plays[index % len(plays)]
        lines = verse[play]
        pairs = [(a, b) for a, b in itertools.pairwise(lines) if a and b and a != b]
        cue, answer = rng.choice(pairs)
        pool = sorted({line for line in lines if line and line not in (cue, answer)})
        items.append((f'In {PLAY_TITLES[play]}, which line follows: "{cue}"?', answer, pool))
    return _questions(items, "shakespeare_next_line", seed)


@cache
def _benchmark(split: Split, seed: int, per_shakespeare_source: int) -> tuple[MCQuestion, ...]:
    questions: list[MCQuestion] = []
    for source in ("python_exceptions", "python_builtins", "python_methods"):
        questions += python_doc_questions(source, seed)
    questions += next_line_questions(per_shakespeare_source, seed)
    # play_questions writes ``n`` questions inside the split; the dev split only needs a few.
    n_plays = per_shakespeare_source if split == "test" else max(1, per_shakespeare_source // 10)
    plays = play_questions(n_plays, split, seed)
    chosen = [q for q in questions if _in_split(q.question, split)]
    # play_questions splits by passage already; rotate its keys like the others (step 3).
    for index, q in enumerate(plays):
        position = index % len(LETTERS)
        others = [c for i, c in enumerate(q.choices) if i != q.answer]
        choices = (*others[:position], q.choices[q.answer], *others[position:])
        chosen.append(MCQuestion(q.question, choices, position, q.subject, "shakespeare_play"))
    return tuple(chosen)


def course_benchmark(
    split: Split = "test", seed: int = 0, per_shakespeare_source: int = 36
) -> list[MCQuestion]:
    """The course's multiple-choice benchmark: every source of ``SOURCES``, one split.

    Deterministic for a given ``seed`` (and Python version, for the docstring sources), and
    cached, so calling it twice costs nothing. ``per_shakespeare_source`` questions are written
    for each Shakespeare source before the split (``shakespeare_play`` writes them inside it).
    """
    if split not in ("dev", "test"):
        raise ValueError(f"split must be 'dev' or 'test', got {split!r}.")
    if per_shakespeare_source < 1:
        raise ValueError(f"per_shakespeare_source must be positive, got {per_shakespeare_source}.")
    return list(_benchmark(split, seed, per_shakespeare_source))


def robustness_set(
    n: int = 100, seed: int = 0, sources: Sequence[str] = SOURCES
) -> list[MCQuestion]:
    """``n`` test questions of ``course_benchmark`` from ``sources``, the same share from each
    (seeded), in benchmark order: the questions ``robustness_report`` perturbs.

    Robustness is only measurable where there is accuracy to lose: pass the sources a model
    answers above chance.
    """
    unknown = set(sources) - set(SOURCES)
    if unknown or not sources:
        raise ValueError(f"sources must be a non-empty subset of {SOURCES}, got {sources!r}.")
    test = course_benchmark("test", seed)
    by_source: dict[str, list[int]] = defaultdict(list)
    for index, q in enumerate(test):
        if q.source in sources:
            by_source[q.source].append(index)
    available = sum(len(v) for v in by_source.values())
    if not 1 <= n <= available:
        raise ValueError(f"n must be between 1 and {available} for these sources, got {n}.")
    rng = random.Random(f"{seed}-robustness")
    chosen: list[int] = []
    for rank, source in enumerate(sources):
        share = n // len(sources) + (rank < n % len(sources))
        chosen += rng.sample(by_source[source], min(share, len(by_source[source])))
    return [test[i] for i in sorted(chosen)]


def to_records(questions: Iterable[MCQuestion]) -> list[dict[str, Any]]:
    """Plain records (``question``, ``choices``, ``answer`` index, ``source``, ``subject``), for
    JSON lines or another evaluation harness."""
    return [
        {
            "question": q.question,
            "choices": list(q.choices),
            "answer": q.answer,
            "source": q.source,
            "subject": q.subject,
        }
        for q in questions
    ]


def from_records(records: Iterable[dict[str, Any]]) -> list[MCQuestion]:
    """The inverse of ``to_records``."""
    return [
        MCQuestion(
            r["question"], tuple(r["choices"]), int(r["answer"]), r["subject"], r.get("source", "")
        )
        for r in records
    ]
