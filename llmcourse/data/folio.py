"""Line pairs from two editions of the same play: 1623 First Folio spelling ↔ modern spelling.

The ``shakespeare`` package ships each play twice (``llmcourse.pretrained.shakespeare_works``):
the First Folio ("Long liue the King") and a modernised text ("Long live the king!"). They are
the same verse, so most lines have a twin, but the editions differ in more than spelling:
speaker headings (``"   Bar. Long liue…"`` on one line vs ``"Ber."`` above the speech), stage
directions (``Enter…`` vs ``[Enter…]``), punctuation, and sometimes where a line breaks.

Alignment, per play:

1. keep only spoken lines: drop headings, stage directions and speaker prefixes;
2. reduce every line to a *spelling skeleton*: lower case, letters only, the Folio's
   interchangeable letters merged (u/v, i/j/y), every ``e`` and every doubled letter dropped,
   so ``"Long liue the King"`` and ``"Long live the king!"`` share the key ``"longliuthking"``;
3. lines with identical skeletons, in order, anchor the alignment (``difflib.SequenceMatcher``);
4. between two anchors, lines pair up in order when their skeletons are similar enough
   (``SequenceMatcher.ratio() ≥ min_similarity``); lines whose breaks moved stay unpaired.

The result is a parallel corpus for a spelling-modernisation task: a sequence-to-sequence model
reads the Folio line and writes the modern one (lesson 08, scored with BLEU).
"""

from __future__ import annotations

import difflib
import functools
import random
import re
from dataclasses import dataclass

from llmcourse.pretrained import Split, shakespeare_works

# "   Bar. Long liue the King", "  1. Where hast thou beene", "   All. The weyward Sisters":
# a speech opens with an indented speaker abbreviation (words or a number) and a full stop.
_FOLIO_SPEAKER = re.compile(r"^\s+(?:[A-Z0-9][\w']*\.?\s){0,3}?[A-Z0-9][\w']*\.\s+")
_FOLIO_DIRECTION = re.compile(
    r"^\s*(Enter|Exit|Exeunt|Exeunt|Manet|Flourish|Alarum|Sound|Actus|Scena|Scoena|Finis)\b"
)
# Modern speaker headings sit alone on a line: "DUNCAN.", "Ber.", "FIRST WITCH.", "LADY MACBETH."
_MODERN_HEADING = re.compile(r"^[A-Z][\w']*(?:\s[A-Z][\w']*){0,3}\.$")
_MODERN_SKIP = re.compile(r"^(ACT|SCENE|Scene)\b")


@dataclass(frozen=True)
class LinePair:
    """One aligned line: ``folio`` spelling, ``modern`` spelling, the ``play`` it came from."""

    folio: str
    modern: str
    play: str
    similarity: float  # of the two spelling skeletons, in [0, 1]


def skeleton(line: str) -> str:
    """The spelling skeleton of step 2 (see the module docstring).

    >>> skeleton("Long liue the King"), skeleton("Long live the king!")
    ('longliuthking', 'longliuthking')
    """
    letters = re.sub(r"[^a-z]", "", line.lower())
    letters = letters.translate(str.maketrans("vjy", "uii")).replace("e", "")
    return re.sub(r"(.)\1+", r"\1", letters)


def folio_lines(text: str) -> list[str]:
    """Spoken lines of a First Folio play: speaker prefixes removed, directions dropped."""
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or _FOLIO_DIRECTION.match(raw):
            continue
        line = _FOLIO_SPEAKER.sub("", raw) if raw.startswith(" ") else raw
        line = line.strip()
        if line:
            lines.append(line)
    return lines


def modern_lines(text: str) -> list[str]:
    """Spoken lines of a modern-spelling play: headings, [directions] and titles dropped."""
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"\[[^\]]*\]?", "", raw).strip()  # inline and one-line directions
        if not line or _MODERN_HEADING.match(line) or _MODERN_SKIP.match(line):
            continue
        if line.isupper():  # titles, "PERSONS REPRESENTED."
            continue
        lines.append(line)
    return lines


