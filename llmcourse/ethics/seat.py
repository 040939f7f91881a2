"""SEAT: the Sentence Encoder Association Test (May et al. 2019).

WEAT compares word vectors; a sentence encoder embeds sentences. SEAT puts each WEAT word into
"semantically bleached" frames ("This is {}.", "{} is here.") that add no meaning of their own,
embeds the sentences, and runs WEAT's statistic on the sentence vectors: the effect size ``d``
and a permutation p-value (``llmcourse.ethics.weat``). May et al. found weaker and less
consistent effects for sentence encoders than for word vectors, and warned that a
non-significant SEAT does not show the absence of bias.

Here the encoder is all-MiniLM-L6-v2 (``llmcourse.pretrained.minilm()``): any object with
``encode(list_of_sentences) -> (n, dim)`` works.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmcourse.ethics.weat import WEATResult, weat
from llmcourse.ethics.wordlists import BLEACHED_TEMPLATES


def bleach(words: Sequence[str], templates: Sequence[str] = BLEACHED_TEMPLATES) -> list[str]:
    """Every word in every template: ``len(words) * len(templates)`` sentences.

    A word at the start of a sentence is capitalised ("Engineer is here.").
    """
    if isinstance(words, str) or len(words) == 0:
        raise ValueError(f"words must be a non-empty list of words, got {words!r}.")
    if isinstance(templates, str) or len(templates) == 0 or any("{}" not in t for t in templates):
        raise ValueError("templates must be a non-empty list of strings with a {} slot.")
    sentences = []
    for word in words:
        for template in templates:
            filler = word[:1].upper() + word[1:] if template.startswith("{}") else word
            sentences.append(template.format(filler))
    return sentences


def seat(
    X: Sequence[str],
    Y: Sequence[str],
    A: Sequence[str],
    B: Sequence[str],
    encoder,
    templates: Sequence[str] = BLEACHED_TEMPLATES,
    permutations: int = 20_000,
    seed: int = 0,
) -> WEATResult:
    """WEAT on sentence embeddings of the bleached sentences of ``X, Y`` (targets) and
    ``A, B`` (attributes); ``encoder.encode(sentences)`` returns ``(n, dim)`` vectors."""
    sets = [bleach(words, templates) for words in (X, Y, A, B)]
    unique = sorted(set().union(*sets))
    vectors = np.asarray(encoder.encode(unique), dtype=np.float64)
    table = dict(zip(unique, vectors, strict=True))
    return weat(*sets, embed=table, permutations=permutations, seed=seed)
