"""Exercise tests of lesson 08 (fine-tuning): each compares the learner's function with the
package's own in ``llmcourse.train`` and ``llmcourse.data.instructions``."""

from __future__ import annotations

import random

import torch

from llmcourse.data.instructions import ALPACA
from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.train.distill import distillation_loss as reference_distillation_loss
from llmcourse.train.lora import LoRALinear as ReferenceLoRA
from llmcourse.train.sft import sft_labels as reference_sft_labels

# ---- 08.label_mask ------------------------------------------------------------------------------


@exercise_test(
    "08.label_mask",
    points=2,
    hint="input_ids = prompt + response; labels = [-100] * len(prompt) + response. Return both "
    "as lists.",
)
def label_mask_matches(ns: Namespace) -> None:
    sft_labels = ns.function("sft_labels")
    rng = random.Random(0)
    cases = [([1, 2, 3], [4, 5]), ([], [7]), ([9], [])]
    cases += [
        ([rng.randrange(100) for _ in range(rng.randrange(6))],
         [rng.randrange(100) for _ in range(rng.randrange(6))])
        for _ in range(20)
    ]  # fmt: skip
    for prompt, response in cases:
        expected = reference_sft_labels(prompt, response)
        got = tuple(list(x) for x in sft_labels(prompt, response))
        assert got == expected, f"for {prompt}, {response}: expected {expected}, got {got}."


# ---- 08.prompt_template -------------------------------------------------------------------------


@exercise_test(
    "08.prompt_template",
    points=2,
    hint="'### Instruction:\\n{instruction}\\n\\n### Input:\\n{input}\\n\\n### Response:\\n', and "
    "leave out the Input section when input is empty; raise ValueError for an empty instruction.",
)
def prompt_template_matches(ns: Namespace) -> None:
    alpaca_prompt = ns.function("alpaca_prompt")
    for instruction, text in [("Who speaks?", "?: Hail!"), ("Name a play.", ""), ("a", "b\nc")]:
        expected = ALPACA.format_prompt({"instruction": instruction, "input": text})
        got = alpaca_prompt(instruction, text)
        assert got == expected, f"expected {expected!r}, got {got!r}."
    try:
        alpaca_prompt("", "x")
    except ValueError:
        return
    raise AssertionError("An empty instruction should raise ValueError.")


# ---- 08.lora_layer ------------------------------------------------------------------------------


def _pair(ns: Namespace, r: int, alpha: float):
    learner_class = ns.value("LoRALinear")
    torch.manual_seed(r)
    base = torch.nn.Linear(12, 7)
    reference = ReferenceLoRA(base, r=r, alpha=alpha)
    learner = learner_class(torch.nn.Linear(12, 7), r=r, alpha=alpha)
    with torch.no_grad():
        learner.base.weight.copy_(base.weight)
        learner.base.bias.copy_(base.bias)
        torch.nn.init.normal_(reference.lora_B)
        learner.lora_A.copy_(reference.lora_A)
        learner.lora_B.copy_(reference.lora_B)
    return learner, reference


@exercise_test(
    "08.lora_layer",
    points=2,
    hint="forward = base(x) + (x @ A.T @ B.T) * (alpha / r); A is (r, in), B is (out, r) and "
    "starts at zero; freeze the base weight (requires_grad False).",
)
def lora_forward_matches(ns: Namespace) -> None:
    for r, alpha in [(1, 1.0), (4, 8.0), (3, 16.0)]:
        learner, reference = _pair(ns, r, alpha)
        x = torch.randn(5, 12)
        assert_close(learner(x), reference(x), what=f"LoRALinear(r={r}, alpha={alpha})(x)")
        assert not learner.base.weight.requires_grad, "The base weight must be frozen."
        assert tuple(learner.lora_A.shape) == (r, 12) and tuple(learner.lora_B.shape) == (7, r)
    fresh = ns.value("LoRALinear")(torch.nn.Linear(12, 7), r=2, alpha=4.0)
    assert float(fresh.lora_B.abs().sum()) == 0.0, "B must start at zero (no change at first)."


@exercise_test(
    "08.lora_layer",
    points=2,
    hint="merge(): base.weight += (alpha / r) * B @ A under torch.no_grad(), and remember that it "
    "is merged so forward no longer adds the adapter.",
)
def lora_merge_matches(ns: Namespace) -> None:
    learner, reference = _pair(ns, 4, 8.0)
    x = torch.randn(3, 12)
    before = reference(x)
    learner.merge()
    reference.merge()
    assert_close(learner.base.weight, reference.base.weight, what="merged weight")
    assert_close(learner(x), before, what="output after merge", atol=1e-5)


# ---- 08.distillation_loss -----------------------------------------------------------------------


@exercise_test(
    "08.distillation_loss",
    points=3,
    hint="alpha · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − alpha) · cross-entropy "
    "with the labels; average both over positions whose label is not -100.",
)
def distillation_loss_matches(ns: Namespace) -> None:
    distillation_loss = ns.function("distillation_loss")
    torch.manual_seed(0)
    for temperature, alpha in [(1.0, 0.5), (2.0, 1.0), (4.0, 0.0), (3.0, 0.3)]:
        student, teacher = torch.randn(4, 6, 9), torch.randn(4, 6, 9)
        labels = torch.randint(0, 9, (4, 6))
        labels[0, :3] = -100
        assert_close(
            distillation_loss(student, teacher, labels, temperature, alpha),
            reference_distillation_loss(student, teacher, labels, temperature, alpha),
            what=f"distillation_loss(T={temperature}, alpha={alpha})",
        )