def align_lines(
    folio: list[str], modern: list[str], play: str = "", min_similarity: float = 0.8
) -> list[LinePair]:
    """Pair Folio and modern lines in order (steps 3 and 4 of the module docstring)."""
    if not 0.0 < min_similarity <= 1.0:
        raise ValueError(f"min_similarity must be in (0, 1], got {min_similarity}.")
    folio_keys = [skeleton(line) for line in folio]
    modern_keys = [skeleton(line) for line in modern]
    matcher = difflib.SequenceMatcher(None, folio_keys, modern_keys, autojunk=False)
    pairs: list[LinePair] = []
    f_start = m_start = 0
    for f_anchor, m_anchor, size in matcher.get_matching_blocks():
        pairs += _pair_gap(
            folio[f_start:f_anchor],
            modern[m_start:m_anchor],
            folio_keys[f_start:f_anchor],
            modern_keys[m_start:m_anchor],
            play,
            min_similarity,
        )
        for offset in range(size):
            f, m = f_anchor + offset, m_anchor + offset
            if folio_keys[f]:  # empty skeletons ("&c.") are no evidence of a match
                pairs.append(LinePair(folio[f], modern[m], play, 1.0))
        f_start, m_start = f_anchor + size, m_anchor + size
    return pairs


def _pair_gap(folio, modern, folio_keys, modern_keys, play, min_similarity) -> list[LinePair]:
    """Greedy in-order pairing inside a gap between anchors (gaps are short: a few lines)."""
    pairs, next_modern = [], 0
    for f, key in enumerate(folio_keys):
        best, best_score = None, min_similarity
        # Look a few lines ahead only: a longer jump would pair unrelated lines.
        for m in range(next_modern, min(next_modern + 4, len(modern_keys))):
            matcher = difflib.SequenceMatcher(None, key, modern_keys[m], autojunk=False)
            # real_quick_ratio and quick_ratio are cheap upper bounds of ratio: skip the exact
            # (quadratic) ratio when even the bound cannot reach the best score so far.
            if matcher.real_quick_ratio() < best_score or matcher.quick_ratio() < best_score:
                continue
            score = matcher.ratio()
            if score >= best_score:
                best, best_score = m, score
        if best is not None and key:
            pairs.append(LinePair(folio[f], modern[best], play, round(best_score, 4)))
            next_modern = best + 1
    return pairs


def folio_modern_pairs(
    split: Split = "all",
    plays: list[str] | None = None,
    min_similarity: float = 0.8,
    max_chars: int | None = None,
) -> list[LinePair]:
    """Aligned line pairs of every play in both editions (or of ``plays``), in play order.

    ``split`` follows ``llmcourse.pretrained.VAL_PLAYS`` (held-out plays never meet the
    training pairs); ``max_chars`` drops pairs with a line longer than that.
    """
    folio_works = shakespeare_works("folio", split)
    modern_works = shakespeare_works("modern", split)
    names = sorted(set(folio_works) & set(modern_works))
    if plays is not None:
        unknown = sorted(set(plays) - set(names))
        if unknown:
            raise ValueError(
                f"No play {unknown} in both editions of split {split!r}; choose from {names}."
            )
        names = [name for name in names if name in plays]
    pairs: list[LinePair] = []
    for name in names:
        aligned = _aligned_play(name, folio_works[name], modern_works[name], min_similarity)
        if max_chars is not None:
            aligned = [p for p in aligned if max(len(p.folio), len(p.modern)) <= max_chars]
        pairs += aligned
    return pairs


@functools.lru_cache(maxsize=64)
def _aligned_play(name: str, folio: str, modern: str, min_similarity: float) -> tuple[LinePair]:
    # Aligning a play takes a fraction of a second; a lesson asks for the same plays twice.
    return tuple(align_lines(folio_lines(folio), modern_lines(modern), name, min_similarity))


