"""chrF against sacrebleu, BLEU/chrF from summed sentence statistics, and paired bootstrap
comparisons of systems (Koehn 2004)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.eval import (
    bleu,
    bleu_from_statistics,
    bleu_statistics,
    chrf,
    chrf_from_statistics,
    chrf_statistics,
    compare_systems,
)

FOLIO = [
    "When shall we three meet againe?",
    "Vpon the Heath",
    "As thou didst leaue it",
    "God saue the King",
    "Doubtfull it stood,",
    "Where the place?",
]
MODERN = [
    "When shall we three meet again?",
    "Upon the heath.",
    "As thou didst leave it.",
    "God save the King!",
    "Doubtful it stood;",
    "Where the place?",
]
text = st.text(alphabet="abcdeuvAEIV .,!?'", max_size=30)


def test_chrf_matches_sacrebleu_on_folio_lines():
    sacrebleu = pytest.importorskip("sacrebleu")
    for hyps, refs in [(FOLIO, [MODERN]), (MODERN, [MODERN]), (FOLIO, [MODERN, FOLIO[::-1]])]:
        assert chrf(hyps, refs).score == pytest.approx(
            sacrebleu.corpus_chrf(hyps, refs).score, abs=1e-9
        )
    assert chrf(MODERN, [MODERN]).score == pytest.approx(100.0)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(text, text, text), min_size=1, max_size=5))
def test_chrf_matches_sacrebleu_on_random_text(triples):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = [h for h, _, _ in triples]
    refs = [[r for _, r, _ in triples], [r for _, _, r in triples]]
    assert chrf(hyps, refs).score == pytest.approx(
        sacrebleu.corpus_chrf(hyps, refs).score, abs=1e-9
    )


def test_corpus_scores_are_functions_of_summed_sentence_statistics():
    bleu_rows = [bleu_statistics(h, [r]) for h, r in zip(FOLIO, MODERN, strict=True)]
    chrf_rows = [chrf_statistics(h, [r]) for h, r in zip(FOLIO, MODERN, strict=True)]
    assert bleu_from_statistics([sum(c) for c in zip(*bleu_rows, strict=True)]) == bleu(
        FOLIO, [MODERN]
    )
    summed = [sum(c) for c in zip(*chrf_rows, strict=True)]
    assert chrf_from_statistics(summed).score == chrf(FOLIO, [MODERN]).score
    with pytest.raises(ValueError, match="statistics"):
        bleu_from_statistics([1, 2, 3])
    with pytest.raises(ValueError, match="statistics"):
        chrf_from_statistics([1, 2])
    with pytest.raises(TypeError, match="bare strings"):
        chrf("a cat", [["a cat"]])


def test_compare_systems_pairs_the_resamples():
    refs = [MODERN * 20]
    systems = {"copy": FOLIO * 20, "reference": MODERN * 20, "copy again": FOLIO * 20}
    for metric in ("bleu", "chrf"):
        result = compare_systems(systems, refs, metric, n_resamples=200)
        full = (bleu if metric == "bleu" else chrf)(FOLIO * 20, refs).score
        assert result.scores["copy"].value == pytest.approx(full)
        assert result.scores["copy"].low <= full <= result.scores["copy"].high
        assert result.differences["reference"].low > 0  # the reference beats copying
        # Identical systems on the same resamples differ by exactly zero, every time.
        same = result.differences["copy again"]
        assert same.value == same.low == same.high == 0.0
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        compare_systems({"short": FOLIO[:2]}, [MODERN])
    with pytest.raises(ValueError, match="baseline"):
        compare_systems({"copy": FOLIO}, [MODERN], baseline="nope")
    with pytest.raises(ValueError, match="metric"):
        compare_systems({"copy": FOLIO}, [MODERN], metric="meteor")
