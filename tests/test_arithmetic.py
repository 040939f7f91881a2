"""The verifiable task (llmcourse.data.arithmetic), answer parsers (llmcourse.eval.answers) and
the unbiased pass@k estimator (llmcourse.eval.passk)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from llmcourse.data.arithmetic import (
    ArithmeticProblems,
    ArithmeticReward,
    Problem,
    arithmetic_tokenizer,
    check_answer,
    encode_prompts,
    response_text,
    sft_examples,
)
from llmcourse.eval import last_number, mean_pass_at_k, parse_choice, parse_gsm8k, pass_at_k

# ---- problems and splits -------------------------------------------------------------------------


def test_splits_are_disjoint_cover_every_problem_and_are_deterministic():
    problems = ArithmeticProblems(digits=2, held_out=0.1)
    every = [Problem(a, b) for a, b in itertools.product(range(10, 100), repeat=2)]
    held = {p for p in every if problems.split(p) == "held_out"}
    assert problems.size("held_out") == len(held) and problems.size("train") == 8100 - len(held)
    assert 0.08 < len(held) / 8100 < 0.12
    drawn = problems.sample(2000, torch.Generator().manual_seed(0))
    assert not held & set(drawn)  # training never sees a held-out problem
    evaluation = problems.held_out_set(300)
    assert len(set(evaluation)) == 300 and set(evaluation) <= held
    assert evaluation == ArithmeticProblems(digits=2, held_out=0.1).held_out_set(300)
    other_split = ArithmeticProblems(digits=2, held_out=0.1, split_seed=1)
    assert {p for p in every if other_split.split(p) == "held_out"} != held


def test_operations_lengths_and_bad_arguments():
    assert Problem(37, 45).prompt == "37+45=" and Problem(37, 45).answer == 82
    assert Problem(12, 45, "-").answer == -33 and Problem(12, 45, "*").answer == 540
    assert Problem.from_prompt("12*45=") == Problem(12, 45, "*")
    problems = ArithmeticProblems(digits=3, ops="+-*")
    drawn = problems.sample(50, torch.Generator().manual_seed(1))
    assert {len(p.prompt) for p in drawn} == {problems.prompt_length} == {8}
    assert {p.op for p in drawn} == {"+", "-", "*"} and problems.max_answer_length == 6
    for bad, match in (
        ({"digits": 0}, "digits"),
        ({"ops": "/"}, "ops"),
        ({"held_out": 1.0}, "held_out"),
    ):
        with pytest.raises(ValueError, match=match):
            ArithmeticProblems(**bad)
    with pytest.raises(ValueError, match="not an arithmetic prompt"):
        Problem.from_prompt("hello")
    with pytest.raises(ValueError, match="split must be"):
        problems.sample(1, split="test")


def test_tokenizer_covers_the_task_and_ends_answers_with_eos():
    tokenizer = arithmetic_tokenizer()
    assert tokenizer.vocab_size == 20 and tokenizer.eos_id == 19
    text = "12+34=46 #### (7), -7*8"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    (example,) = sft_examples(tokenizer, [Problem(12, 34)])
    assert tokenizer.decode(example["prompt_ids"]) == "12+34="
    assert example["response_ids"] == [*tokenizer.encode("46"), tokenizer.eos_id]
    assert response_text(tokenizer, example["response_ids"] + tokenizer.encode("99")) == "46"
    with pytest.raises(ValueError, match="differ in length"):
        encode_prompts(tokenizer, [Problem(1, 2), Problem(10, 2)])


def test_checkers_from_exact_to_lax():
    assert check_answer("82", 82) and not check_answer("82 ", 82) and not check_answer("83", 82)
    assert check_answer("81 then 82", 82, "last_number")
    assert not check_answer("82 then 81", 82, "last_number")
    assert check_answer("1828384", 82, "contains") and not check_answer("1828384", 82)
    assert check_answer("-33", -33) and check_answer("x -33", -33, "last_number")
    with pytest.raises(ValueError, match="checker must be one of"):
        check_answer("82", 82, "close_enough")


def test_reward_reads_the_problem_from_the_prompt():
    tokenizer = arithmetic_tokenizer()
    problems = [Problem(12, 34), Problem(50, 50)]
    prompts = encode_prompts(tokenizer, problems)
    eos = tokenizer.eos_id
    responses = [[*tokenizer.encode("46"), eos], [*tokenizer.encode("1001000"), eos]]
    assert ArithmeticReward(tokenizer)(prompts, responses).tolist() == [1.0, 0.0]
    assert ArithmeticReward(tokenizer, "contains")(prompts, responses).tolist() == [1.0, 1.0]


# ---- answer parsers ------------------------------------------------------------------------------


def test_gsm8k_and_last_number_parsers():
    assert parse_gsm8k("She pays 3 * 4 = 12 dollars.\n#### 12") == "12"
    assert parse_gsm8k("#### 1,200.50") == "1200.5" and parse_gsm8k("####-3") == "-3"
    assert parse_gsm8k("first 5, then 7") == "7" and parse_gsm8k("7 apples", fallback=False) is None
    assert last_number("no digits here") is None and last_number("3.0 and 2,000") == "2000"
    assert last_number("costs 42.0") == "42"


def test_multiple_choice_parser():
    assert parse_choice("Let me think. The answer is (B).") == "B"
    assert parse_choice("answer: c") == "C" and parse_choice("The answer is D") == "D"
    assert parse_choice("Both (A) and (C) look odd; (C) it is") == "C"
    assert parse_choice("The answer is (E)") is None  # not one of A-D
    assert parse_choice("The answer is (E)", letters="ABCDE") == "E"
    assert parse_choice("I am not sure") is None
    assert parse_choice("Answerable questions: (A)") == "A"  # the phrase needs 'answer is'/':'
    with pytest.raises(ValueError, match="letters"):
        parse_choice("x", letters="12")


# ---- pass@k --------------------------------------------------------------------------------------


def test_pass_at_k_by_hand():
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 − C(3,2)/C(5,2)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 = c/n
    assert pass_at_k(5, 4, 2) == 1.0 and pass_at_k(5, 0, 5) == 0.0
    assert mean_pass_at_k(4, [0, 1, 4], 2) == pytest.approx((0 + 0.5 + 1) / 3)


def test_pass_at_k_equals_the_binomial_formula_and_is_stable_for_large_n():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 60)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))
    # C(2000, 1000) overflows a float; the product form does not.
    value = pass_at_k(2000, 3, 1000)
    assert math.isfinite(value) and value == pytest.approx(
        1 - (1000 * 999 * 998) / (2000 * 1999 * 1998)
    )


def test_pass_at_k_is_unbiased_where_the_naive_estimate_is_not():
    """With true per-sample accuracy p, pass@k = 1 − (1 − p)^k. Averaged over many draws of n
    samples, the estimator hits it; plugging c/n into that formula does not."""
    p, n, k, trials = 0.2, 10, 5, 20_000
    generator = torch.Generator().manual_seed(0)
    correct = torch.binomial(torch.full((trials,), float(n)), torch.full((trials,), p), generator)
    counts = correct.int().tolist()
    truth = 1 - (1 - p) ** k
    unbiased = mean_pass_at_k(n, counts, k)
    plug_in = sum(1 - (1 - c / n) ** k for c in counts) / trials
    assert abs(unbiased - truth) < 0.005 < abs(plug_in - truth)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="1 ≤ k ≤ n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="impossible"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="non-negative integer"):
        pass_at_k(3.0, 1, 1)
