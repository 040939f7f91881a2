"""Generation: sampling filters, KV caches (dynamic and static), batching, beam search."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.config import ModelConfig
from llmcourse.infer import (
    GenerationConfig,
    StaticKVCache,
    apply_repetition_penalty,
    decode_step,
    generate,
    merge_states,
    next_token,
    prefill,
    select_rows,
    stream,
    top_k_filter,
    top_p_filter,
)
from llmcourse.infer.beam import beam_search
from llmcourse.models import DecoderLM
from llmcourse.models.counting import kv_cache_bytes
from llmcourse.models.hf import to_hf
from llmcourse.nn import KVCache

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


def make_model(config: ModelConfig = TINY_LLAMA, seed: int = 0) -> DecoderLM:
    torch.manual_seed(seed)
    model = DecoderLM(config).eval()
    # Larger weights than GPT-2's init make the logits peaked, so greedy choices are not ties.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.fixture(scope="module")
def model() -> DecoderLM:
    return make_model()


@pytest.fixture(scope="module")
def prompt() -> torch.Tensor:
    return torch.tensor([[5, 17, 42, 8, 91, 3]])


# --------------------------------------------------------------------------------------------
# Sampling filters: parity with transformers' logits processors
# --------------------------------------------------------------------------------------------

logits_strategy = st.integers(0, 2**31 - 1).map(
    lambda seed: torch.randn(3, 50, generator=torch.Generator().manual_seed(seed)) * 3
)


@settings(max_examples=40, deadline=None)
@given(logits=logits_strategy, k=st.integers(1, 60))
def test_top_k_matches_transformers(logits, k):
    from transformers import TopKLogitsWarper

    expected = TopKLogitsWarper(top_k=k)(None, logits.clone())
    assert torch.equal(top_k_filter(logits, k), expected)


@settings(max_examples=40, deadline=None)
@given(logits=logits_strategy, p=st.floats(0.01, 1.0))
def test_top_p_matches_transformers(logits, p):
    from transformers import TopPLogitsWarper

    expected = TopPLogitsWarper(top_p=p)(None, logits.clone())
    assert torch.equal(top_p_filter(logits, p).isinf(), expected.isinf())


def test_top_p_keeps_the_token_that_crosses_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = ~top_p_filter(logits, 0.7).isinf()
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7
    assert (~top_p_filter(logits, 0.5).isinf()).sum() == 1


@settings(max_examples=30, deadline=None)
@given(logits=logits_strategy, penalty=st.floats(0.5, 3.0), seed=st.integers(0, 1000))
def test_repetition_penalty_matches_transformers(logits, penalty, seed):
    from transformers import RepetitionPenaltyLogitsProcessor

    previous = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(seed))
    expected = RepetitionPenaltyLogitsProcessor(penalty)(previous, logits.clone())
    assert torch.allclose(apply_repetition_penalty(logits, previous, penalty), expected)


def test_temperature_zero_is_argmax_and_sampling_respects_filters():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert next_token(logits, temperature=0).item() == 1
    gen = torch.Generator().manual_seed(0)
    draws = {next_token(logits, top_k=2, generator=gen).item() for _ in range(200)}
    assert draws == {1, 3}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_p": 0.0}, "top_p must be in"),
        ({"top_p": 1.5}, "top_p must be in"),
        ({"top_p": -0.2}, "top_p must be in"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ],
)
def test_bad_sampling_settings_raise(model, prompt, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(model, prompt, 3, **kwargs)


def test_max_new_tokens_beyond_context_raises(model, prompt):
    with pytest.raises(ValueError, match="exceeds the model's context of 128"):
        generate(model, prompt, 123)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0"):
        generate(model, prompt, -1)


def test_right_padding_and_wrong_inputs_raise(model, prompt):
    with pytest.raises(ValueError, match="pad on the left"):
        generate(model, prompt, 2, attention_mask=torch.tensor([[1, 1, 1, 1, 1, 0]]))
    with pytest.raises(ValueError, match="integer token ids"):
        generate(model, prompt.float(), 2)
    with pytest.raises(TypeError, match="stop_tokens"):
        generate(model, prompt, 2, stop_tokens=["eos"])
    with pytest.raises(ValueError, match="top_p"):
        stream(model, prompt, 2, top_p=2.0)  # raised at the call, before any iteration


# --------------------------------------------------------------------------------------------
# GenerationConfig: one checked object instead of a dozen keywords
# --------------------------------------------------------------------------------------------


def test_a_config_gives_what_the_keywords_give(model, prompt):
    stop = int(generate(model, prompt, 12, temperature=0)[0, prompt.shape[1] + 7])
    config = GenerationConfig(max_new_tokens=12, temperature=0, stop_tokens=stop)
    assert config.stop_tokens == (stop,) and config.pad_id == stop and config.greedy
    want = generate(model, prompt, 12, temperature=0, stop_tokens=stop)
    assert torch.equal(generate(model, prompt, config=config), want)
    streamed = torch.stack(list(stream(model, prompt, config=config)), 1)
    assert torch.equal(torch.cat([prompt, streamed], 1), want)
    sampled = config.replace(temperature=0.8, top_k=20, stop_tokens=())
    gen = torch.Generator().manual_seed(1)
    want = generate(model, prompt, 12, temperature=0.8, top_k=20, generator=gen)
    gen = torch.Generator().manual_seed(1)
    assert torch.equal(generate(model, prompt, config=sampled, generator=gen), want)


def test_config_and_keywords_together_or_neither_raise(model, prompt):
    config = GenerationConfig(max_new_tokens=4)
    with pytest.raises(TypeError, match=r"both in config and as arguments \(temperature\)"):
        generate(model, prompt, config=config, temperature=0)
    with pytest.raises(TypeError, match="max_new_tokens"):
        stream(model, prompt, 4, config=config)
    with pytest.raises(TypeError, match="Give max_new_tokens"):
        generate(model, prompt)
    with pytest.raises(TypeError, match="GenerationConfig, got ModelConfig"):
        generate(model, prompt, config=TINY_LLAMA)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"max_new_tokens": -1}, ValueError, "max_new_tokens must be >= 0"),
        ({"max_new_tokens": 2.5}, TypeError, "max_new_tokens must be an int"),
        ({"temperature": "hot"}, ValueError, "temperature must be a number"),
        ({"top_k": 0}, ValueError, "top_k must be a positive integer"),
        ({"top_p": 1.5}, ValueError, "top_p must be in"),
        ({"repetition_penalty": 0}, ValueError, "repetition_penalty must be > 0"),
        ({"stop_tokens": ["eos"]}, TypeError, "stop_tokens must be token ids"),
        ({"stop_tokens": "eos"}, TypeError, "stop_tokens must be token ids"),
        ({"pad_token_id": -2}, ValueError, "pad_token_id must be >= 0"),
        ({"use_cache": "yes"}, TypeError, "use_cache must be True or False"),
        ({"cache": "paged"}, ValueError, "cache must be 'dynamic' or 'static'"),
    ],
)
def test_bad_generation_config_names_the_field(fields, error, message):
    with pytest.raises(error, match=message):
        GenerationConfig(**fields)
    with pytest.raises(error, match=message):
        GenerationConfig().replace(**fields)


def test_generation_config_is_immutable_and_normalises_stop_tokens():
    config = GenerationConfig()
    with pytest.raises(AttributeError):
        config.temperature = 0  # type: ignore[misc]
    assert GenerationConfig(stop_tokens=[3, 4]).stop_tokens == (3, 4)
    assert GenerationConfig(stop_tokens=0).stop_tokens == (0,)  # id 0 is a token, not "none"
    assert GenerationConfig(stop_tokens=None).stop_tokens == ()


def test_stop_token_zero_stops(prompt):
    """Token id 0 is a real stop token (falsy, but not "no stop tokens")."""
    model = make_model()
    first = int(generate(model, prompt, 1, temperature=0)[0, -1])
    with torch.no_grad():  # swap output rows: the first greedy token becomes id 0
        model.lm_head.weight[[0, first]] = model.lm_head.weight[[first, 0]].clone()
    out = generate(model, prompt, 20, temperature=0, stop_tokens=0)
    assert out[0, prompt.shape[1] :].tolist() == [0]


# --------------------------------------------------------------------------------------------
# KV cache: cached and uncached logits agree; cache sizes are what counting says
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_cached_logits_match_uncached_at_every_step(model, prompt, kind):
    """Feeding one token at a time through a cache gives the full forward's logits (1e-5)."""
    sequence = generate(model, prompt, 40, temperature=0, use_cache=False)
    with torch.inference_mode():
        full = model(sequence).logits[0]
        state = prefill(model, sequence[:, : prompt.shape[1]], cache=kind, max_len=64)
        torch.testing.assert_close(state.logits[0], full[prompt.shape[1] - 1], atol=1e-5, rtol=0)
        for t in range(prompt.shape[1], sequence.shape[1]):
            state = decode_step(model, state, sequence[:, t])
            torch.testing.assert_close(state.logits[0], full[t], atol=1e-5, rtol=0)


