"""The course benchmark (question sets with keys from installed data) and cloze scoring."""

from __future__ import annotations

import builtins
import itertools
import json
import re
from collections import Counter

import numpy as np
import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.eval import (
    PLAY_TITLES,
    SOURCES,
    MCQuestion,
    course_benchmark,
    expected_calibration_error,
    format_cloze,
    format_mmlu,
    from_records,
    reliability_diagram,
    robustness_report,
    robustness_set,
    score_choice_likelihoods,
    score_multiple_choice,
    to_records,
    token_log_probs,
)
from llmcourse.eval.question_sets import description
from llmcourse.models import DecoderLM
from llmcourse.pretrained import shakespeare_works

LETTERS = {" A": 256, " B": 257, " C": 258, " D": 259}


class ByteTokenizer:
    """UTF-8 bytes as tokens, plus one token for each answer letter (" A" ... " D")."""

    def encode(self, text: str) -> list[int]:
        return [LETTERS[text]] if text in LETTERS else list(text.encode("utf-8"))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=260, context_length=1024, d_model=32, n_layer=2, n_head=4)
    return DecoderLM(config).eval()


@pytest.fixture(scope="module")
def test_set():
    return course_benchmark("test")


def _documented(name: str) -> str:
    kind, _, method = name.partition(".")
    obj = getattr(builtins, kind)
    return description(getattr(obj, method) if method else obj)


def test_benchmark_is_large_balanced_and_deterministic(test_set):
    dev = course_benchmark("dev")
    assert len(test_set) >= 200 and len(dev) >= len(SOURCES)
    assert test_set == course_benchmark("test")
    assert test_set != course_benchmark("test", seed=1)
    assert not {q.question for q in test_set} & {q.question for q in dev}
    counts = Counter(q.source for q in test_set)
    assert set(counts) == set(SOURCES) and min(counts.values()) >= 30
    # The key rotates through the letters: a constant-letter guesser scores chance exactly.
    positions = Counter(q.answer for q in test_set)
    assert max(positions.values()) - min(positions.values()) <= len(SOURCES)
    for q in test_set:
        assert len(q.choices) == 4 and len(set(q.choices)) == 4


def test_python_keys_are_the_documented_names(test_set):
    python = [q for q in test_set if q.source.startswith("python_")]
    assert len(python) >= 120
    for q in python:
        quoted = re.search(r'documented as: "(.*)"\?$', q.question).group(1)
        answer = q.choices[q.answer]
        assert _documented(answer) == quoted
        short = answer.rsplit(".", 1)[-1]
        assert not re.search(rf"\b{re.escape(short)}\b", quoted, re.IGNORECASE)
        for i, other in enumerate(q.choices):
            if i != q.answer:  # no distractor is documented the same way
                assert _documented(other).casefold() != quoted.casefold()
                assert other.split(".")[0] == answer.split(".")[0] or "." not in answer


def test_the_set_does_not_depend_on_what_the_environment_adds_to_builtins(monkeypatch, test_set):
    def display(obj):  # what IPython puts into builtins inside a notebook
        """Show the given object in the notebook's output area."""

    monkeypatch.setattr(builtins, "display", display, raising=False)
    from llmcourse.eval.question_sets import _benchmark

    _benchmark.cache_clear()
    try:
        assert course_benchmark("test") == test_set
    finally:
        _benchmark.cache_clear()


def test_next_line_keys_follow_their_cue_in_the_play(test_set):
    works = shakespeare_works()
    titles = {"In " + title: name for name, title in PLAY_TITLES.items()}
    questions = [q for q in test_set if q.source == "shakespeare_next_line"]
    for q in questions:
        head, cue = re.match(r'(In [^,]+), which line follows: "(.*)"\?$', q.question).groups()
        lines = [line.strip() for line in works[titles[head]].splitlines()]
        follows = {after for before, after in itertools.pairwise(lines) if before == cue}
        assert q.choices[q.answer] in follows
        assert cue not in q.choices


def test_records_round_trip_as_json(test_set):
    records = to_records(test_set)
    assert set(records[0]) == {"question", "choices", "answer", "source", "subject"}
    assert from_records(json.loads(json.dumps(records))) == test_set


def test_robustness_set_is_stratified_and_drawn_from_the_test_split(test_set):
    items = robustness_set(100)
    assert len(items) == 100 and len(set(items)) == 100
    assert set(items) <= set(test_set)
    assert set(Counter(q.source for q in items).values()) == {20}
    assert items == robustness_set(100)
    python = robustness_set(100, sources=SOURCES[:3])
    assert sorted(Counter(q.source for q in python).values()) == [33, 33, 34]
    with pytest.raises(ValueError, match="n must"):
        robustness_set(10_000)
    with pytest.raises(ValueError, match="sources"):
        robustness_set(10, sources=("mmlu",))


