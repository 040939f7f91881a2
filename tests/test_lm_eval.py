"""lm-evaluation-harness, a real evaluation client, against ``llmcourse serve`` (SmolLM2).

lm-eval's ``local-completions`` scores each choice from the server's ``echo``/``logprobs``
replies; ``llmcourse.eval.score_choice_likelihoods`` scores the same questions on the same
model in this process. They are two programs computing one thing, so they must choose the same
answer for every question, with the same probabilities up to float noise from batching.
Needs the ``eval`` extra (``make test`` installs it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("lm_eval", reason='the eval extra is not installed: pip install -e ".[eval]"')

from llmcourse.eval import score_choice_likelihoods
from llmcourse.eval.harness import RESULTS, run_lm_eval, write_task
from llmcourse.eval.question_sets import course_benchmark

pytestmark = pytest.mark.slow


def test_the_task_files_hold_the_questions(tmp_path):
    questions = course_benchmark("test")[:3]
    task = write_task(tmp_path, questions)
    assert "output_type: multiple_choice" in task.read_text()
    rows = [json.loads(line) for line in (tmp_path / "llmcourse_benchmark.jsonl").open()]
    assert [r["question"] for r in rows] == [q.question for q in questions]
    assert [r["answer"] for r in rows] == [q.answer for q in questions]


def test_lm_eval_through_the_server_picks_what_our_scorer_picks(tmp_path):
    import httpx

    from llmcourse.models.hf import load_smollm2
    from llmcourse.pretrained import smollm2_dir
    from llmcourse.serve.process import ServerProcess

    questions = course_benchmark("test")[::6]  # every source, a sixth of the set
    server = ServerProcess("--model", "smollm2", "--max-batch-size", "16")
    try:
        name = httpx.get(server.url + "/v1/models").json()["data"][0]["id"]
        harness = run_lm_eval(server.url, name, smollm2_dir(), questions, tmp_path)
    finally:
        server.stop()
    model, tokenizer = load_smollm2()
    ours = score_choice_likelihoods(model, tokenizer, questions, batch_size=16)
    assert harness.predictions.tolist() == ours.predictions.tolist()
    probabilities = np.exp(harness.log_likelihoods - harness.log_likelihoods.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    np.testing.assert_allclose(probabilities, ours.probabilities, atol=2e-3)
    assert harness.accuracy == pytest.approx(ours.accuracy)


def test_the_committed_full_run_is_the_current_benchmark():
    record = json.loads(RESULTS.read_text())
    questions = course_benchmark("test")
    assert record["questions"] == len(questions) == len(record["predictions"])
    answers = np.array([q.answer for q in questions])
    assert record["accuracy"] == pytest.approx(
        float((np.array(record["predictions"]) == answers).mean())
    )
