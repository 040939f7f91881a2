"""Lesson 10's project, a ternary tiny GPT: the grader dequantizes the codes and scales that
come back itself and scores them on held-out windows; codes that are not ternary, groups that
are too small, missing layers or misshapen tensors fail with the reason, and the naive scale
(each group's largest |w|) fails the budget with a note that says why."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.grading import spec, wire
from llmcourse.grading.exercises import lesson_10
from llmcourse.train.tiny_gpt import pretrained_tiny_gpt


def _case():
    (test,) = spec.tests_for("10.ternary_project")
    (case,) = test.draw_cases(5)
    return test, case


def _ternary(fraction: float, case, group: int = 32) -> dict:
    """Every linear weight of the case's tiny GPT, scales = fraction × each group's largest |w|."""
    model, result = lesson_10.shuffled_tiny_gpt(case.args[0]), {}
    for name, module in lesson_10._quantized_layers(model).items():
        weight = module.weight.detach()
        out_features, in_features = weight.shape
        n_groups = max(1, in_features // group)
        size = -(-in_features // n_groups)
        groups = F.pad(weight, (0, n_groups * size - in_features)).view(out_features, n_groups, -1)
        scale = groups.abs().amax(-1, keepdim=True) * fraction
        codes = torch.clamp(torch.round(groups / scale), -1, 1).reshape(out_features, -1)
        result[name] = (codes[:, :in_features].to(torch.int8), scale.squeeze(-1))
    return result


def test_the_layers_are_every_linear_weight_but_the_tied_output():
    model = pretrained_tiny_gpt().model
    names = set(lesson_10._quantized_layers(model))
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert "lm_head.weight" in linear and names == linear - {"lm_head.weight"}
    assert model.lm_head.weight is model.embed_tokens.weight


def test_dequantizing_uses_ceil_sized_groups():
    codes = torch.tensor([[1, -1, 0, 1, 1]], dtype=torch.int8)
    scales = torch.tensor([[2.0, 3.0]])  # groups of ceil(5 / 2) = 3 columns, then 2
    assert lesson_10.dequantize_ternary(codes, scales).tolist() == [[2.0, -2.0, 0.0, 3.0, 3.0]]


def test_the_naive_scale_fails_with_a_note_and_a_better_one_passes():
    test, case = _case()
    naive = test.measure(_ternary(1.0, case), case)
    assert not naive.passed and "most codes are 0" in naive.detail
    assert math.isclose(math.log2(3) + 16 / 32, 2.085, abs_tol=1e-3)
    assert "2.08 bits per weight" in naive.detail
    better = test.measure(_ternary(0.6, case), case)
    assert better.passed and better.value < naive.value


def test_malformed_answers_fail_with_a_reason():
    test, case = _case()
    good = _ternary(0.6, case)
    name = "blocks.0.attn.q_proj.weight"
    codes, scales = good[name]
    broken = {
        "-1, 0 or 1 only": {**good, name: (codes * 2, scales)},
        "at least 32": {**good, name: (codes, scales.repeat_interleave(2, dim=1))},
        "missing": {k: v for k, v in good.items() if k != name},
        "should be a tensor of the weight's": {**good, name: (codes[:, :5], scales)},
        "give a pair": {**good, name: codes},
        "NaN or infinite": {**good, name: (codes, scales * float("nan"))},
        "should return a dict": [1, 2],
    }
    for reason, answer in broken.items():
        with pytest.raises(AssertionError, match=reason):
            test.measure(answer, case)


def test_the_held_out_windows_never_leave_the_grader():
    test, case = _case()
    assert len(case.hidden) == lesson_10.PERPLEXITY_WINDOWS
    assert str(case.hidden[0]) not in wire.dumps((case.args, case.kwargs))
    (other,) = test.draw_cases(6)
    assert other.hidden != case.hidden


def test_each_run_hands_out_the_same_function_with_other_weights():
    """The MLPs' hidden units are shuffled per run: the logits stay, the weights move, so codes
    from an earlier run score nothing in this one."""
    test, case = _case()
    (other,) = test.draw_cases(6)
    first, second = (lesson_10.shuffled_tiny_gpt(c.args[0]) for c in (case, other))
    ids = torch.randint(
        0, first.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        torch.testing.assert_close(first(ids).logits, pretrained_tiny_gpt().model(ids).logits)
        torch.testing.assert_close(second(ids).logits, first(ids).logits)
    name = "blocks.0.mlp.up_proj.weight"
    assert not torch.equal(first.state_dict()[name], second.state_dict()[name])
    with pytest.raises(AssertionError, match="farther than zero is"):
        test.measure(_ternary(0.6, other), case)
