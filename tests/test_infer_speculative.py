"""Speculative decoding: exact greedy parity, the acceptance rule's distribution, bookkeeping."""

from __future__ import annotations

import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.infer import PromptLookup, generate
from llmcourse.infer.prompt_lookup import lookup_continuation
from llmcourse.infer.speculative import accept_draft, layer_skip_draft, speculative_generate
from llmcourse.models import DecoderLM
from llmcourse.quant import quantize

TINY_LLAMA = ModelConfig(
    vocab_size=97,
    context_length=128,
    d_model=48,
    n_layer=3,
    n_head=6,
    n_kv_head=2,
    d_ff=96,
    norm="rmsnorm",
    mlp="swiglu",
    position="rope",
    bias=False,
    tie_embeddings=False,
)


def make_model(config: ModelConfig, seed: int) -> DecoderLM:
    torch.manual_seed(seed)
    model = DecoderLM(config).eval()
    with torch.no_grad():  # peaked logits: greedy choices are not near-ties
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.fixture(scope="module")
def target():
    return make_model(TINY_LLAMA.replace(n_layer=4), seed=1)


PROMPT = torch.tensor([[4, 8, 15, 16, 23, 42]])


@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_greedy_speculative_equals_target_greedy(target, gamma):
    expected = generate(target, PROMPT, 40, temperature=0)
    for draft in (layer_skip_draft(target, [0, 3]), make_model(TINY_LLAMA, seed=9)):
        result = speculative_generate(target, draft, PROMPT, 40, num_draft_tokens=gamma)
        assert torch.equal(result.sequence, expected)
        assert result.new_tokens == 40
        assert result.target_calls <= 40
        assert result.accepted <= result.proposed


def test_a_perfect_draft_is_always_accepted(target):
    result = speculative_generate(target, target, PROMPT, 21, num_draft_tokens=4)
    assert result.acceptance_rate == 1.0
    assert result.target_calls == 5  # 4 drafted + 1 bonus per call: 5 + 5 + 5 + 5 + 1
    assert result.tokens_per_target_call == pytest.approx(21 / 5)


def test_a_quantized_draft_agrees_often_and_changes_nothing(target):
    draft = quantize(target, "int8")
    result = speculative_generate(target, draft, PROMPT, 30, num_draft_tokens=4)
    assert torch.equal(result.sequence, generate(target, PROMPT, 30, temperature=0))
    assert result.acceptance_rate > 0.5


def test_stop_token_ends_speculative_generation(target):
    greedy = generate(target, PROMPT, 20, temperature=0)
    stop = int(greedy[0, PROMPT.shape[1] + 6])
    first = greedy[0, PROMPT.shape[1] :].tolist().index(stop)
    result = speculative_generate(target, target, PROMPT, 20, stop_tokens=stop)
    assert (
        result.sequence[0, PROMPT.shape[1] :].tolist()
        == greedy[0, PROMPT.shape[1] :][: first + 1].tolist()
    )