def test_64_greedy_tokens_identical_with_and_without_cache(model, prompt):
    without = generate(model, prompt, 64, temperature=0, use_cache=False)
    dynamic = generate(model, prompt, 64, temperature=0)
    static = generate(model, prompt, 64, temperature=0, cache="static")
    assert torch.equal(dynamic, without)
    assert torch.equal(static, without)
    assert len(set(without[0, 6:].tolist())) > 5  # not one token repeated


@pytest.mark.parametrize("batch", [1, 3])
def test_cache_bytes_equal_kv_cache_bytes(model, batch):
    prompt = torch.randint(0, 97, (batch, 10))
    static = StaticKVCache(TINY_LLAMA, 50, batch)
    assert static.nbytes == kv_cache_bytes(TINY_LLAMA, 50, batch, torch.float32)
    dynamic = KVCache()
    with torch.inference_mode():
        model(prompt, kv_cache=dynamic)
        model(prompt[:, :1], kv_cache=dynamic)
    assert dynamic.nbytes == kv_cache_bytes(TINY_LLAMA, 11, batch, torch.float32)
    # GQA: 2 of 6 heads are stored, a third of a multi-head cache
    mha = TINY_LLAMA.replace(n_kv_head=None)
    assert StaticKVCache(mha, 50, batch).nbytes == 3 * static.nbytes


