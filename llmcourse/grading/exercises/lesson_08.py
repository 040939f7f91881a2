"""Exercises of lesson 08 (fine-tuning): each compares the learner's function with the
package's own in ``llmcourse.train`` and ``llmcourse.data.instructions``. The LoRA layer is a
class: a probe builds one around a given linear layer, loads given adapter weights, and reports
its shapes, its outputs and its weight after merging."""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.data.instructions import ALPACA
from llmcourse.grading.compare import exact
from llmcourse.grading.spec import Case, Draw, Exercise
from llmcourse.train.distill import distillation_loss as reference_distillation_loss
from llmcourse.train.lora import LoRALinear as ReferenceLoRA
from llmcourse.train.sft import sft_labels as reference_sft_labels

# ---- 08.label_mask ------------------------------------------------------------------------------

label_mask = Exercise(
    "08.label_mask",
    answer="sft_labels",
    reference=reference_sft_labels,
    compare=exact(names=("input_ids", "labels")),
    section="Supervised fine-tuning: loss on the response only",
)


@label_mask.variant("the response is masked instead of the prompt")
def _response_masked(prompt_ids, response_ids):
    return list(prompt_ids) + list(response_ids), list(prompt_ids) + [-100] * len(response_ids)


@label_mask.test(
    points=2,
    hint="input_ids are the prompt followed by the response; the labels are -100 for every "
    "prompt token, then the response. Return both as lists.",
)
def label_mask_matches(draw: Draw) -> list[Case]:
    cases = [([1, 2, 3], [4, 5]), ([], [7]), ([9], [])]
    cases += [
        ([draw.integer(0, 99) for _ in range(draw.integer(0, 5))],
         [draw.integer(0, 99) for _ in range(draw.integer(0, 5))])
        for _ in range(20)
    ]  # fmt: skip
    return [Case(pair, label=f"prompt {pair[0]}, response {pair[1]}") for pair in cases]


# ---- 08.prompt_template -------------------------------------------------------------------------


def _reference_prompt(instruction: str, input: str = "") -> str:
    if not instruction:
        raise ValueError("The instruction must not be empty.")
    return ALPACA.format_prompt({"instruction": instruction, "input": input})


prompt_template = Exercise(
    "08.prompt_template",
    answer="alpaca_prompt",
    reference=_reference_prompt,
    forbid=["llmcourse.data.instructions.ALPACA", "llmcourse.data.instructions.PromptTemplate"],
    compare=exact(),
    section="Instruction data from the plays",
)


@prompt_template.variant("the Input section is kept even when the input is empty")
def _always_input(instruction, input=""):
    if not instruction:
        raise ValueError("empty")
    return f"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


@prompt_template.test(
    points=2,
    hint="An Instruction section, an Input section only when the input is not empty, then the "
    "Response header, separated by blank lines; an empty instruction raises ValueError.",
)
def prompt_template_matches(draw: Draw) -> list[Case]:
    pairs = [("Who speaks?", "?: Hail!"), ("Name a play.", ""), ("a", "b\nc")]
    pairs.append(
        (draw.choice(["Translate.", "Summarise.", "Answer."]), draw.choice(["", "Thou art."]))
    )
    cases = [Case(pair, label=f"instruction {pair[0]!r}, input {pair[1]!r}") for pair in pairs]
    cases.append(Case(("", draw.choice(["x", ""])), label="an empty instruction"))
    return cases


# ---- 08.lora_layer ------------------------------------------------------------------------------

lora_layer = Exercise(
    "08.lora_layer",
    answer="LoRALinear",
    reference=ReferenceLoRA,
    forbid=["llmcourse.train.lora", "peft"],
    kind="class",
    section="LoRA on SmolLM2, from scratch",
)


