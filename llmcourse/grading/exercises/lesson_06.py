"""Exercise tests of lesson 06 (tokenizers): each compares the learner's function with the
package's own (``llmcourse.tokenizers``)."""

from __future__ import annotations

import random

from llmcourse import pretrained
from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.tokenizers import CharTokenizer, fertility, gpt2_tokenizer, sample_text
from llmcourse.tokenizers.bpe import apply_merges, merge_pair, pair_counts, train_merges_naive
from llmcourse.tokenizers.wordpiece import greedy_longest_match, minilm_wordpiece

ROUND_TRIP_TEXTS = (
    "hello hello hello world",
    "To be, or not to be, that is the question.",
    "naïve café, 日本語 and 🙂",
    "aaaaaaaaaa",
)

# ---- 06.pair_counts -----------------------------------------------------------------------------


@exercise_test(
    "06.pair_counts",
    points=2,
    hint="Walk over neighbours with itertools.pairwise(ids) and count each (left, right) tuple.",
)
def pair_counts_matches_on_random_ids(ns: Namespace) -> None:
    counts = ns.function("pair_counts")
    for length in (2, 10, 200):
        ids = [random.randrange(5) for _ in range(length)]
        expected = dict(pair_counts(ids))
        got = dict(counts(ids))
        assert got == expected, f"pair_counts({ids[:12]}...) should be {expected}, got {got}."


@exercise_test(
    "06.pair_counts", points=1, hint="A list with fewer than two ids has no pairs: return {}."
)
def pair_counts_of_short_lists_is_empty(ns: Namespace) -> None:
    counts = ns.function("pair_counts")
    for ids in ([], [7]):
        got = dict(counts(ids))
        assert got == {}, f"pair_counts({ids}) should be empty, got {got}."


# ---- 06.merge_pair ------------------------------------------------------------------------------


@exercise_test(
    "06.merge_pair",
    points=2,
    hint="Scan left to right; where ids[i], ids[i+1] equals the pair, emit new_id and skip two, "
    "otherwise emit ids[i] and move on by one.",
)
def merge_pair_matches_on_random_ids(ns: Namespace) -> None:
    merge = ns.function("merge_pair")
    for length in (1, 10, 200):
        ids = [random.randrange(4) for _ in range(length)]
        pair = (random.randrange(4), random.randrange(4))
        expected = merge_pair(ids, pair, 99)
        got = list(merge(ids, pair, 99))
        assert got == expected, f"merge_pair({ids[:12]}..., {pair}, 99) gave {got[:12]}..."


@exercise_test(
    "06.merge_pair",
    points=1,
    hint="Occurrences must not overlap: in [5, 5, 5] the pair (5, 5) is merged once, leftmost.",
)
def merge_pair_does_not_overlap(ns: Namespace) -> None:
    merge = ns.function("merge_pair")
    for ids, expected in (([5, 5, 5], [9, 5]), ([5, 5, 5, 5], [9, 9]), ([1, 5, 5], [1, 9])):
        got = list(merge(ids, (5, 5), 9))
        assert got == expected, f"merge_pair({ids}, (5, 5), 9) should be {expected}, got {got}."


# ---- 06.bpe_round_trip --------------------------------------------------------------------------


def _chunks(text: str) -> list[list[int]]:
    return [list(word.encode("utf-8")) for word in text.split(" ")]


@exercise_test(
    "06.bpe_round_trip",
    points=2,
    hint="Each step: count pairs over all chunks, take the most frequent (ties: the smallest "
    "pair, e.g. min(counts, key=lambda p: (-counts[p], p))), record it, merge it in every chunk.",
)
def bpe_train_learns_the_same_merges(ns: Namespace) -> None:
    bpe_train = ns.function("bpe_train")
    for text in (ROUND_TRIP_TEXTS[1], pretrained.shakespeare()[:3000]):
        expected = train_merges_naive(_chunks(text), 40, first_id=256)
        got = dict(bpe_train(_chunks(text), 40, 256))
        assert list(got.items()) == list(expected.items()), (
            f"the first merges should be {list(expected.items())[:5]}, got {list(got.items())[:5]}"
        )