def test_static_cache_overflow_and_bad_sizes_raise(model):
    cache = StaticKVCache(TINY_LLAMA, 4)
    with torch.inference_mode(), pytest.raises(ValueError, match="overflows"):
        model(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="context length"):
        StaticKVCache(TINY_LLAMA, 1000)


# --------------------------------------------------------------------------------------------
# Parity with transformers' generate
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_twin(model):
    return to_hf(model)


def test_greedy_matches_transformers_generate(model, hf_twin, prompt):
    ours = generate(model, prompt, 30, temperature=0)
    theirs = hf_twin.generate(
        prompt, max_new_tokens=30, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    "settings_", [{"temperature": 0.8, "top_k": 20, "top_p": 0.9}, {"repetition_penalty": 1.3}]
)
def test_sampling_matches_transformers_generate_with_the_same_seed(
    model, hf_twin, prompt, settings_
):
    torch.manual_seed(123)
    ours = generate(model, prompt, 25, **settings_)
    torch.manual_seed(123)
    theirs = hf_twin.generate(
        prompt,
        max_new_tokens=25,
        eos_token_id=None,
        do_sample=True,
        top_k=settings_.get("top_k", 0),
        top_p=settings_.get("top_p", 1.0),
        temperature=settings_.get("temperature", 1.0),
        repetition_penalty=settings_.get("repetition_penalty", 1.0),
        pad_token_id=0,
    )
    assert torch.equal(ours, theirs)


def test_stop_tokens_match_transformers_eos(model, hf_twin, prompt):
    greedy = generate(model, prompt, 20, temperature=0)
    stop = int(greedy[0, prompt.shape[1] + 4])  # the 5th new token
    ours = generate(model, prompt, 20, temperature=0, stop_tokens=stop)
    theirs = hf_twin.generate(prompt, max_new_tokens=20, do_sample=False, eos_token_id=stop)
    assert torch.equal(ours, theirs)
    assert ours[0, -1] == stop and ours.shape[1] <= prompt.shape[1] + 5


# --------------------------------------------------------------------------------------------
# Batching: left padding, streaming, requests joining and leaving
# --------------------------------------------------------------------------------------------


