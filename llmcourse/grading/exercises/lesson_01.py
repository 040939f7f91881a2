"""Exercises of lesson 01 (course overview): next-token distributions, the chain rule and
perplexity, each against ``llmcourse.infer.sampling`` or ``llmcourse.eval``."""

from __future__ import annotations

import math

import torch

from llmcourse.eval import perplexity_from_log_probs, token_log_probs
from llmcourse.grading.spec import Case, Draw, Exercise, Measurement
from llmcourse.grading.wire import Make
from llmcourse.infer.sampling import process_logits


def _reference_distribution(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return torch.softmax(process_logits(logits, temperature=temperature), dim=-1)


def _sequence_log_prob(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return token_log_probs(logits, ids).sum()


# ---- 01.next_token ----------------------------------------------------------------------------

next_token = Exercise(
    "01.next_token",
    answer="next_token_distribution",
    reference=_reference_distribution,
    forbid=["llmcourse.infer.sampling.process_logits"],
    section="A language model predicts the next token",
)


@next_token.variant("the temperature is ignored")
def _no_temperature(logits, temperature=1.0):
    return torch.softmax(logits, dim=-1)


@next_token.variant("the logits are multiplied by the temperature instead of divided")
def _times_temperature(logits, temperature=1.0):
    return torch.softmax(logits * temperature, dim=-1)


@next_token.variant("the softmax runs over the wrong dimension (the rows, not each row)")
def _softmax_over_rows(logits, temperature=1.0):
    return torch.softmax(logits / temperature, dim=0)


@next_token.test(
    points=1,
    hint="Exponentiate and divide by the sum over the last dimension, so each row sums to 1.",
)
def softmax_of_a_batch(draw: Draw) -> list[Case]:
    rows, vocab = draw.integer(2, 6), draw.integer(5, 40)
    return [Case((draw.randn(rows, vocab),), label=f"logits ({rows}, {vocab}), temperature 1")]


@next_token.test(
    points=1,
    hint="Divide the logits by the temperature before the softmax (not the probabilities after).",
)
def temperature_sharpens_and_flattens(draw: Draw) -> list[Case]:
    logits = draw.randn(3, draw.integer(5, 20)) * 2
    return [
        Case((logits, temperature), label=f"temperature {temperature:g}")
        for temperature in (0.5, 2.0, round(draw.uniform(0.2, 3.0), 2))
    ]


@next_token.test(
    points=1,
    hint="exp(1000) overflows to inf and inf/inf is nan: subtract each row's maximum first.",
)
def large_logits_stay_finite(draw: Draw) -> list[Case]:
    fixed = torch.tensor([[1000.0, 999.0, 990.0], [-1000.0, -1001.0, -1000.5]])
    drawn = draw.randn(2, 6) + draw.choice([-1, 1]) * draw.uniform(500, 2000)
    return [
        Case((fixed,), label="logits around ±1000"),
        Case((drawn,), label="logits far from 0"),
    ]


# ---- 01.sequence_log_prob ---------------------------------------------------------------------

sequence_log_prob = Exercise(
    "01.sequence_log_prob",
    answer="sequence_log_prob",
    reference=_sequence_log_prob,
    forbid=["llmcourse.eval.token_log_probs"],
    section="The chain rule: the probability of a whole text",
)


@sequence_log_prob.variant("row t of the logits is paired with token t (off by one position)")
def _same_position(logits, ids):
    log_probs = torch.log_softmax(logits, dim=-1)
    return log_probs[torch.arange(1, len(ids)), ids[1:]].sum()


@sequence_log_prob.variant("probabilities are summed instead of log-probabilities")
def _summed_probabilities(logits, ids):
    probs = torch.softmax(logits, dim=-1)
    return probs[torch.arange(len(ids) - 1), ids[1:]].sum()


@sequence_log_prob.test(
    points=2,
    hint="Row t-1 of the logits predicts token t; use log-probabilities, not probabilities.",
)
def matches_the_chain_rule(draw: Draw) -> list[Case]:
    cases = []
    for seq, vocab in ((6, 10), (draw.integer(10, 30), draw.integer(20, 60))):
        logits, ids = draw.randn(seq, vocab), draw.randint(0, vocab, (seq,))
        cases.append(Case((logits, ids), label=f"a sequence of {seq} tokens"))
    return cases


@sequence_log_prob.test(
    points=1,
    hint="A single token has nothing before it to be predicted from: the sum is empty, 0.",
)
def a_single_token_scores_zero(draw: Draw) -> list[Case]:
    vocab = draw.integer(3, 12)
    ids = torch.tensor([draw.integer(0, vocab - 1)])
    return [Case((draw.randn(1, vocab), ids), label="one token")]


# ---- 01.perplexity ----------------------------------------------------------------------------

perplexity = Exercise(
    "01.perplexity",
    answer="perplexity",
    reference=perplexity_from_log_probs,
    section="The chain rule: the probability of a whole text",
)


@perplexity.variant("the log-probabilities are summed instead of averaged")
def _summed(log_probs):
    return math.exp(-float(log_probs.double().sum()))


@perplexity.variant("the sign is wrong (exp of the mean, not of minus the mean)")
def _wrong_sign(log_probs):
    return math.exp(float(log_probs.double().mean()))


@perplexity.test(
    points=1, hint="Average the log-probabilities (not the sum), negate, exponentiate."
)
def perplexity_matches_the_package(draw: Draw) -> list[Case]:
    size = draw.integer(10, 50)
    return [Case((-draw.rand(size) * 5,), label=f"perplexity of {size} tokens")]


@perplexity.test(
    points=1,
    hint="A uniform choice among k tokens has log-probability log(1/k) for every token.",
)
def uniform_choice_among_k_tokens(draw: Draw) -> list[Case]:
    return [
        Case((torch.full((8,), math.log(1 / k)),), label=f"uniform over {k} tokens")
        for k in (2, 50_257, draw.integer(3, 1000))
    ]


# ---- 01.ranking_project -----------------------------------------------------------------------
# A language model as a judge of text: score lines of held-out plays and three damaged copies of
# each (words shuffled, two pairs of neighbouring words swapped, letters swapped inside words);
# the original must score highest. The model is the course's tiny GPT (characters, 4 layers);
# which line of each group is the original stays in the grader.
# Calibration (seeds 1-3, loaded machine): summed log-probabilities pick the original in
# 0.85-0.90 of 40 groups (binomial spread about 0.05); the mean over characters the same on these
# equal-length copies; scores that tie count as wrong, so a constant scores 0, a random one 0.25.

RANKING_GROUPS = 40
RANKING_MIN_ACCURACY = 0.7


def tiny_gpt_model() -> torch.nn.Module:
    """The course's pretrained tiny GPT (characters of Shakespeare), in eval mode."""
    from llmcourse.train.tiny_gpt import pretrained_tiny_gpt

    return pretrained_tiny_gpt().model.eval()


def tiny_gpt_tokenizer():
    """The tiny GPT's character tokenizer."""
    from llmcourse.train.tiny_gpt import pretrained_tiny_gpt

    return pretrained_tiny_gpt().tokenizer


def _damaged(line: str, rng) -> list[str]:
    words = line.split(" ")
    shuffled = words[:]
    while shuffled == words:
        rng.shuffle(shuffled)
    swapped = words[:]
    for position in rng.sample(range(len(words) - 1), 2):  # two neighbouring pairs change places
        swapped[position], swapped[position + 1] = swapped[position + 1], swapped[position]
    if swapped == words:
        swapped = shuffled[::-1]
    typos = list(line)
    for _ in range(max(2, len(line) // 12)):
        i = rng.randrange(len(typos) - 1)
        typos[i], typos[i + 1] = typos[i + 1], typos[i]
    return [" ".join(shuffled), " ".join(swapped), "".join(typos)]


def ranking_groups(seed: int) -> tuple[list[str], list[int]]:
    """``RANKING_GROUPS`` groups of four lines of the held-out plays (one original, three damaged
    copies, in a seeded order), flattened, and where each group's original is."""
    import random

    rng = random.Random(seed)
    lines = [
        line.strip()
        for line in pretrained_val_text().split("\n")
        if 30 <= len(line.strip()) <= 70 and len(line.split()) >= 6
    ]
    sentences, originals = [], []
    for _ in range(RANKING_GROUPS):
        line = rng.choice(lines)
        group = [line, *_damaged(line, rng)]
        order = list(range(4))
        rng.shuffle(order)
        sentences.extend(group[i] for i in order)
        originals.append(order.index(0))
    return sentences, originals


def pretrained_val_text() -> str:
    from llmcourse import pretrained

    return pretrained.shakespeare("val")


def _picks_the_originals(scores, case: Case) -> Measurement:
    originals = case.hidden
    if not isinstance(scores, (list, tuple, torch.Tensor)) or len(scores) != 4 * len(originals):
        raise AssertionError(
            f"sentence_log_probs should return one number per sentence ({4 * len(originals)}), "
            f"got {scores!r:.80}."
        )
    values = [float(s) for s in scores]
    if any(math.isnan(v) or v > 1e-6 for v in values):
        raise AssertionError("a log-probability is a number ≤ 0 (and never nan).")
    right = 0
    for group, original in enumerate(originals):
        chunk = values[4 * group : 4 * group + 4]
        right += max(range(4), key=chunk.__getitem__) == original and chunk.count(max(chunk)) == 1
    return Measurement(
        "share of groups where the original line scores highest",
        right / len(originals),
        RANKING_MIN_ACCURACY,
    )


ranking_project = Exercise(
    "01.ranking_project",
    answer="sentence_log_probs",
    forbid=["llmcourse.eval.token_log_probs", "llmcourse.eval.perplexity"],
    section="The chain rule: the probability of a whole text",
)


@ranking_project.test(
    points=3,
    hint="Encode '\\n' + sentence, run the model once, take the log-softmax of each row and pick "
    "the log-probability of the character that actually comes next; sum them per sentence.",
    measure=_picks_the_originals,
    timeout=30.0,
)
def originals_score_highest(draw: Draw) -> list[Case]:
    sentences, originals = ranking_groups(draw.integer(0, 2**31))
    model = Make("llmcourse.grading.exercises.lesson_01:tiny_gpt_model")
    tokenizer = Make("llmcourse.grading.exercises.lesson_01:tiny_gpt_tokenizer")
    return [
        Case(
            (model, tokenizer, sentences),
            label=f"{RANKING_GROUPS} groups of a held-out line and three damaged copies",
            hidden=originals,
        )
    ]