def word_pairs(pairs: list[LinePair], max_chars: int | None = None) -> list[tuple[str, str]]:
    """``(Folio word, modern word)`` pairs from the line pairs whose word counts agree.

    Most spelling changes stay inside a word ("againe" → "again", "Raine" → "rain"), so
    lines of equal length in words pair up word by word; lines where words merged or split
    ("to morrow" → "tomorrow") are left out. Words keep their punctuation. ``max_chars``
    drops pairs with a longer word. A model trained on these pairs modernises a line one word
    at a time (``llmcourse.train.seq2seq.translate_words``): short sequences, so it learns to
    copy in a few hundred steps where whole lines take thousands.
    """
    if max_chars is not None and max_chars <= 0:
        raise ValueError(f"max_chars must be positive (or None), got {max_chars}.")
    out = []
    for pair in pairs:
        folio, modern = pair.folio.split(), pair.modern.split()
        if len(folio) != len(modern):
            continue
        for old, new in zip(folio, modern, strict=True):
            if max_chars is None or max(len(old), len(new)) <= max_chars:
                out.append((old, new))
    return out


# --------------------------------------------------------------------------------------------
# The Folio's own catalogue: a label for a classification task
# --------------------------------------------------------------------------------------------

#: How the 1623 First Folio's catalogue groups the plays ("Comedies", "Histories", "Tragedies").
#: Troilus and Cressida, printed between the histories and the tragedies without a catalogue
#: entry, is counted with the tragedies its running title names; Pericles is not in the Folio.
FOLIO_CATALOGUE: dict[str, str] = {
    **dict.fromkeys(
        [
            "tempest", "two_gentlemen_of_verona", "merry_wives_of_windsor", "measure_for_measure",
            "comedy_of_errors", "much_ado_about_nothing", "loves_labours_lost",
            "midsummer_nights_dream", "merchant_of_venice", "as_you_like_it",
            "taming_of_the_shrew", "alls_well_that_ends_well", "twelfth_night", "winters_tale",
        ],
        "comedy",
    ),
    **dict.fromkeys(
        [
            "john", "richard_ii", "henry_iv_part_1", "henry_iv_part_2", "henry_v",
            "henry_vi_part_1", "henry_vi_part_2", "henry_vi_part_3", "richard_iii", "henry_viii",
        ],
        "history",
    ),
    **dict.fromkeys(
        [
            "troilus_and_cressida", "coriolanus", "tragedy_of_titus_andronicus",
            "romeo_and_juliet", "timon_of_athens", "julius_caesar", "macbeth", "hamlet", "lear",
            "othello", "antony_and_cleopatra", "cymbeline",
        ],
        "tragedy",
    ),
}  # fmt: skip


def genre_lines(
    split: Split = "train",
    genres: tuple[str, ...] = ("comedy", "tragedy"),
    per_play: int = 100,
    min_words: int = 6,
    seed: int = 0,
) -> list[tuple[str, str, str]]:
    """``(line, genre, play)`` samples: up to ``per_play`` spoken lines of at least ``min_words``
    words from each play of ``split`` whose ``FOLIO_CATALOGUE`` genre is in ``genres``."""
    unknown = sorted(set(genres) - set(FOLIO_CATALOGUE.values()))
    if unknown:
        raise ValueError(f"Unknown genre(s) {unknown}; the Folio has comedy, history, tragedy.")
    rng = random.Random(seed)
    samples = []
    for name, text in shakespeare_works("modern", split).items():
        genre = FOLIO_CATALOGUE.get(name)
        if genre not in genres:
            continue
        lines = [line for line in modern_lines(text) if len(line.split()) >= min_words]
        samples += [(line, genre, name) for line in rng.sample(lines, min(per_play, len(lines)))]
    rng.shuffle(samples)
    return samples