@pytest.mark.slow
def test_acceptance_rule_reproduces_the_target_distribution():
    """Leviathan et al. 2023, Theorem 1: the emitted first token is distributed as p."""
    gen = torch.Generator().manual_seed(0)
    p = torch.tensor([[0.5, 0.2, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    q = torch.tensor([[0.1, 0.6, 0.1, 0.2]])
    counts = torch.zeros(4)
    n = 40_000
    for _ in range(n):
        draft = torch.multinomial(q[0], 1, generator=gen)
        accepted, extra = accept_draft(p, q, draft, gen)
        counts[int(draft) if accepted else extra] += 1
    frequencies = counts / n
    # 4 standard errors of a proportion near 0.5 with n = 40,000 is 0.01
    torch.testing.assert_close(frequencies, p[0], atol=0.01, rtol=0)


@pytest.mark.slow
def test_sampled_speculative_matches_target_token_frequencies(target):
    """First new token at temperature 1: frequencies under speculation match p exactly enough."""
    small = make_model(TINY_LLAMA.replace(vocab_size=6, n_layer=2), seed=5)
    draft = make_model(TINY_LLAMA.replace(vocab_size=6, n_layer=1), seed=6)
    prompt = torch.tensor([[1, 2, 3]])
    with torch.inference_mode():
        p = torch.softmax(small(prompt).logits[0, -1], -1)
    gen = torch.Generator().manual_seed(1)
    counts = torch.zeros(6)
    n = 3000
    for _ in range(n):
        out = speculative_generate(
            small, draft, prompt, 2, temperature=1.0, num_draft_tokens=1, generator=gen
        )
        counts[out.sequence[0, 3]] += 1
    torch.testing.assert_close(counts / n, p, atol=0.035, rtol=0)


def test_bad_input(target):
    other_vocab = make_model(TINY_LLAMA.replace(vocab_size=50), seed=2)
    with pytest.raises(ValueError, match="same tokenizer"):
        speculative_generate(target, other_vocab, PROMPT, 5)
    with pytest.raises(ValueError, match="batch 1"):
        speculative_generate(target, target, PROMPT.repeat(2, 1), 5)
    with pytest.raises(ValueError, match="num_draft_tokens"):
        speculative_generate(target, target, PROMPT, 5, num_draft_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        speculative_generate(target, target, PROMPT, 5, temperature=1.0, top_p=0.0)
    with pytest.raises(ValueError, match="block indices"):
        layer_skip_draft(target, [7])


@pytest.mark.slow
def test_smollm2_speculative_with_its_int4_self_equals_greedy():
    from llmcourse.models.hf import load_smollm2

    model, tokenizer = load_smollm2()
    prompt = tokenizer("Once upon a time", return_tensors="pt").input_ids
    draft = quantize(model, "int4", group_size=64)
    result = speculative_generate(model, draft, prompt, 24, num_draft_tokens=4)
    assert torch.equal(result.sequence, generate(model, prompt, 24, temperature=0))
    assert result.acceptance_rate > 0.2 and result.tokens_per_target_call > 1.2


# --------------------------------------------------------------------------------------------
# Prompt lookup: drafts copied from the text so far
# --------------------------------------------------------------------------------------------


def test_lookup_continuation_takes_the_latest_longest_match():
    assert lookup_continuation([5, 6, 7, 8, 5, 6], 3) == [7, 8, 5]
    # (1, 2) occurs twice; the latest occurrence is followed by 9, the earlier one by 3.
    assert lookup_continuation([1, 2, 3, 1, 2, 9, 4, 1, 2], 2) == [9, 4]
    # The trigram (7, 1, 2) beats the more recent bigram (1, 2).
    assert lookup_continuation([7, 1, 2, 5, 1, 2, 6, 7, 1, 2], 1, max_ngram=3) == [5]
    assert lookup_continuation([1, 2, 3, 4], 3) == []  # nothing recurs
    assert lookup_continuation([3, 1, 3], 2, min_ngram=1) == [1, 3]
    assert lookup_continuation([3, 1, 3], 2) == []  # a single token is not enough by default
    assert lookup_continuation([4, 4, 4, 4], 3) == [4]  # overlapping runs count


def test_prompt_lookup_keeps_the_greedy_output_and_drafts_on_repeats(target):
    # A prompt that repeats itself, so the continuation of its n-grams is often right.
    prompt = torch.tensor([[4, 8, 15, 16, 23, 42] * 4])
    for gamma in (1, 4, 8):
        result = speculative_generate(target, PromptLookup(), prompt, 40, num_draft_tokens=gamma)
        assert torch.equal(result.sequence, generate(target, prompt, 40, temperature=0))
        assert result.new_tokens == 40 and result.accepted <= result.proposed
        assert result.target_calls == 40 - result.accepted  # each call: accepted + 1 token
        assert result.proposed > 0  # the prompt's own repeats are drafted from


def test_prompt_lookup_sampling_keeps_the_target_distribution():
    """At temperature 1 a lookup draft is a one-hot q; the rule still yields exactly p."""
    small = make_model(TINY_LLAMA.replace(vocab_size=6, n_layer=2), seed=5)
    prompt = torch.tensor([[1, 2, 3, 1, 2]])  # (1, 2) recurs: lookup proposes 3
    with torch.inference_mode():
        p = torch.softmax(small(prompt).logits[0, -1], -1)
    gen = torch.Generator().manual_seed(1)
    counts = torch.zeros(6)
    n = 1500
    for _ in range(n):
        out = speculative_generate(
            small, PromptLookup(), prompt, 2, temperature=1.0, num_draft_tokens=1, generator=gen
        )
        assert out.proposed == 1
        counts[out.sequence[0, 5]] += 1
    # 4 standard errors of a proportion near 0.5 with n = 1500 is ~0.052
    torch.testing.assert_close(counts / n, p, atol=0.05, rtol=0)


def test_prompt_lookup_bad_input(target):
    with pytest.raises(ValueError, match="min_ngram"):
        PromptLookup(max_ngram=2, min_ngram=3)
    with pytest.raises(ValueError, match="max_ngram"):
        PromptLookup(max_ngram=0)
    with pytest.raises(ValueError, match="num_tokens"):
        lookup_continuation([1, 2, 1, 2], -1)
    with pytest.raises(TypeError, match="PromptLookup"):
        speculative_generate(target, "draft", PROMPT, 5)


@pytest.mark.slow
def test_smollm2_prompt_lookup_on_a_copying_task_saves_target_calls():
    from llmcourse.models.hf import load_smollm2

    model, tokenizer = load_smollm2()
    code = "def area(width, height):\n    return width * height\n"
    messages = [{"role": "user", "content": "Repeat this code exactly:\n\n" + code}]
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    result = speculative_generate(model, PromptLookup(), prompt, 24, num_draft_tokens=6)
    assert torch.equal(result.sequence, generate(model, prompt, 24, temperature=0))
    # Copying: most rounds accept several drafted tokens, so far fewer target calls.
    assert result.acceptance_rate > 0.4 and result.tokens_per_target_call > 1.5
