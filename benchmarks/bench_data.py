"""Data-preparation benchmarks: MinHash near-dedup quality and speed against datasketch, and
the cleaning pipeline's throughput on the Shakespeare corpus.

    .venv/bin/python benchmarks/bench_data.py

1. Near-duplicate detection on Python-manual pages with planted edited copies: precision and
   recall of the pairs found (ground truth: exact Jaccard of word 5-grams ≥ 0.8), for
   llmcourse (MinHash + LSH + verification) and datasketch (MinHash + MinHashLSH), same k = 128.
2. MinHash signatures per second from the same shingle sets (ours hashes with BLAKE2b and a
   multiply-shift family; datasketch with SHA-1 and a Mersenne-prime family).
3. The full cleaning pipeline on Shakespeare split into scenes (plus planted dirty documents):
   documents and megabytes per second, overall and per stage.
"""

from __future__ import annotations

import itertools
import random
import re
import time

import numpy as np

from llmcourse.data import (
    BlocklistFilter,
    ExactDedup,
    LanguageFilter,
    NearDedup,
    Normalize,
    Pipeline,
    QualityFilter,
    ScrubPII,
    TrainValSplit,
)
from llmcourse.data.dedup import (
    jaccard,
    jaccard_estimate,
    near_duplicate_pairs,
    shingle_hash,
    shingles,
    signature_of_hashes,
)
from llmcourse.data.synthetic import dirty_corpus, perturb
from llmcourse.pretrained import python_docs, shakespeare_works

THRESHOLD = 0.8
NUM_PERM = 128


def planted_corpus(seed: int = 0) -> list[str]:
    pages = [t for t in python_docs().values() if len(t.split()) >= 100]
    rng = random.Random(seed)
    chosen = pages + rng.sample(pages, len(pages) // 2) + rng.sample(pages, len(pages) // 2)
    return pages + [perturb(page, rng.uniform(0.0, 0.05), rng) for page in chosen]


def datasketch_pairs(docs: list[str]) -> set[tuple[int, int]]:
    import datasketch

    lsh = datasketch.MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    pairs = set()
    signatures = []
    for j, doc in enumerate(docs):
        m = datasketch.MinHash(num_perm=NUM_PERM)
        m.update_batch([s.encode() for s in shingles(doc)])
        for i in lsh.query(m):
            if m.jaccard(signatures[i]) >= THRESHOLD:  # verify, as ours does
                pairs.add((i, j))
        lsh.insert(j, m)
        signatures.append(m)
    return pairs


def near_dup_quality() -> tuple[list[str], dict[tuple[int, int], float]]:
    docs = planted_corpus()
    sets = [shingles(d) for d in docs]
    similarity = {
        (i, j): jaccard(sets[i], sets[j])
        for i, j in itertools.combinations(range(len(docs)), 2)
        if sets[i] & sets[j]
    }
    truth = {p for p, s in similarity.items() if s >= THRESHOLD}
    gray = sum(abs(s - THRESHOLD) < 0.05 for s in similarity.values())
    print(
        f"\n1. Near duplicates: {len(docs)} documents, {len(truth)} pairs with J ≥ {THRESHOLD} "
        f"({gray} pairs within ±0.05 of it), k = {NUM_PERM}"
    )
    print(f"{'':<14}{'pairs':>7}{'precision':>11}{'recall':>8}{'seconds':>9}")
    for name, find in (
        ("llmcourse", lambda: {(i, j) for i, j, _ in near_duplicate_pairs(docs, THRESHOLD)}),
        ("datasketch", lambda: datasketch_pairs(docs)),
    ):
        start = time.perf_counter()
        found = find()
        seconds = time.perf_counter() - start
        hits = len(found & truth)
        precision = hits / len(found) if found else float("nan")
        print(
            f"{name:<14}{len(found):>7}{precision:>11.3f}{hits / len(truth):>8.3f}{seconds:>9.2f}"
        )
    return docs, similarity


def minhash_speed(docs: list[str], similarity: dict[tuple[int, int], float]) -> None:
    import datasketch

    shingle_sets = [shingles(t) for t in docs]
    n = sum(map(len, shingle_sets))
    timings = {}
    start = time.perf_counter()
    ours = []
    for s in shingle_sets:
        hashes = np.fromiter((shingle_hash(x) for x in s), dtype=np.uint64, count=len(s))
        ours.append(signature_of_hashes(hashes, NUM_PERM))
    timings["llmcourse"] = time.perf_counter() - start
    start = time.perf_counter()
    theirs = []
    for s in shingle_sets:
        m = datasketch.MinHash(num_perm=NUM_PERM)
        m.update_batch([x.encode() for x in s])
        theirs.append(m)
    timings["datasketch"] = time.perf_counter() - start
    print(f"\n2. MinHash signatures: {len(shingle_sets)} documents, {n:,} shingles, k = {NUM_PERM}")
    print(f"{'':<14}{'docs/s':>10}{'shingles/s':>13}")
    for name, seconds in timings.items():
        print(f"{name:<14}{len(shingle_sets) / seconds:>10.0f}{n / seconds:>13,.0f}")
    print(
        f"speed ratio llmcourse / datasketch: {timings['datasketch'] / timings['llmcourse']:.2f}x"
    )
    related = [(p, s) for p, s in similarity.items() if s >= 0.3]
    ours_error = np.mean([abs(jaccard_estimate(ours[i], ours[j]) - s) for (i, j), s in related])
    theirs_error = np.mean([abs(theirs[i].jaccard(theirs[j]) - s) for (i, j), s in related])
    print(
        f"mean |estimate - exact Jaccard| on the {len(related)} pairs with J ≥ 0.3: "
        f"llmcourse {ours_error:.4f}, datasketch {theirs_error:.4f}"
    )


def cleaning_stages() -> list:
    return [
        Normalize(),
        LanguageFilter(["en"]),
        QualityFilter(),
        BlocklistFilter(["casino"]),
        ExactDedup(),
        NearDedup(THRESHOLD),
        ScrubPII(),
        TrainValSplit(0.1),
    ]


def pipeline_speed() -> None:
    scenes = {
        f"{name}/{i}": part
        for name, text in shakespeare_works().items()
        for i, part in enumerate(re.split(r"\n(?=(?:SCENE|Scene) [IVXLC]+\.)", text))
    }
    docs = dirty_corpus(scenes, seed=0)
    megabytes = sum(d.n_bytes for d in docs) / 1e6
    pipeline = Pipeline(cleaning_stages(), progress=False)
    start = time.perf_counter()
    kept = sum(1 for _ in pipeline.run(docs))
    seconds = time.perf_counter() - start
    print(
        f"\n3. Pipeline on Shakespeare scenes + planted documents: {len(docs)} docs, "
        f"{megabytes:.1f} MB"
    )
    print(
        f"all stages: {seconds:.1f} s, {len(docs) / seconds:.0f} docs/s, "
        f"{megabytes / seconds:.2f} MB/s, {kept} kept"
    )
    print(f"{'stage (alone, raw input)':<26}{'docs/s':>9}{'MB/s':>8}")
    for stage in cleaning_stages():  # fresh stages: the dedup ones remember what they saw
        single = Pipeline([stage], progress=False)
        start = time.perf_counter()
        for _ in single.run(docs):
            pass
        elapsed = time.perf_counter() - start
        print(f"{stage.name:<26}{len(docs) / elapsed:>9.0f}{megabytes / elapsed:>8.2f}")
    print(pipeline.report)


if __name__ == "__main__":
    minhash_speed(*near_dup_quality())
    pipeline_speed()
