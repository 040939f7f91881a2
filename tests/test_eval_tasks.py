"""Multiple-choice scoring (MMLU format), the play question set, robustness, bits per byte."""

from __future__ import annotations

import math
import zlib

import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.eval import (
    MCQuestion,
    bits_per_byte,
    format_mmlu,
    perplexity,
    perturb,
    play_questions,
    robustness_report,
    score_multiple_choice,
    sliding_window_nll,
)
from llmcourse.models import DecoderLM

WORKS = {
    name: "\n".join(
        f"{name.title()} speaks line {i} of verse, long enough to ask about" for i in range(300)
    )
    for name in ("hamlet", "macbeth", "othello", "lear", "tempest")
}
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


def test_mmlu_prompt_layout():
    shot = MCQuestion("2 + 2 = ?", ("3", "4", "5", "6"), 1, "arithmetic")
    question = MCQuestion("3 + 3 = ?", ("6", "7", "8", "9"), 0, "arithmetic")
    assert format_mmlu(question, [shot]) == (
        "The following are multiple choice questions (with answers) about arithmetic.\n\n"
        "2 + 2 = ?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: B\n\n"
        "3 + 3 = ?\nA. 6\nB. 7\nC. 8\nD. 9\nAnswer:"
    )
    with pytest.raises(ValueError, match="index"):
        MCQuestion("?", ("a", "b"), 2)


def test_letter_probabilities_come_from_the_next_token_logits(model):
    tokenizer = ByteTokenizer()
    questions = play_questions(5, "test", works=WORKS)
    batched = score_multiple_choice(model, tokenizer, questions, batch_size=3)  # left padding
    for i, q in enumerate(questions):
        ids = torch.tensor([tokenizer.encode(format_mmlu(q))])
        logits = model(ids).logits[0, -1, list(LETTERS.values())].double()
        expected = torch.softmax(logits, dim=-1).detach().numpy()
        assert batched.probabilities[i] == pytest.approx(expected, abs=1e-5)
    assert batched.probabilities.sum(axis=1) == pytest.approx(1.0)
    assert batched.confidences.tolist() == batched.probabilities.max(axis=1).tolist()
    assert 0.0 <= batched.accuracy <= 1.0


def test_letters_must_be_single_tokens(model):
    class Bytes:
        def encode(self, text):
            return list(text.encode())

    with pytest.raises(ValueError, match="one token"):
        score_multiple_choice(model, Bytes(), play_questions(1, works=WORKS))


def test_play_questions_are_seeded_and_the_splits_never_share_a_passage():
    test, dev = play_questions(40, "test", works=WORKS), play_questions(40, "dev", works=WORKS)
    assert test == play_questions(40, "test", works=WORKS)
    assert test != play_questions(40, "test", seed=1, works=WORKS)
    passage = lambda q: q.question.split("\n", 1)[1]
    assert not {passage(q) for q in test} & {passage(q) for q in dev}
    for q in dev:
        assert zlib.crc32(passage(q).strip('"').encode()) % 5 == 0
    for q in test:
        assert len(set(q.choices)) == 4
        title = q.choices[q.answer]
        name = title.lower().replace("the ", "").replace("king ", "")
        assert passage(q).lower().strip('"').startswith(name)  # the passage is from that play
    with pytest.raises(ValueError, match="split"):
        play_questions(1, "train", works=WORKS)


def test_play_questions_from_the_real_corpus():
    questions = play_questions(20, "test")
    answers = {q.choices[q.answer] for q in questions}
    assert len(answers) > 5  # the plays are mixed
    assert all(q.subject == "Shakespeare's plays" and len(q.choices) == 4 for q in questions)


def test_perturbations_are_seeded_and_do_what_they_say():
    text = "Which play is this passage from? Something wicked this way comes"
    assert perturb(text, "typos", rate=0.0) == text
    typos = perturb(text, "typos", rate=1.0)
    assert typos != text and len(typos) == len(text)
    for before, after in zip(text.split(), typos.split(), strict=True):
        assert (before[0], before[-1], sorted(before)) == (after[0], after[-1], sorted(after))
    assert perturb(text, "typos", rate=0.5, seed=3) == perturb(text, "typos", rate=0.5, seed=3)
    assert perturb(text, "case", rate=1.0) == text.upper()
    spaced = perturb(text, "whitespace", rate=1.0)
    assert spaced.split() == text.split() and spaced != text
    with pytest.raises(ValueError, match="kind"):
        perturb(text, "emoji")


def test_robustness_report_scores_clean_and_each_perturbation():
    questions = play_questions(4, works=WORKS)
    seen = []

    def score(qs):
        seen.append([q.question for q in qs])
        return float(len(seen))

    report = robustness_report(score, questions, rate=1.0)
    assert list(report) == ["clean", "typos", "case", "whitespace"]
    assert seen[0] == [q.question for q in questions]
    assert seen[2] == [q.question.upper() for q in questions]

    seen.clear()
    report = robustness_report(score, questions, kinds=("case",), rate=1.0, clean=0.5)
    assert report == {"clean": 0.5, "case": 1.0}
    assert seen == [[q.question.upper() for q in questions]]  # the clean set is not re-scored


def test_bits_per_byte_is_perplexity_in_other_units(model):
    text = "To be, or not to be, that is the question. " * 12
    ids = torch.tensor(list(text.encode()))
    _, count = sliding_window_nll(model, ids, block_size=128, stride=64)
    assert count == ids.numel() - 1
    ppl = perplexity(model, ids, block_size=128, stride=64)
    bpb = bits_per_byte(model, ids, len(text.encode()), block_size=128, stride=64)
    assert bpb == pytest.approx(math.log2(ppl) * count / len(text.encode()))
    with pytest.raises(ValueError, match="n_bytes"):
        bits_per_byte(model, ids, 0)
