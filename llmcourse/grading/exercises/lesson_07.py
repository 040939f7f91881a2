"""Exercise tests of lesson 07 (data preparation): each compares the learner's function with the
package's own in ``llmcourse.data`` on hand-picked and random inputs."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from llmcourse.data import dedup, packing, quality
from llmcourse.data.normalize import normalize_text as reference_normalize
from llmcourse.grading.api import Namespace, assert_close, exercise_test

# Characters that exercise every step of the normaliser, mixed into random strings.
_TRICKY = [
    "a", "b", "é", "e\u0301", "ﬁ", "Ｈ", "½", " ", "  ", "\t", "\u00a0", "\u3000", "\u2009",
    "\n", "\r\n", "\r", "\u2028", "\x0b", "\x85", "\x00", "\x07", "\u200b", "\ufeff", "\u00ad",
    "\u200c", "\u200d", "\ufffd", "ب", "۔", ".", "x",
]  # fmt: skip


def _random_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(_TRICKY, k=rng.randrange(0, 40))) for _ in range(count)]


def _compare_texts(function: Callable[[str], str], texts: list[str], what: str) -> None:
    for text in texts:
        expected, got = reference_normalize(text), function(text)
        assert got == expected, f"{what}: for {text!r} expected {expected!r}, got {got!r}."


# ---- 07.normalize_text --------------------------------------------------------------------------


@exercise_test(
    "07.normalize_text",
    points=1,
    hint="Map every line break to '\\n' and delete control (Cc) and format (Cf) characters except "
    "'\\n', '\\t', U+200C and U+200D, before unicodedata.normalize('NFKC', text).",
)
def normalize_removes_invisible_characters(ns: Namespace) -> None:
    normalize_text = ns.function("normalize_text")
    cases = ["a\x00b\x07c", "zero\u200bwidth\ufeff", "one\r\ntwo\rthree\u2028four", "bad\ufffd"]
    _compare_texts(normalize_text, cases, "invisible characters and line breaks")


@exercise_test(
    "07.normalize_text",
    points=1,
    hint="NFKC turns ligatures, full-width letters and no-break spaces into plain ones; run it "
    "after removing invisible characters so that 'e', a removed character and a combining "
    "accent still compose into 'é'.",
)
def normalize_applies_nfkc(ns: Namespace) -> None:
    normalize_text = ns.function("normalize_text")
    _compare_texts(normalize_text, ["ﬁne", "Ｈｅｌｌｏ", "cafe\u0301", "cafe\u200b\u0301"], "NFKC")


@exercise_test(
    "07.normalize_text",
    points=1,
    hint="Inside a line, collapse runs of spaces/tabs between non-space characters to one space; "
    "strip trailing whitespace of each line; keep indentation; replace 3+ newlines by 2; strip.",
)
def normalize_tidies_whitespace(ns: Namespace) -> None:
    normalize_text = ns.function("normalize_text")
    cases = ["x  \t y   \nz\t\n", "def f():\n    return 1", "a\n\n\n\n\nb", "  \n\t ", " lead"]
    _compare_texts(normalize_text, cases, "whitespace")


@exercise_test(
    "07.normalize_text",
    points=2,
    hint="Compare with llmcourse.data.normalize_text on strings mixing all of the above; order "
    "matters: line breaks and invisible characters, then NFKC, then whitespace.",
)
def normalize_matches_on_random_strings(ns: Namespace) -> None:
    _compare_texts(ns.function("normalize_text"), _random_texts(300, seed=7), "random string")


# ---- 07.top_ngram_fraction ----------------------------------------------------------------------


def _random_words(seed: int, count: int = 60) -> list[list[str]]:
    rng = random.Random(seed)
    vocabulary = ["the", "cat", "sat", "on", "a", "mat", "and", "slept", "xylophone"]
    return [rng.choices(vocabulary, k=rng.randrange(0, 50)) for _ in range(count)]


@exercise_test(
    "07.top_ngram_fraction",
    points=1,
    hint="Count every n-gram (tuple of n consecutive words); the top one covers count * (its "
    "characters) of all word characters. Return 0.0 when no n-gram occurs twice.",
)
def top_ngram_fraction_by_hand(ns: Namespace) -> None:
    top_ngram_char_fraction = ns.function("top_ngram_char_fraction")
    words = ["the", "cat", "sat", "on", "the", "cat", "mat"]
    assert_close(top_ngram_char_fraction(words, 2), 12 / 20, what="'the cat' twice in 20 chars")
    assert_close(top_ngram_char_fraction(["a", "b", "c"], 2), 0.0, what="no repeated 2-gram")
    assert_close(top_ngram_char_fraction([], 2), 0.0, what="no words at all")


@exercise_test(
    "07.top_ngram_fraction",
    points=2,
    hint="Compare with llmcourse.data.quality.top_ngram_char_fraction on random word lists "
    "(including lists shorter than n).",
)
def top_ngram_fraction_matches_on_random_words(ns: Namespace) -> None:
    top_ngram_char_fraction = ns.function("top_ngram_char_fraction")
    for words in _random_words(seed=1):
        for n in (2, 3, 4):
            assert_close(
                top_ngram_char_fraction(words, n),
                quality.top_ngram_char_fraction(words, n),
                what=f"top_ngram_char_fraction({words}, {n})",
            )


# ---- 07.repeated_ngrams -------------------------------------------------------------------------


@exercise_test(
    "07.repeated_ngrams",
    points=1,
    hint="Walk the n-grams left to right with a set of those seen; when one was seen before, mark "
    "its n words as covered. A text written twice scores 0.5.",
)
def repeated_ngrams_by_hand(ns: Namespace) -> None:
    duplicate_ngram_char_fraction = ns.function("duplicate_ngram_char_fraction")
    unique = [f"w{i}" for i in range(30)]
    assert_close(duplicate_ngram_char_fraction(unique + unique, 5), 0.5, what="a text twice")
    assert_close(duplicate_ngram_char_fraction(unique, 5), 0.0, what="no repeats")


@exercise_test(
    "07.repeated_ngrams",
    points=2,
    hint="Count each word's characters once even when several repeated n-grams overlap it.",
)
def repeated_ngrams_match_on_random_words(ns: Namespace) -> None:
    duplicate_ngram_char_fraction = ns.function("duplicate_ngram_char_fraction")
    for words in _random_words(seed=2):
        for n in (2, 3, 5):
            assert_close(
                duplicate_ngram_char_fraction(words, n),
                quality.duplicate_ngram_char_fraction(words, n),
                what=f"duplicate_ngram_char_fraction({words}, {n})",
            )


# ---- 07.minhash_signature -----------------------------------------------------------------------


@exercise_test(
    "07.minhash_signature",
    points=2,
    hint="a, b = hash_coefficients(num_perm, seed); values = (a * hashes[None, :] + b) >> 32 in "
    "uint64 (the overflow is the mod 2**64); the signature is the minimum over the hashes.",
)
def signature_matches_the_package(ns: Namespace) -> None:
    signature_of_hashes = ns.function("signature_of_hashes")
    rng = np.random.default_rng(0)
    for size, num_perm, seed in [(1, 8, 0), (50, 128, 0), (300, 64, 5)]:
        hashes = rng.integers(0, 2**32, size=size, dtype=np.uint64)
        expected = dedup.signature_of_hashes(hashes, num_perm, seed)
        got = np.asarray(signature_of_hashes(hashes, num_perm, seed))
        assert got.shape == expected.shape, f"expected shape {expected.shape}, got {got.shape}."
        assert np.array_equal(got.astype(np.uint64), expected), (
            f"signature of {size} hashes (num_perm={num_perm}, seed={seed}) differs from "
            f"the package's at {int(np.sum(got != expected))} positions."
        )


@exercise_test(
    "07.minhash_signature",
    points=1,
    hint="The empty set has no minimum: return EMPTY (2**32) in every position.",
)
def signature_of_the_empty_set(ns: Namespace) -> None:
    signature_of_hashes = ns.function("signature_of_hashes")
    got = np.asarray(signature_of_hashes(np.array([], dtype=np.uint64), 16, 0))
    assert got.shape == (16,) and np.all(got == dedup.EMPTY), f"got {got}"


# ---- 07.jaccard_estimate ------------------------------------------------------------------------


@exercise_test(
    "07.jaccard_estimate",
    points=1,
    hint="The estimate is the share of positions where the two signatures are equal.",
)
def estimate_matches_the_package(ns: Namespace) -> None:
    jaccard_estimate = ns.function("jaccard_estimate")
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = rng.integers(0, 4, size=64, dtype=np.uint64)
        b = rng.integers(0, 4, size=64, dtype=np.uint64)
        assert_close(jaccard_estimate(a, b), dedup.jaccard_estimate(a, b), what="estimate")


@exercise_test(
    "07.jaccard_estimate",
    points=2,
    hint="On real texts the estimate should be within about 0.1 of the exact Jaccard index of "
    "the 5-gram sets (its standard error is sqrt(J(1-J)/128)).",
)
def estimate_is_close_to_exact_jaccard(ns: Namespace) -> None:
    jaccard_estimate = ns.function("jaccard_estimate")
    rng = random.Random(3)
    words = [f"w{rng.randrange(400)}" for _ in range(300)]
    edited = [w if rng.random() > 0.04 else "x" for w in words]
    a, b = " ".join(words), " ".join(edited)
    exact = dedup.jaccard(dedup.shingles(a), dedup.shingles(b))
    estimate = jaccard_estimate(dedup.minhash(a), dedup.minhash(b))
    assert abs(estimate - exact) < 0.15, f"exact Jaccard {exact:.3f}, estimate {estimate:.3f}."


# ---- 07.packing ---------------------------------------------------------------------------------


@exercise_test(
    "07.packing",
    points=1,
    hint="Append eos_id after every document, then cut the stream into block_size pieces; the "
    "last piece may be shorter and is kept.",
)
def packing_small_example(ns: Namespace) -> None:
    pack = ns.function("pack")
    got = [list(block) for block in pack([[1, 2], [3, 4, 5]], 3, 0)]
    assert got == [[1, 2, 0], [3, 4, 5], [0]], f"expected [[1, 2, 0], [3, 4, 5], [0]], got {got}."


@exercise_test(
    "07.packing",
    points=2,
    hint="Compare with llmcourse.data.packing.pack: no token may be lost, every block but the "
    "last has exactly block_size tokens, and empty documents still contribute their EOS.",
)
def packing_matches_on_random_documents(ns: Namespace) -> None:
    pack = ns.function("pack")
    rng = random.Random(4)
    for _ in range(50):
        docs = [[rng.randrange(1, 100) for _ in range(rng.randrange(0, 12))] for _ in range(5)]
        size = rng.randrange(1, 9)
        expected = list(packing.pack(docs, size, 0))
        got = [list(block) for block in pack(docs, size, 0)]
        assert got == expected, f"pack({docs}, {size}, 0): expected {expected}, got {got}."
