"""Prompt lookup: draft tokens for speculative decoding copied from the text so far, for free.

Much of what a model writes repeats its context: a summary quotes the document, an edit copies
the code around the change, a chat answer reuses the question's names. Prompt lookup decoding
(Saxena 2023; the same idea as Yang et al. 2023, "Inference with Reference") drafts by search
instead of by a model: take the last ``n`` tokens of the sequence, find their most recent
earlier occurrence, and propose the ``γ`` tokens that followed it. Longer n-grams are tried
first (``max_ngram`` down to ``min_ngram``) because a longer match predicts better.

The draft costs no forward pass at all, so every accepted token is pure gain; when nothing
matches, the round proposes nothing and the target decodes one token as usual. The target
checks the draft exactly as it checks a draft model's (``llmcourse.infer.speculative``), so the
output is unchanged: identical to greedy decoding at temperature 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def lookup_continuation(
    tokens: Sequence[int], num_tokens: int, max_ngram: int = 3, min_ngram: int = 2
) -> list[int]:
    """Up to ``num_tokens`` tokens that followed the latest earlier occurrence of the longest
    suffix n-gram of ``tokens`` (``max_ngram >= n >= min_ngram``); ``[]`` when none recurs.

    >>> lookup_continuation([5, 6, 7, 8, 5, 6], 3)
    [7, 8, 5]
    """
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 0:
        raise ValueError(f"num_tokens must be a non-negative int, got {num_tokens!r}.")
    n_tokens = len(tokens)
    for n in range(min(max_ngram, n_tokens - 1), min_ngram - 1, -1):
        suffix = list(tokens[n_tokens - n :])
        # Latest match first: recent context predicts the continuation best. A match may
        # overlap the suffix itself, as in a run "a a a a".
        for start in range(n_tokens - n - 1, -1, -1):
            if list(tokens[start : start + n]) == suffix:
                follow = list(tokens[start + n : start + n + num_tokens])
                if follow:
                    return follow
    return []


@dataclass(frozen=True)
class PromptLookup:
    """A draft for ``speculative_generate`` that copies from the prompt and output so far.

    ``max_ngram``/``min_ngram``: the suffix lengths searched, longest first. ``min_ngram=1``
    drafts after a single repeated token: more proposals, more of them wrong, and a wrong
    proposal is not free: the target checks γ + 1 positions instead of one (measured on
    SmolLM2 with 2 CPU threads, checking 5 positions costs ~1.5 single steps), so on open-ended
    text, where single tokens (",", "the") recur but their continuations do not, it loses.
    """

    max_ngram: int = 3
    min_ngram: int = 2

    def __post_init__(self) -> None:
        for name in ("max_ngram", "min_ngram"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if self.min_ngram > self.max_ngram:
            raise ValueError(
                f"min_ngram ({self.min_ngram}) must not exceed max_ngram ({self.max_ngram})."
            )

    def propose(self, tokens: Sequence[int], num_tokens: int) -> list[int]:
        """The draft for the next round: up to ``num_tokens`` tokens (maybe none)."""
        return lookup_continuation(tokens, num_tokens, self.max_ngram, self.min_ngram)