def test_cloze_scores_are_the_choice_log_likelihoods(model, test_set):
    tokenizer = ByteTokenizer()
    questions = test_set[:5] + test_set[-4:]
    shots = course_benchmark("dev")[:1]
    for normalize in ("none", "token", "char"):
        result = score_choice_likelihoods(
            model, tokenizer, questions, shots=shots, batch_size=4, normalize=normalize
        )
        for i, q in enumerate(questions):
            context = tokenizer.encode(format_cloze(q, shots))
            scores = []
            for choice in q.choices:
                continuation = tokenizer.encode(" " + choice)
                ids = torch.tensor([context + continuation])
                log_p = token_log_probs(model(ids).logits, ids)[0, len(context) - 1 :].sum()
                length = {"none": 1, "token": len(continuation), "char": len(choice) + 1}
                scores.append(float(log_p) / length[normalize])
            expected = torch.softmax(torch.tensor(scores, dtype=torch.float64), -1).numpy()
            assert result.probabilities[i] == pytest.approx(expected, abs=1e-4)
    assert format_cloze(questions[0], shots).endswith(f"Question: {questions[0].question}\nAnswer:")
    with pytest.raises(ValueError, match="normalize"):
        score_choice_likelihoods(model, tokenizer, questions, normalize="bytes")


def test_letter_scores_with_a_shared_prefix_equal_one_prompt_at_a_time(model, test_set):
    tokenizer = ByteTokenizer()
    questions = test_set[:6] + test_set[-3:]  # two subjects: two headers
    shots = course_benchmark("dev")[:1]
    batched = score_multiple_choice(model, tokenizer, questions, shots=shots, batch_size=4)
    for i, q in enumerate(questions):
        ids = torch.tensor([tokenizer.encode(format_mmlu(q, shots))])
        logits = model(ids).logits[0, -1, list(LETTERS.values())].double()
        expected = torch.softmax(logits, -1).detach().numpy()
        assert batched.probabilities[i] == pytest.approx(expected, abs=1e-5)


def test_equal_mass_bins_hold_equal_counts():
    rng = np.random.default_rng(0)
    confidences = 0.25 + 0.75 * rng.beta(5, 1, 400)  # crowded near 1, as small models answer
    correct = rng.uniform(size=400) < 0.4
    width = reliability_diagram(confidences, correct, n_bins=10)
    mass = reliability_diagram(confidences, correct, n_bins=10, binning="mass")
    assert (width.count > 0).sum() < 10
    assert mass.count.sum() == 400 and mass.count.min() >= 35 and mass.count.max() <= 45
    assert expected_calibration_error(confidences, correct, 10, "mass") == pytest.approx(mass.ece)
    with pytest.raises(ValueError, match="binning"):
        reliability_diagram(confidences, correct, binning="quantile")


def test_robustness_report_passes_any_score_through():
    questions = [MCQuestion(f"Question {i} about words", ("a", "b"), 0) for i in range(3)]
    report = robustness_report(lambda qs: np.array([len(q.question) for q in qs]), questions)
    assert set(report) == {"clean", "typos", "case", "whitespace"}
    assert report["clean"].tolist() == [len(q.question) for q in questions]


@pytest.mark.slow
def test_smollm2_is_above_chance_on_the_python_questions(test_set):
    """The lesson's headline, on a subsample: the cloze score of SmolLM2 beats 1 in 4 by more
    than its 95% interval's half-width (measured: about 0.45 on all Python questions)."""
    from llmcourse.models.hf import load_smollm2

    model, tokenizer = load_smollm2()
    questions = [q for q in test_set if q.source.startswith("python_")][::2]
    result = score_choice_likelihoods(model, tokenizer, questions, batch_size=16)
    n, accuracy = len(questions), result.accuracy
    half_width = 1.96 * np.sqrt(accuracy * (1 - accuracy) / n)
    assert accuracy - half_width > 0.25, (accuracy, n)


def test_the_benchmark_is_the_same_in_a_jupyter_kernel(monkeypatch):
    """ipykernel replaces builtins.input with a function of its own; the questions must not
    change (they did: input left the distractor pool of every built-in question)."""
    import builtins

    from llmcourse.eval.question_sets import _benchmark

    plain = course_benchmark("test")

    def kernel_input(prompt=""):  # what ipykernel puts in builtins
        return ""

    kernel_input.__module__ = "ipykernel.kernelbase"
    monkeypatch.setattr(builtins, "input", kernel_input)
    _benchmark.cache_clear()
    try:
        assert course_benchmark("test") == plain
    finally:
        _benchmark.cache_clear()
