"""Exercises of lesson 11 (the capstone): the chat template, GRPO's reward and the equal-compute
baseline, each compared with the package's own in ``llmcourse.capstone``."""

from __future__ import annotations

from llmcourse.capstone.chat import render_chat as reference_render_chat
from llmcourse.capstone.chat import score_reply as reference_score_reply
from llmcourse.capstone.pipeline import equal_compute_sft_steps as reference_equal_compute
from llmcourse.grading.compare import exact
from llmcourse.grading.spec import Case, Draw, Exercise

ROLES = ("user", "assistant")

# ---- 11.render_chat ---------------------------------------------------------------------------

render_chat = Exercise(
    "11.render_chat",
    answer="render_chat",
    reference=reference_render_chat,
    compare=exact(),
    section="The tokenizer and the chat format",
)


@render_chat.variant("the generation prompt <|im_start|>assistant is missing")
def _no_generation_prompt(messages, add_generation_prompt=True):
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


@render_chat.variant("no newline after <|im_end|>")
def _no_newline(messages, add_generation_prompt=True):
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def _conversation(draw: Draw, turns: int) -> list[dict[str, str]]:
    words = ("3+4=", "7", "Who speaks this line?", "Hamlet", "to be", "5+5=", "10", "hi")
    return [{"role": ROLES[i % 2], "content": draw.choice(words)} for i in range(turns)]


@render_chat.test(
    points=2,
    hint="Each turn is <|im_start|>ROLE, a newline, the content, <|im_end|> and a newline; with "
    "add_generation_prompt, end with <|im_start|>assistant and a newline.",
)
def render_chat_matches(draw: Draw) -> list[Case]:
    cases = [Case(([{"role": "user", "content": "3+4="}],), label="one question")]
    for turns in (2, 3, draw.integer(4, 7)):
        cases.append(Case((_conversation(draw, turns),), label=f"{turns} turns"))
    cases.append(Case((_conversation(draw, 2), False), label="add_generation_prompt=False"))
    return cases


# ---- 11.score_reply ---------------------------------------------------------------------------

score_reply = Exercise(
    "11.score_reply",
    answer="score_reply",
    reference=reference_score_reply,
    compare=exact(),
    section="GRPO's reward",
)


@score_reply.variant("the reply is stripped of spaces before checking")
def _stripped(prompt, reply):
    return reference_score_reply(prompt, reply.strip())


@score_reply.test(
    points=2,
    hint="Find 'a+b=' in the prompt with a regular expression, compute a + b, and give 1.0 only "
    "when the reply is exactly str(a + b); raise ValueError when the prompt holds no sum.",
)
def score_reply_matches(draw: Draw) -> list[Case]:
    cases = []
    for _ in range(4):
        a, b = draw.integer(0, 99), draw.integer(0, 99)
        prompt = f"<|im_start|>user\n{a}+{b}=<|im_end|>\n<|im_start|>assistant\n"
        for reply in (str(a + b), str(a + b + 1), f" {a + b}", f"{a + b} "):
            cases.append(Case((prompt, reply), label=f"{a}+{b}= → {reply!r}"))
    cases.append(Case(("no sum here", "7"), label="a prompt without a problem (ValueError)"))
    return cases


# ---- 11.equal_compute -------------------------------------------------------------------------

equal_compute = Exercise(
    "11.equal_compute",
    answer="equal_compute_sft_steps",
    reference=reference_equal_compute,
    compare=exact(),
    section="Equal compute",
)


@equal_compute.variant("2N per token (a forward pass) instead of 6N (forward and backward)")
def _forward_only(grpo_flops, n_params, batch_size, tokens_per_example):
    return max(1, round(grpo_flops / (2 * n_params * batch_size * tokens_per_example)))


@equal_compute.test(
    points=2,
    hint="An SFT step costs 6·N·B·T FLOPs; divide GRPO's FLOPs by it, round, and never return "
    "fewer than 1 step.",
)
def equal_compute_matches(draw: Draw) -> list[Case]:
    cases = []
    for _ in range(4):
        n, batch, tokens = draw.integer(10_000, 5_000_000), draw.integer(4, 64), draw.integer(8, 90)
        flops = 12 * n * draw.integer(1, 50) * 128 * draw.integer(8, 20)
        cases.append(Case((flops, n, batch, float(tokens)), label=f"N={n}, B={batch}, T={tokens}"))
    cases.append(Case((10.0, 1000, 8, 10.0), label="a tiny budget: at least 1 step"))
    return cases
