"""The cache interface: every cache class behaves the same to a model and to a decoding loop,
the sliding-window cache keeps only the window, and decoding never reads tensors back to the
host at each step."""

from __future__ import annotations

import importlib

import pytest
import torch
from host_reads import host_reads

from llmcourse.config import ModelConfig
from llmcourse.infer import (
    StaticKVCache,
    decode_step,
    generate,
    make_cache,
    merge_states,
    prefill,
    select_rows,
    trim_left,
)
from llmcourse.infer.beam import beam_search
from llmcourse.infer.speculative import layer_skip_draft, speculative_generate
from llmcourse.models import DecoderLM
from llmcourse.models.base import check_input_ids
from llmcourse.models.hf import to_hf
from llmcourse.nn import Cache, KVCache, SlidingWindowKVCache

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
WINDOW = 5
# The module, not the function that llmcourse.infer exports under the same name.
generate_module = importlib.import_module("llmcourse.infer.generate")
TINY_MISTRAL = TINY_LLAMA.replace(sliding_window=WINDOW)
TINY_GPT2 = ModelConfig(vocab_size=97, context_length=128, d_model=32, n_layer=2, n_head=4)
# Every position scheme (rope, learned, ALiBi, T5's relative bias, sinusoidal) and a window.
# (Mixture-of-experts routing is left out: it gathers each expert's tokens with torch.where.)
NO_READS_PER_STEP = {
    "llama": TINY_LLAMA,
    "mistral": TINY_MISTRAL,
    "gpt2": TINY_GPT2,
    "jais-alibi": TINY_GPT2.replace(position="alibi", mlp="swiglu"),
    "t5-relative": TINY_GPT2.replace(position="relative", norm="rmsnorm", bias=False),
    "sinusoidal": TINY_GPT2.replace(position="sinusoidal", norm_placement="post"),
}


def make_model(config: ModelConfig, seed: int = 0) -> DecoderLM:
    torch.manual_seed(seed)
    model = DecoderLM(config).eval()
    with torch.no_grad():  # peaked logits: greedy choices are not near-ties
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.fixture(scope="module")
def llama() -> DecoderLM:
    return make_model(TINY_LLAMA)


@pytest.fixture(scope="module")
def mistral() -> DecoderLM:
    return make_model(TINY_MISTRAL)


PROMPT = torch.tensor([[5, 17, 42, 8, 91, 3, 4, 9]])


# --------------------------------------------------------------------------------------------
# One interface, three classes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cache",
    [KVCache(), SlidingWindowKVCache(4), StaticKVCache(TINY_LLAMA, 8)],
    ids=["dynamic", "sliding", "static"],
)
def test_every_cache_class_implements_the_interface(cache):
    assert isinstance(cache, Cache)
    assert cache.seq_len == cache.stored_len == 0


def _filled(kind: str, model: DecoderLM, ids: torch.Tensor) -> Cache:
    cache = make_cache(model, kind, ids.shape[0], 32)
    with torch.inference_mode():
        model(ids, kv_cache=cache)
    return cache


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_pad_trim_select_and_cat_give_the_logits_of_a_fresh_cache(llama, kind):
    """Reshaping a batch between steps through the interface changes no row's next logits."""
    a, b = torch.tensor([[5, 17, 42, 8, 91]]), torch.tensor([[60, 2, 33]])
    with torch.inference_mode():
        want_a = llama(torch.tensor([[5, 17, 42, 8, 91, 7]])).logits[0, -1]
        want_b = llama(torch.tensor([[60, 2, 33, 7]])).logits[0, -1]
        first, second = _filled(kind, llama, a), _filled(kind, llama, b)
        second.pad_left(2)
        second.pad_left(1)
        second.trim_left(1)  # net: 2 padding positions
        assert second.seq_len == first.seq_len == 5
        both = type(first).cat([first, second])
        both.select_rows(torch.tensor([1, 0, 1]))  # reorder and repeat rows
        mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1] * 6, [0, 0, 1, 1, 1, 1]])
        logits = llama(torch.full((3, 1), 7), attention_mask=mask, kv_cache=both).logits[:, -1]
    torch.testing.assert_close(logits[0], want_b, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[1], want_a, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[2], want_b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_crop_rolls_back_exactly(llama, kind):
    ids = torch.tensor([[5, 17, 42, 8, 91, 3, 4]])
    with torch.inference_mode():
        want = llama(ids).logits[0, -1]
        cache = _filled(kind, llama, ids[:, :5])
        llama(torch.tensor([[60, 61]]), kv_cache=cache)  # a guess that gets rejected
        cache.crop(5)
        got = llama(ids[:, 5:], kv_cache=cache).logits[0, -1]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="crop"):
        cache.crop(99)


