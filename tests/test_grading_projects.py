"""Lesson projects (issue 17 item 1): each solution reaches its project's threshold on three
seeds with margin, and the obvious shortcuts do not.

The answers come from the solution notebooks themselves (their imports cell and the cell that
defines the answer run here), and are graded through the grader's own path
(``grading_fixtures.judge.grade_answer``: draw, call, send as JSON, measure on hidden data).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from grading_fixtures.judge import grade_answer
from grading_fixtures.notebooks import ROOT

from llmcourse.grading.evaluate import FAILED

SEEDS = (1, 2, 3)


def solution_answers(notebook: str, *names: str, setup: tuple[str, ...] = ()) -> dict:
    """``names`` as the solution notebook defines them (its first code cell holds the imports;
    the cells that contain each string of ``setup`` run before the answers' cells)."""
    cells = json.loads((ROOT / "solutions" / notebook).read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    namespace: dict = {}
    exec(code[0], namespace)
    for needle in setup:
        (source,) = [s for s in code if needle in s]
        exec(source, namespace)
    for name in names:
        (source,) = [s for s in code if f"def {name}(" in s or f"class {name}" in s]
        exec(source.split("\nwith try_it():")[0], namespace)
    return {name: namespace[name] for name in names}


def measured(exercise: str, answers: dict, seed: int):
    outcomes = grade_answer(exercise, answers, seed=seed)
    return next(o for o in outcomes if o.measured is not None or not o.passed)


@pytest.mark.slow
def test_02_the_solution_beats_the_character_perplexity_budget_with_margin():
    from llmcourse.grading.exercises.lesson_02 import CHAR_PERPLEXITY_BUDGET

    answers = solution_answers("02_nlp_fundamentals.ipynb", "char_ngram_model")
    values = []
    for seed in SEEDS:
        outcome = measured("02.char_ngram", answers, seed)
        assert outcome.passed, outcome.message
        values.append(outcome.measured["value"])
    assert max(values) < CHAR_PERPLEXITY_BUDGET * 0.97, values  # 3 % margin or more

    def ngram_table(order, k):
        def table(text, alphabet):
            size = len(alphabet)
            ids = torch.tensor([alphabet.index(ch) for ch in text])
            codes = (ids.unfold(0, order, 1) * size ** torch.arange(order - 1, -1, -1)).sum(1)
            counts = torch.bincount(codes, minlength=size**order).double().view(*[size] * order)
            seen = counts.sum(-1, keepdim=True)
            return torch.where(seen > 0, (counts + k) / (seen + k * size), 1 / size)

        return {"char_ngram_model": table}

    add_one = measured("02.char_ngram", ngram_table(3, 1.0), 1)
    assert add_one.status == FAILED and add_one.measured["value"] > CHAR_PERPLEXITY_BUDGET
    unsmoothed = measured("02.char_ngram", ngram_table(4, 0.0), 1)
    assert unsmoothed.status == FAILED and math.isinf(unsmoothed.measured["value"])
    assert "never followed by a held-out character gives it 0" in unsmoothed.message
    uniform = measured("02.char_ngram", {"char_ngram_model": lambda t, a: torch.ones(36) / 36}, 1)
    assert uniform.status == FAILED and math.isclose(uniform.measured["value"], 36, rel_tol=1e-6)
    halves = measured("02.char_ngram", {"char_ngram_model": lambda t, a: torch.ones(36, 36) / 2}, 1)
    assert halves.status == FAILED and "sum to 1" in halves.message


@pytest.mark.slow
def test_06_the_solution_compresses_the_held_out_plays_with_margin():
    from llmcourse.grading.exercises.lesson_06 import BPE_MIN_RATIO

    answers = solution_answers("06_tokenizers.ipynb", "merge_tokens", "train_tokenizer", "tokenize")
    values = []
    for seed in SEEDS:
        outcome = measured("06.bpe_project", answers, seed)
        assert outcome.passed, outcome.message
        values.append(outcome.measured["value"])
    assert min(values) > BPE_MIN_RATIO * 1.03, values  # 3 % margin or more

    train = answers["train_tokenizer"]

    def distinct_words_once(text, vocab_size, pattern):
        import regex

        return train("".join(set(regex.findall(pattern, text))), vocab_size, pattern)

    unweighted = measured("06.bpe_project", {**answers, "train_tokenizer": distinct_words_once}, 1)
    assert unweighted.status == FAILED and unweighted.measured["value"] < BPE_MIN_RATIO
    none = measured("06.bpe_project", {**answers, "train_tokenizer": lambda t, v, p: []}, 1)
    assert none.status == FAILED and none.measured["value"] == 1.0

    def over_the_cap(text, vocab_size, pattern):
        return train(text, vocab_size + 10, pattern)

    greedy = measured("06.bpe_project", {**answers, "train_tokenizer": over_the_cap}, 1)
    assert greedy.status == FAILED and "the cap is 512" in greedy.message


@pytest.mark.slow
def test_07_the_solution_filters_junk_with_margin_and_gophers_rules_do_not_reach_it():
    from llmcourse.data.quality import gopher_failure
    from llmcourse.grading.exercises.lesson_07 import QUALITY_MIN_F1

    answers = solution_answers(
        "07_data_preparation.ipynb", "quality_signals", "quality_filter", setup=("KNOWN_PAIRS =",)
    )
    values = []
    for seed in SEEDS:
        outcome = measured("07.quality_project", answers, seed)
        assert outcome.passed, outcome.message
        values.append(outcome.measured["value"])
    assert min(values) > QUALITY_MIN_F1 + 0.01, values

    def gopher(train_documents, train_labels, documents):
        return [gopher_failure(text) is None for text in documents]

    for name, answer in (
        ("gopher", gopher),
        ("all", lambda train, labels, docs: [True] * len(docs)),
    ):
        outcome = measured("07.quality_project", {"quality_filter": answer}, 1)
        assert outcome.status == FAILED, name
        assert "precision" in outcome.message and "recall" in outcome.message


@pytest.mark.slow
def test_05_the_solution_resumes_bit_exactly_and_each_forgotten_state_shows():
    from llmcourse.grading.exercises import lesson_05

    answers = solution_answers(
        "05_experimental_environment.ipynb",
        "train_run",
        setup=("def make_run(", "from llmcourse.utils import load_checkpoint"),
    )
    for seed in SEEDS:
        outcomes = grade_answer("05.resume_project", answers, seed=seed)
        assert all(o.passed for o in outcomes), [o.message for o in outcomes]
        assert outcomes[0].measured["value"] == 0.0
    for forgot in (lesson_05._without_rng, lesson_05._without_data, lesson_05._without_optimizer):
        outcome = measured("05.resume_project", {"train_run": forgot}, 1)
        assert outcome.status == FAILED and outcome.measured["value"] > 1e-4, forgot


@pytest.mark.slow
def test_03_the_converted_tiny_gpt_loads_with_a_smaller_cache_and_its_loss_is_reported():
    answers = solution_answers("03_llm_architecture.ipynb", "mha_to_gqa")
    for seed in SEEDS:
        outcomes = grade_answer("03.gqa_project", answers, seed=seed)
        assert all(o.passed for o in outcomes), [o.message for o in outcomes]
        shown = outcomes[1].measured
        assert shown["value"] <= shown["threshold"] < 1
    unchanged = grade_answer("03.gqa_project", {"mha_to_gqa": lambda state, h, kv: state}, 1)
    assert [o.status for o in unchanged] == [FAILED, FAILED]
    assert "do not load into the tiny GPT" in unchanged[1].message


@pytest.mark.slow
def test_01_the_solution_picks_the_original_lines_with_margin():
    from llmcourse.grading.exercises.lesson_01 import RANKING_MIN_ACCURACY

    answers = solution_answers("01_course_overview.ipynb", "sentence_log_probs")
    values = []
    for seed in SEEDS:
        outcome = measured("01.ranking_project", answers, seed)
        assert outcome.passed, outcome.message
        values.append(outcome.measured["value"])
    assert min(values) >= RANKING_MIN_ACCURACY + 0.1, values  # two binomial spreads of 40 groups

    def constant(model, tokenizer, sentences):
        return [-1.0] * len(sentences)

    def probabilities_summed(model, tokenizer, sentences):  # not log-probabilities
        scores = []
        with torch.no_grad():
            for sentence in sentences:
                ids = torch.tensor([tokenizer.encode("\n" + sentence)])
                probs = torch.softmax(model(ids[:, :-1]).logits[0], dim=-1)
                scores.append(-probs.gather(1, ids[0, 1:, None]).sum().item())
        return scores

    assert (
        measured("01.ranking_project", {"sentence_log_probs": constant}, 1).measured["value"] == 0.0
    )
    wrong = measured("01.ranking_project", {"sentence_log_probs": probabilities_summed}, 1)
    assert wrong.status == FAILED and wrong.measured["value"] < RANKING_MIN_ACCURACY
