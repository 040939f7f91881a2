"""Reading the final answer out of generated text: GSM8K numbers and MMLU letters.

A model that "shows its work" writes more than the answer, so a grader must find the answer in
the text. The conventions of the two benchmarks most reasoning evaluations use:

- **GSM8K** (Cobbe et al. 2021): reference solutions end with ``#### 42``; graders read the
  number after ``####`` and, for models that do not keep that format, fall back to the **last
  number** in the response (Wei et al. 2022, chain-of-thought prompting; CS336's and nanochat's
  graders do the same). Thousands separators are dropped (``1,000`` is ``1000``).
- **MMLU** (Hendrycks et al. 2021) with generated answers: "the answer is (B)", "Answer: B".

Lax parsing is a choice with consequences: the laxer the parser, the more ways a policy trained
on its verdicts can be right by accident (lesson 09 trains one to game "the answer appears
anywhere"). ``llmcourse.data.arithmetic.check_answer`` uses these parsers.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_GSM8K = re.compile(r"####\s*(-?\d[\d,]*(?:\.\d+)?)")
_CHOICE_PHRASE = r"answer\s*(?:is|:)?\s*(?:option\s*)?\(?\s*([{letters}])\s*\)?(?![A-Za-z])"


def normalize_number(text: str) -> str:
    """``"1,000"`` → ``"1000"``, ``"42.0"`` → ``"42"``, ``"-3.50"`` → ``"-3.5"``: one spelling per
    number, so that string comparison is number comparison."""
    text = text.replace(",", "")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


def last_number(text: str) -> str | None:
    """The last number in ``text`` (normalised), or None if there is none.

    >>> last_number("3 apples and 4 pears make 7."), last_number("no digits")
    ('7', None)
    """
    numbers = _NUMBER.findall(text)
    return normalize_number(numbers[-1]) if numbers else None


def parse_gsm8k(text: str, fallback: bool = True) -> str | None:
    """The number after the last ``####`` (GSM8K's answer marker), normalised; without a marker
    the last number in ``text`` when ``fallback`` is set, else None.

    >>> parse_gsm8k("6 * 7 = 42\\n#### 42"), parse_gsm8k("so it is 1,200"), parse_gsm8k("x", False)
    ('42', '1200', None)
    """
    marked = _GSM8K.findall(text)
    if marked:
        return normalize_number(marked[-1])
    return last_number(text) if fallback else None


def parse_choice(text: str, letters: str = "ABCD") -> str | None:
    """The letter of an MMLU-style answer: "the answer is (B)", "Answer: C", "answer is d";
    failing that, the last letter written alone in parentheses, "(B)". None if neither.

    >>> parse_choice("I think the answer is (B)."), parse_choice("Answer: c"), parse_choice("hmm")
    ('B', 'C', None)
    """
    if not letters or not letters.isalpha():
        raise ValueError(
            f"letters must be a string of choice letters such as 'ABCD', got {letters!r}."
        )
    options = re.escape(letters.upper() + letters.lower())
    phrases = re.findall(_CHOICE_PHRASE.format(letters=options), text, flags=re.IGNORECASE)
    if phrases:
        return phrases[-1].upper()
    alone = re.findall(rf"\(([{options}])\)", text)
    return alone[-1].upper() if alone else None