def test_cat_refuses_caches_of_different_lengths(llama):
    first, second = _filled("dynamic", llama, PROMPT), _filled("dynamic", llama, PROMPT[:, :3])
    with pytest.raises(ValueError, match="pad_left the shorter ones first"):
        KVCache.cat([first, second])


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_requests_joining_and_leaving_keep_their_solo_tokens(llama, kind):
    """The server's moves (merge, select, trim) through any cache class."""
    first, second = PROMPT, torch.tensor([[60, 2, 33]])
    solo_first = generate(llama, first, 9, temperature=0)[0, first.shape[1] :].tolist()
    solo_second = generate(llama, second, 5, temperature=0)[0, 3:].tolist()
    with torch.inference_mode():
        state = prefill(llama, first, cache=kind, max_len=40)
        got_first, got_second = [], []
        for _ in range(3):
            token = state.logits.argmax(-1)
            got_first.append(int(token))
            state = decode_step(llama, state, token)
        state = merge_states([state, prefill(llama, second, cache=kind, max_len=40)])
        for _ in range(4):
            token = state.logits.argmax(-1)
            got_first.append(int(token[0]))
            got_second.append(int(token[1]))
            state = decode_step(llama, state, token)
        state = select_rows(state, [1])  # the first request leaves...
        state = trim_left(state, state.width - (second.shape[1] + 4))  # ...and its columns
        state.attention_mask = None
        assert state.cache.seq_len == state.width == 7
        got_second.append(int(state.logits.argmax(-1)))
    assert got_first == solo_first[:7]
    assert got_second == solo_second


# --------------------------------------------------------------------------------------------
# Sliding window: a rolling cache that holds the window and nothing more
# --------------------------------------------------------------------------------------------


def test_sliding_window_model_gets_a_rolling_cache_and_the_window_matters(mistral):
    assert isinstance(make_cache(mistral, "dynamic"), SlidingWindowKVCache)
    assert type(make_cache(make_model(TINY_LLAMA), "dynamic")) is KVCache
    unwindowed = make_model(TINY_LLAMA)  # same weights, attention over everything
    assert not torch.equal(
        generate(mistral, PROMPT, 30, temperature=0),
        generate(unwindowed, PROMPT, 30, temperature=0),
    )


def test_rolling_cache_logits_equal_the_full_forward_with_the_window_mask(mistral):
    sequence = generate(mistral, PROMPT, 40, temperature=0, use_cache=False)
    with torch.inference_mode():
        full = mistral(sequence).logits[0]  # no cache: the window is a mask over everything
        state = prefill(mistral, PROMPT)
        assert isinstance(state.cache, SlidingWindowKVCache)
        for t in range(PROMPT.shape[1], sequence.shape[1]):
            torch.testing.assert_close(state.logits[0], full[t - 1], atol=1e-5, rtol=0)
            state = decode_step(mistral, state, sequence[:, t])
            assert state.cache.seq_len == t + 1  # positions (RoPE) keep counting...
            assert state.cache.stored_len == WINDOW - 1  # ...while only the window is held


def test_rolling_cache_memory_stops_growing_at_the_window(mistral):
    with torch.inference_mode():
        state = prefill(mistral, PROMPT[:, :2])
        held, storage = [], []
        for t in range(40):
            state = decode_step(mistral, state, torch.tensor([t + 1]))
            held.append(state.cache.nbytes)
            storage.append(
                sum(x.untyped_storage().nbytes() for x in (*state.cache.keys, *state.cache.values))
            )
    per_position = 2 * TINY_MISTRAL.n_layer * TINY_MISTRAL.n_kv_head * TINY_MISTRAL.head_dim * 4
    assert max(held) == held[-1] == (WINDOW - 1) * per_position
    assert max(storage[WINDOW:]) <= WINDOW * per_position  # during a step: window - 1 + 1 new
    full = _filled("dynamic", make_model(TINY_LLAMA), torch.zeros(1, 42, dtype=torch.long))
    assert full.nbytes == 42 * per_position  # what a growing cache holds after as many tokens


def test_sliding_window_generation_matches_transformers_mistral(mistral):
    hf = to_hf(mistral)
    assert type(hf).__name__ == "MistralForCausalLM" and hf.config.sliding_window == WINDOW
    ours = generate(mistral, PROMPT, 40, temperature=0)
    theirs = hf.generate(PROMPT, max_new_tokens=40, do_sample=False, eos_token_id=None)
    assert torch.equal(ours, theirs)
    assert torch.equal(generate(mistral, PROMPT, 40, temperature=0, cache="static"), ours)