@exercise_test(
    "06.bpe_round_trip",
    points=2,
    hint="While some neighbouring pair is in merges, merge the one with the smallest new id "
    "(the earliest learned); stop when none is.",
)
def bpe_encode_applies_merges_earliest_first(ns: Namespace) -> None:
    bpe_encode = ns.function("bpe_encode")
    merges = train_merges_naive(_chunks(pretrained.shakespeare()[:5000]), 60, first_id=256)
    for text in ROUND_TRIP_TEXTS:
        for chunk in _chunks(text):
            expected = apply_merges(chunk, merges)
            got = list(bpe_encode(chunk, merges))
            assert got == expected, (
                f"bpe_encode of {bytes(chunk)!r} should be {expected}, got {got}."
            )


@exercise_test(
    "06.bpe_round_trip",
    points=1,
    hint="Rebuild each token's bytes: ids below 256 are single bytes, and merge (a, b) -> new is "
    "bytes(a) + bytes(b); join, then .decode('utf-8', errors='replace').",
)
def bpe_decode_inverts_encode(ns: Namespace) -> None:
    bpe_decode = ns.function("bpe_decode")
    merges = train_merges_naive(_chunks(" ".join(ROUND_TRIP_TEXTS)), 50, first_id=256)
    for text in ROUND_TRIP_TEXTS:
        ids = apply_merges(list(text.encode("utf-8")), merges)
        got = bpe_decode(ids, merges)
        assert got == text, f"bpe_decode should give back {text!r}, got {got!r}."


# ---- 06.wordpiece -------------------------------------------------------------------------------


@exercise_test(
    "06.wordpiece",
    points=2,
    hint="From each start, try the longest substring first (end = len(word) down to start + 1); "
    "pieces after the first get the '##' prefix.",
)
def wordpiece_matches_on_minilm_vocabulary(ns: Namespace) -> None:
    wordpiece = ns.function("greedy_longest_match")
    vocab = minilm_wordpiece().vocab
    words = ["unaffable", "tokenization", "shakespeare", "wherefore", "hugging", "café", "x"]
    for word in words:
        expected = greedy_longest_match(word, vocab)
        got = list(wordpiece(word, vocab))
        assert got == expected, f"{word!r} should split into {expected}, got {got}."


@exercise_test(
    "06.wordpiece",
    points=1,
    hint="If no piece matches at some position, the whole word becomes [unk_token]; so does a "
    "word longer than max_chars.",
)
def wordpiece_unknowns(ns: Namespace) -> None:
    wordpiece = ns.function("greedy_longest_match")
    vocab = {"un", "##aff", "##able", "a"}
    for word, kwargs in (("unx", {}), ("a" * 12, {"max_chars": 10}), ("unaffable", {})):
        expected = greedy_longest_match(word, vocab, **kwargs)
        got = list(wordpiece(word, vocab, **kwargs))
        assert got == expected, f"{word!r} with {kwargs} should give {expected}, got {got}."


# ---- 06.fertility -------------------------------------------------------------------------------


@exercise_test(
    "06.fertility",
    points=2,
    hint="len(tokenizer.encode(text)) / len(text.split()).",
)
def fertility_matches(ns: Namespace) -> None:
    learner = ns.function("fertility")
    gpt2 = gpt2_tokenizer()
    for language in ("english", "arabic", "urdu"):
        text = sample_text(language, "test")
        assert_close(
            learner(gpt2, text), fertility(gpt2, text), what=f"GPT-2 fertility, {language}"
        )
    chars = CharTokenizer().train("ab c\n")
    assert_close(learner(chars, "ab  c\n"), fertility(chars, "ab  c\n"), what="fertility of chars")


@exercise_test(
    "06.fertility",
    points=1,
    hint="Text without words has no fertility: raise a ValueError instead of dividing by zero.",
)
def fertility_of_empty_text_is_an_error(ns: Namespace) -> None:
    learner = ns.function("fertility")
    chars = CharTokenizer().train("ab ")
    try:
        learner(chars, "   ")
    except ValueError:
        return
    raise AssertionError("fertility(tokenizer, '   ') should raise ValueError.")