def _lora(cls, weight, bias, lora_a, lora_b, r, alpha):
    base = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        base.weight.copy_(weight)
        base.bias.copy_(bias)
    layer = cls(base, r=r, alpha=alpha)
    fresh = {
        "lora_A shape": list(layer.lora_A.shape),
        "lora_B shape": list(layer.lora_B.shape),
        "lora_B at start": layer.lora_B.detach().clone(),
        "base weight trainable": bool(layer.base.weight.requires_grad),
    }
    with torch.no_grad():
        layer.lora_A.copy_(lora_a)
        layer.lora_B.copy_(lora_b)
    return layer, fresh


def _forward(cls, weight, bias, lora_a, lora_b, r, alpha, x):
    layer, observed = _lora(cls, weight, bias, lora_a, lora_b, r, alpha)
    return {**observed, "forward": layer(x).detach()}


def _merge(cls, weight, bias, lora_a, lora_b, r, alpha, x):
    layer, _ = _lora(cls, weight, bias, lora_a, lora_b, r, alpha)
    layer.merge()
    return {
        "merged weight": layer.base.weight.detach().clone(),
        "forward after merge": layer(x).detach(),
    }


def _lora_case(draw: Draw, r: int, alpha: float) -> Case:
    weight, bias = draw.randn(7, 12) * 0.3, draw.randn(7) * 0.1
    args = (weight, bias, draw.randn(r, 12), draw.randn(7, r), r, alpha, draw.randn(5, 12))
    return Case(args, label=f"LoRALinear(r={r}, alpha={alpha:g})")


@lora_layer.variant("the update is not scaled by alpha / r")
class _Unscaled(ReferenceLoRA):
    def __init__(self, base, r=8, alpha=16.0, dropout=0.0):
        super().__init__(base, r=r, alpha=alpha, dropout=dropout)
        self.scaling = 1.0


@lora_layer.test(
    points=2,
    hint="forward = base(x) plus x through A then B, scaled by alpha / r; A is (r, in), B is "
    "(out, r) and starts at zero; the base weight is frozen (requires_grad False).",
    probe=_forward,
)
def lora_forward_matches(draw: Draw) -> list[Case]:
    return [
        _lora_case(draw, r, alpha) for r, alpha in [(1, 1.0), (4, 8.0), (draw.integer(2, 6), 16.0)]
    ]


@lora_layer.test(
    points=2,
    hint="merge() adds the scaled update B·A to the base weight once, without tracking "
    "gradients, and remembers it so that forward no longer adds the adapter.",
    probe=_merge,
)
def lora_merge_matches(draw: Draw) -> list[Case]:
    return [_lora_case(draw, draw.integer(2, 6), draw.choice([4.0, 8.0, 16.0]))]


# ---- 08.distillation_loss -----------------------------------------------------------------------

distillation_loss = Exercise(
    "08.distillation_loss",
    answer="distillation_loss",
    reference=reference_distillation_loss,
    section="Distillation",
)


@distillation_loss.variant("the soft term is not multiplied by T²")
def _without_t_squared(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5):
    full = reference_distillation_loss(student_logits, teacher_logits, labels, temperature, 1.0)
    hard = reference_distillation_loss(student_logits, teacher_logits, labels, temperature, 0.0)
    return alpha * full / temperature**2 + (1 - alpha) * hard


@distillation_loss.test(
    points=3,
    hint="alpha · T² · KL(teacher's softened distribution ‖ student's) + (1 − alpha) · "
    "cross-entropy with the labels; average both over positions whose label is not -100.",
)
def distillation_loss_matches(draw: Draw) -> list[Case]:
    cases = []
    for temperature, alpha in [
        (1.0, 0.5),
        (2.0, 1.0),
        (4.0, 0.0),
        (round(draw.uniform(1, 5), 2), 0.3),
    ]:
        labels = draw.randint(0, 9, (4, 6))
        labels[0, : draw.integer(1, 4)] = -100
        args = (draw.randn(4, 6, 9), draw.randn(4, 6, 9), labels, temperature, alpha)
        cases.append(Case(args, label=f"T={temperature}, alpha={alpha}"))
    return cases