def test_sliding_window_left_padded_batch_matches_each_prompt_alone(mistral):
    prompts = [[5, 17, 42, 8, 91, 3, 4, 9], [7, 7, 1], [60, 2, 33, 4]]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    batch = generate(mistral, ids, 20, temperature=0, attention_mask=mask)
    for row, p in enumerate(prompts):
        alone = generate(mistral, torch.tensor([p]), 20, temperature=0)
        assert batch[row, width:].tolist() == alone[0, len(p) :].tolist()


def test_sliding_window_beam_and_speculative_decoding(mistral):
    greedy = generate(mistral, PROMPT, 30, temperature=0)
    assert torch.equal(beam_search(mistral, PROMPT, 30, num_beams=1).sequence, greedy)
    draft = layer_skip_draft(mistral, [0, 2])
    for gamma in (1, 3):
        result = speculative_generate(mistral, draft, PROMPT, 30, num_draft_tokens=gamma)
        assert torch.equal(result.sequence, greedy)
        assert 0 < result.accepted < result.proposed  # rejections happened: crop was exercised


def test_rolling_cache_refuses_to_roll_back_past_what_it_dropped(mistral):
    cache = SlidingWindowKVCache(WINDOW)
    with torch.inference_mode():
        mistral(PROMPT, kv_cache=cache)
    assert cache.stored_len == WINDOW - 1
    with pytest.raises(ValueError, match="rollback >= 2"):
        cache.crop(PROMPT.shape[1] - 2)
    roomy = SlidingWindowKVCache(WINDOW, rollback=2)
    with torch.inference_mode():
        mistral(PROMPT, kv_cache=roomy)
    roomy.crop(PROMPT.shape[1] - 2)
    assert roomy.seq_len == PROMPT.shape[1] - 2


# --------------------------------------------------------------------------------------------
# No host sync per decode step
# --------------------------------------------------------------------------------------------


def test_the_probe_sees_a_host_read():
    """The counter below can fail: a value check on ids is a read it sees."""
    assert host_reads(lambda: check_input_ids(PROMPT, 97)) != []
    assert host_reads(lambda: check_input_ids(PROMPT, 97, values=False)) == []


SETTINGS = {
    "greedy": {"temperature": 0},
    "sampled": {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "repetition_penalty": 1.2},
    "static": {"temperature": 0, "cache": "static"},
}


@pytest.mark.parametrize("config", NO_READS_PER_STEP.values(), ids=NO_READS_PER_STEP.keys())
@pytest.mark.parametrize("name", list(SETTINGS))
def test_generate_reads_nothing_back_per_step(config, name):
    model = make_model(config)
    ids = torch.tensor([[0, 0, 5, 17, 42], [1, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    settings = SETTINGS[name]

    def run(n: int) -> None:
        gen = torch.Generator().manual_seed(0)
        generate(model, ids, n, attention_mask=mask, generator=gen, **settings)

    short, long = host_reads(lambda: run(3)), host_reads(lambda: run(30))
    assert long == short, f"27 more steps made {len(long) - len(short)} more host reads"


def test_stop_checks_are_read_every_few_steps_on_an_accelerator(llama, monkeypatch):
    """Stop tokens need "has every row finished?" on the host; on an accelerator that is read
    every STOP_CHECK_EVERY steps, and the output is still cut where the last row stopped."""
    ids = torch.cat([PROMPT, torch.tensor([[60, 2, 33, 4, 8, 15, 16, 23]])])
    greedy = generate(llama, ids, 30, temperature=0)
    stop = int(greedy[0, PROMPT.shape[1] + 10])
    on_cpu = generate(llama, ids, 30, temperature=0, stop_tokens=stop)
    monkeypatch.setattr(generate_module, "_stop_check_every", lambda device: 8)
    assert torch.equal(generate(llama, ids, 30, temperature=0, stop_tokens=stop), on_cpu)
    never = next(t for t in range(97) if t not in greedy[:, PROMPT.shape[1] :])

    def run(n: int) -> None:
        generate(llama, ids, n, temperature=0, stop_tokens=never)

    extra = len(host_reads(lambda: run(48))) - len(host_reads(lambda: run(8)))
    assert extra == 40 // 8


def test_cached_forward_does_not_read_ids_back(llama):
    cache = KVCache()
    with torch.inference_mode():
        llama(PROMPT, kv_cache=cache)
        assert host_reads(lambda: llama(torch.tensor([[3]]), kv_cache=cache)) == []
    with pytest.raises(ValueError, match=r"outside 0\.\.96"):
        llama(torch.tensor([[97]]))  # the prompt (an empty cache) is still checked
