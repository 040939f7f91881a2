"""lm-evaluation-harness as a real client of ``llmcourse serve``, offline.

lm-evaluation-harness (Gao et al., EleutherAI; ``pip install lm-eval``, the ``eval`` extra of
this package) benchmarks any model behind an OpenAI-compatible endpoint with its
``local-completions`` model: for a multiple-choice question it sends ``context + " " + choice``
as token ids with ``echo=True``, ``logprobs=1`` and ``max_tokens=1``, sums the returned
log-probabilities of the choice's tokens, and answers with the best-scoring choice ("acc").
That is the cloze scoring of ``llmcourse.eval.score_choice_likelihoods``, computed by another
program through the server, so the two must pick the same choice for every question: a test of
the server's scores (``tests/test_lm_eval.py``) and of our scorer.

- ``write_task``: a question set (``course_benchmark``) as a local lm-eval task: a YAML file
  and the questions as JSON lines, read by the ``json`` loader of ``datasets`` (no download);
- ``run_lm_eval``: run that task through ``local-completions`` against a running server and
  return each question's per-choice log-likelihoods;
- ``python -m llmcourse.eval.harness``: start a SmolLM2 server, run the whole test split, and
  rewrite ``results/lm_eval_course_benchmark.json``, which lesson 10b loads (a live run of the
  full set would not fit the lesson's time).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmcourse.eval.multiple_choice import MCQuestion
from llmcourse.eval.question_sets import to_records

TASK_NAME = "llmcourse_benchmark"
RESULTS = Path(__file__).parent / "results" / "lm_eval_course_benchmark.json"
INSTALL = 'pip install -e ".[eval]"  (or: pip install lm-eval==0.4.13)'

# The cloze prompt of ``format_cloze`` as a Jinja template; lm-eval puts its default
# ``target_delimiter`` (one space) between it and each choice, as ``score_choice_likelihoods``.
_TASK_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def write_task(folder: str | Path, questions: Sequence[MCQuestion], name: str = TASK_NAME) -> Path:
    """Write ``questions`` as the lm-eval task ``name`` into ``folder`` (``name.yaml`` and
    ``name.jsonl``); pass ``folder`` to lm-eval as ``--include_path``. Returns the YAML's path."""
    if not questions:
        raise ValueError("Give at least one question.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as out:
        for record in to_records(questions):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    task = folder / f"{name}.yaml"
    task.write_text(_TASK_YAML.format(name=name, data=json.dumps(str(data.resolve()))))
    return task


@dataclass(frozen=True)
class HarnessResult:
    """lm-eval's scores: ``log_likelihoods`` ``(questions, choices)``, its ``accuracy``."""

    log_likelihoods: np.ndarray
    accuracy: float

    @property
    def predictions(self) -> np.ndarray:
        return self.log_likelihoods.argmax(axis=1)


def run_lm_eval(
    base_url: str,
    model_name: str,
    tokenizer_dir: str | Path,
    questions: Sequence[MCQuestion],
    work_dir: str | Path,
    batch_size: int = 16,
) -> HarnessResult:
    """Evaluate ``questions`` with lm-eval's ``local-completions`` against the server at
    ``base_url`` (``http://127.0.0.1:PORT``), tokenizing with the Hugging Face tokenizer in
    ``tokenizer_dir``; ``batch_size`` prompts go in each request."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # read when ``datasets`` is imported
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ImportError(f"lm-evaluation-harness is not installed: {INSTALL}") from None
    write_task(work_dir, questions)
    model_args = {
        "base_url": base_url.rstrip("/") + "/v1/completions",
        "model": model_name,
        "tokenizer_backend": "huggingface",
        "tokenizer": str(tokenizer_dir),
        "tokenized_requests": True,
        "batch_size": batch_size,
        "num_concurrent": 1,
        "max_retries": 1,
    }
    output = simple_evaluate(
        model="local-completions",
        model_args=model_args,
        tasks=[TASK_NAME],
        task_manager=TaskManager(include_path=str(work_dir)),
        log_samples=True,
        verbosity="ERROR",
    )
    samples = sorted(output["samples"][TASK_NAME], key=lambda s: s["doc_id"])
    scores = np.array([[_first(r) for r in s["filtered_resps"]] for s in samples])
    return HarnessResult(scores, float(output["results"][TASK_NAME]["acc,none"]))


def _first(response: Any) -> float:
    """lm-eval logs a choice's response as ``(log_likelihood, is_greedy)``."""
    return float(response[0] if isinstance(response, (list, tuple)) else response)


def main() -> None:
    """Rewrite ``RESULTS``: the full test split through a fresh SmolLM2 server."""
    import tempfile
    from importlib.metadata import version

    import httpx

    from llmcourse.eval.question_sets import course_benchmark
    from llmcourse.pretrained import smollm2_dir
    from llmcourse.serve.process import ServerProcess

    questions = course_benchmark("test")
    server = ServerProcess("--model", "smollm2", "--max-batch-size", "16")
    start = time.perf_counter()
    try:
        name = httpx.get(server.url + "/v1/models").json()["data"][0]["id"]
        with tempfile.TemporaryDirectory() as work:
            result = run_lm_eval(server.url, name, smollm2_dir(), questions, work)
    finally:
        server.stop()
    record = {
        "task": TASK_NAME,
        "questions": len(questions),
        "accuracy": result.accuracy,
        "predictions": result.predictions.tolist(),
        "log_likelihoods": result.log_likelihoods.round(5).tolist(),
        "lm_eval_version": version("lm_eval"),
        "model": name,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print(f"accuracy {result.accuracy:.3f} on {len(questions)} questions -> {RESULTS}")


if __name__ == "__main__":
    main()
