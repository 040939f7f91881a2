"""Exercises of lesson 10b (evaluation, serving, RAG): each compares the learner's function
with the package's own (``llmcourse.eval``, ``llmcourse.rag``) on random and edge-case inputs."""

from __future__ import annotations

import numpy as np

from llmcourse.eval import expected_calibration_error, lcs_length
from llmcourse.grading.compare import exact
from llmcourse.grading.spec import Case, Draw, Exercise
from llmcourse.rag import recall_at_k

# ---- 10b.ece -----------------------------------------------------------------------------------

ece = Exercise(
    "10b.ece",
    answer="expected_calibration_error",
    reference=expected_calibration_error,
    forbid=["llmcourse.eval.calibration"],
    section="Calibration",
)


@ece.variant("the bins' gaps are averaged without weighting them by the bins' sizes")
def _unweighted(confidences, correct, n_bins=15):
    conf, hits = np.asarray(confidences, float), np.asarray(correct, float)
    index = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    gaps = [abs(hits[index == m].mean() - conf[index == m].mean()) for m in set(index.tolist())]
    return float(np.mean(gaps))


@ece.test(
    points=2,
    hint="Bin m holds the confidences in (m/M, (m+1)/M] (0 goes to the first bin). For each "
    "non-empty bin add (its count / n) × |its accuracy − its mean confidence|.",
)
def ece_matches_the_package(draw: Draw) -> list[Case]:
    cases = []
    for n, bins in [
        (50, 10),
        (400, 15),
        (7, 3),
        (200, 1),
        (draw.integer(5, 300), draw.integer(2, 20)),
    ]:
        conf = draw.numpy.uniform(0, 1, n)
        correct = draw.numpy.uniform(0, 1, n) < conf**2
        cases.append(Case((conf, correct, bins), label=f"{n} predictions in {bins} bins"))
    return cases


@ece.test(
    points=1,
    hint="Edge cases: a confidence of exactly 1.0 belongs to the last bin, 0.0 to the first, "
    "empty bins add nothing, and each bin counts in proportion to its size. 90% confident and "
    "60% right is an ECE of 0.3.",
)
def ece_edge_cases(draw: Draw) -> list[Case]:
    right = draw.integer(0, 10)
    cases = [
        ([0.9] * 10, [True] * right + [False] * (10 - right), 10),
        ([1.0, 1.0, 0.0, 0.0], [True, False, False, False], 5),
        ([0.2, 0.4, 0.6, 0.8], [False, True, True, True], 10),
        ([0.9, 0.9, 0.9, 0.3], [True, True, False, False], 10),  # bins weigh by size
    ]
    return [
        Case(
            (np.array(conf), np.array(correct), bins),
            label=f"confidences {conf} with correct={correct}",
        )
        for conf, correct, bins in cases
    ]


# ---- 10b.lcs_length ----------------------------------------------------------------------------

lcs = Exercise(
    "10b.lcs_length",
    answer="lcs_length",
    reference=lcs_length,
    forbid=["llmcourse.eval.rouge"],
    compare=exact(),
    section="Scoring generated text: BLEU, ROUGE-L, accuracy and F1",
)


@lcs.variant("shared items are counted whatever their order")
def _shared_items(a, b):
    return len(set(a) & set(b))


@lcs.test(
    points=2,
    hint="Fill a (len(a) + 1) × (len(b) + 1) table: one more than the diagonal neighbour where "
    "the items match, else the larger of the left and upper neighbours; the answer is in the "
    "last cell.",
)
def lcs_length_matches_the_package(draw: Draw) -> list[Case]:
    cases = [
        ([], []),
        (["a"], []),
        (["police", "killed", "the", "gunman"], ["the", "gunman", "killed", "police"]),
    ]
    for _ in range(20):
        cases.append(
            (
                [draw.choice("abcd") for _ in range(draw.integer(0, 12))],
                [draw.choice("abcd") for _ in range(draw.integer(0, 12))],
            )
        )
    return [Case(pair, label=f"lcs_length({pair[0]}, {pair[1]})") for pair in cases]


# ---- 10b.recall_at_k ---------------------------------------------------------------------------

recall = Exercise(
    "10b.recall_at_k",
    answer="recall_at_k",
    reference=recall_at_k,
    forbid=["llmcourse.rag.evaluate"],
    section="Retrieval-augmented generation",
)


@recall.variant("divided by k instead of the number of relevant ids")
def _over_k(retrieved, relevant, k):
    return len(set(retrieved[:k]) & set(relevant)) / k


@recall.test(
    points=2,
    hint="Take the first k retrieved ids, count how many are relevant, and divide by the number "
    "of relevant ids (not by k).",
)
def recall_at_k_matches_the_package(draw: Draw) -> list[Case]:
    cases = []
    for _ in range(30):
        retrieved = draw.sample(range(20), 10)
        relevant = set(draw.sample(range(20), draw.integer(1, 4)))
        k = draw.integer(1, 12)
        cases.append(
            Case((retrieved, relevant, k), label=f"recall_at_k({retrieved}, {relevant}, k={k})")
        )
    return cases
