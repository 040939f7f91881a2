"""Exercise tests of lesson 10b (evaluation, serving, RAG): each compares the learner's function
with the package's own (``llmcourse.eval``, ``llmcourse.rag``) on random and edge-case inputs."""

from __future__ import annotations

import random

import numpy as np

from llmcourse.eval import expected_calibration_error, lcs_length
from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.rag import recall_at_k

# ---- 10b.ece -----------------------------------------------------------------------------------


@exercise_test(
    "10b.ece",
    points=2,
    hint="Bin m holds the confidences in (m/M, (m+1)/M] (0 goes to the first bin). For each "
    "non-empty bin add (count / n) * |mean(correct) - mean(confidence)|.",
)
def ece_matches_the_package(ns: Namespace) -> None:
    ece = ns.function("expected_calibration_error")
    rng = np.random.default_rng(10)
    for n, bins in [(50, 10), (400, 15), (7, 3), (200, 1)]:
        conf = rng.uniform(0, 1, n)
        correct = rng.uniform(0, 1, n) < conf**2
        assert_close(
            ece(conf, correct, bins),
            expected_calibration_error(conf, correct, bins),
            what=f"ECE of {n} predictions in {bins} bins",
        )


@exercise_test(
    "10b.ece",
    points=1,
    hint="Edge cases: a confidence of exactly 1.0 belongs to the last bin, 0.0 to the first, and "
    "empty bins add nothing, and each bin counts in proportion to its size. 90% confident and "
    "60% right is an ECE of 0.3.",
)
def ece_edge_cases(ns: Namespace) -> None:
    ece = ns.function("expected_calibration_error")
    cases = [
        ([0.9] * 10, [True] * 6 + [False] * 4, 10),
        ([1.0, 1.0, 0.0, 0.0], [True, False, False, False], 5),
        ([0.2, 0.4, 0.6, 0.8], [False, True, True, True], 10),
        ([0.9, 0.9, 0.9, 0.3], [True, True, False, False], 10),  # bins weigh by size
    ]
    for conf, correct, bins in cases:
        assert_close(
            ece(np.array(conf), np.array(correct), bins),
            expected_calibration_error(conf, correct, bins),
            what=f"ECE of confidences {conf} with correct={correct}",
        )


# ---- 10b.lcs_length ----------------------------------------------------------------------------


@exercise_test(
    "10b.lcs_length",
    points=2,
    hint="table[i][j] = table[i-1][j-1] + 1 when a[i-1] == b[j-1], else "
    "max(table[i-1][j], table[i][j-1]); the answer is table[len(a)][len(b)].",
)
def lcs_length_matches_the_package(ns: Namespace) -> None:
    lcs = ns.function("lcs_length")
    rng = random.Random(10)
    cases = [
        ([], []),
        (["a"], []),
        (["police", "killed", "the", "gunman"], ["the", "gunman", "killed", "police"]),
    ]
    for _ in range(20):
        cases.append(
            (
                [rng.choice("abcd") for _ in range(rng.randint(0, 12))],
                [rng.choice("abcd") for _ in range(rng.randint(0, 12))],
            )
        )
    for a, b in cases:
        got = lcs(a, b)
        assert got == lcs_length(a, b), (
            f"lcs_length({a}, {b}) should be {lcs_length(a, b)}, got {got}."
        )


# ---- 10b.recall_at_k ---------------------------------------------------------------------------


@exercise_test(
    "10b.recall_at_k",
    points=2,
    hint="Take the first k retrieved ids, count how many are in the relevant set, divide by the "
    "size of the relevant set (not by k).",
)
def recall_at_k_matches_the_package(ns: Namespace) -> None:
    recall = ns.function("recall_at_k")
    rng = random.Random(10)
    for _ in range(30):
        retrieved = rng.sample(range(20), 10)
        relevant = set(rng.sample(range(20), rng.randint(1, 4)))
        k = rng.randint(1, 12)
        assert_close(
            recall(retrieved, relevant, k),
            recall_at_k(retrieved, relevant, k),
            what=f"recall_at_k({retrieved}, {relevant}, k={k})",
        )