def _left_pad(prompts: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@pytest.mark.parametrize("cache", ["dynamic", "static", None])
def test_left_padded_batch_matches_each_prompt_alone(model, cache):
    prompts = [[5, 17, 42, 8, 91, 3], [7, 7, 1], [60, 2, 33, 4]]
    ids, mask = _left_pad(prompts)
    batch = generate(
        model,
        ids,
        15,
        temperature=0,
        attention_mask=mask,
        use_cache=cache is not None,
        cache=cache or "dynamic",
    )
    for row, p in enumerate(prompts):
        alone = generate(model, torch.tensor([p]), 15, temperature=0)
        assert batch[row, ids.shape[1] :].tolist() == alone[0, len(p) :].tolist()


def test_finished_rows_are_padded_and_decoding_stops_when_all_finish(model):
    ids, mask = _left_pad([[5, 17, 42], [9, 9, 9, 9]])
    free = generate(model, ids, 12, temperature=0, attention_mask=mask)
    stop = int(free[0, ids.shape[1] + 1])
    out = generate(
        model, ids, 12, temperature=0, attention_mask=mask, stop_tokens=stop, pad_token_id=0
    )
    first = out[0, ids.shape[1] :].tolist()
    assert first[1] == stop and all(t == 0 for t in first[2:])


def test_stream_yields_what_generate_returns(model, prompt):
    pieces = list(stream(model, prompt, 10, temperature=0))
    assert torch.equal(
        torch.cat([prompt, torch.stack(pieces, 1)], 1), generate(model, prompt, 10, temperature=0)
    )


def test_request_joining_between_steps_gets_its_solo_tokens(model):
    """Continuous batching: a request prefilled later merges into a running batch."""
    first, second = torch.tensor([[5, 17, 42, 8, 91, 3]]), torch.tensor([[60, 2, 33]])
    solo_first = generate(model, first, 9, temperature=0)[0, 6:].tolist()
    solo_second = generate(model, second, 5, temperature=0)[0, 3:].tolist()
    with torch.inference_mode():
        state = prefill(model, first)
        got_first = []
        for _ in range(3):
            token = state.logits.argmax(-1)
            got_first.append(int(token))
            state = decode_step(model, state, token)
        state = merge_states([state, prefill(model, second)])
        got_second = []
        for _ in range(5):
            token = state.logits.argmax(-1)
            got_first.append(int(token[0]))
            got_second.append(int(token[1]))
            state = decode_step(model, state, token)
        state = select_rows(state, [0])  # the second request leaves
        assert state.batch_size == 1
        got_first.append(int(state.logits.argmax(-1)))
    assert got_first == solo_first[:9]
    assert got_second == solo_second


# --------------------------------------------------------------------------------------------
# Beam search
# --------------------------------------------------------------------------------------------


def test_one_beam_is_greedy(model, prompt):
    result = beam_search(model, prompt, 12, num_beams=1)
    assert torch.equal(result.sequence, generate(model, prompt, 12, temperature=0))


def test_beam_search_matches_transformers_without_stop_tokens(model, hf_twin, prompt):
    ours = beam_search(model, prompt, 10, num_beams=4)
    theirs = hf_twin.generate(
        prompt, max_new_tokens=10, num_beams=4, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    assert torch.equal(ours.sequence, theirs)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0, -0.5])
def test_wide_beam_finds_the_exact_best_sequence(alpha):
    """With more beams than prefixes, beam search is exhaustive: compare with brute force."""
    config = TINY_LLAMA.replace(vocab_size=5, n_layer=1)
    model = make_model(config, seed=3)
    prompt, stop, max_new = torch.tensor([[1, 2]]), 4, 4

    def score(tokens: tuple[int, ...]) -> float:
        ids = torch.tensor([[1, 2, *tokens]])
        with torch.inference_mode():
            logprobs = torch.log_softmax(model(ids).logits[0, 1:-1], -1)
        total = float(logprobs[torch.arange(len(tokens)), torch.tensor(tokens)].sum())
        return total / len(tokens) ** alpha

    candidates = []
    for length in range(1, max_new + 1):
        for body in itertools.product(range(4), repeat=length - 1):
            candidates.append((*body, stop))
    candidates += list(itertools.product(range(4), repeat=max_new))  # unfinished at the limit
    best = max(candidates, key=score)
    result = beam_search(
        model, prompt, max_new, num_beams=64, length_penalty=alpha, stop_tokens=stop
    )
    assert result.sequence[0, 2:].tolist() == list(best)
    assert math.isclose(result.score, score(best), rel_tol=1e-5)


def test_beam_search_bad_input(model, prompt):
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(model, prompt, 3, num_beams=0)
    with pytest.raises(ValueError, match="one prompt"):
        beam_search(model, prompt.repeat(2, 1), 3)


# --------------------------------------------------------------------------------------------
# The real model
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_cache_parity_and_greedy_tokens():
    """SmolLM2: cached logits track the full forward, and 64 greedy tokens are identical
    with a dynamic cache, a static cache and no cache."""
    from llmcourse.models.hf import load_smollm2

    model, tokenizer = load_smollm2()
    prompt = tokenizer("The quick brown fox", return_tensors="pt").input_ids
    without = generate(model, prompt, 64, temperature=0, use_cache=False)
    assert torch.equal(generate(model, prompt, 64, temperature=0), without)
    assert torch.equal(generate(model, prompt, 64, temperature=0, cache="static"), without)
    with torch.inference_mode():
        full = model(without).logits[0]
        state = prefill(model, prompt)
        worst = 0.0
        for t in range(prompt.shape[1], without.shape[1]):
            state = decode_step(model, state, without[:, t])
            worst = max(worst, float((state.logits[0] - full[t]).abs().max()))
    assert worst < 1e-3  # logits of size ~20; fp32 matmuls of different shapes round differently
