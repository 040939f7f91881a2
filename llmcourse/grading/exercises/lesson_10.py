"""Exercise tests of lesson 10 (SOTA models, serving, quantization): each compares the learner's
function with the package's own on random and edge-case inputs."""

from __future__ import annotations

import torch

from llmcourse.config import ModelConfig
from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.infer import generate, top_p_filter
from llmcourse.models import DecoderLM, zoo
from llmcourse.models.counting import kv_cache_bytes
from llmcourse.nn import KVCache
from llmcourse.quant import absmax_dequantize, absmax_quantize, group_quantize

# ---- 10.kv_cache_update ----------------------------------------------------------------------


def _kv(new: int, batch: int = 2, heads: int = 3, dim: int = 4):
    return torch.randn(batch, heads, new, dim), torch.randn(batch, heads, new, dim)


@exercise_test(
    "10.kv_cache_update",
    points=2,
    hint="A layer seen for the first time (layer_index == len(cache.keys)) appends k and v to "
    "the lists; later calls replace cache.keys[layer_index] by torch.cat((old, k), dim=-2) "
    "(dim -2 is the sequence axis). Return cache.keys[layer_index], cache.values[layer_index].",
)
def kv_cache_update_matches_the_package(ns: Namespace) -> None:
    update = ns.function("kv_cache_update")
    mine, reference = KVCache(), KVCache()
    for step, new in enumerate([5, 1, 1, 3]):
        for layer in range(3):
            k, v = _kv(new)
            got_k, got_v = update(mine, layer, k, v)
            want_k, want_v = reference.update(layer, k, v)
            what = f"step {step}, layer {layer}"
            assert_close(got_k, want_k, what=f"{what}: returned keys")
            assert_close(got_v, want_v, what=f"{what}: returned values")
    assert mine.seq_len == reference.seq_len == 10, (
        f"After 5 + 1 + 1 + 3 positions the cache should hold 10, it holds {mine.seq_len}."
    )


@exercise_test(
    "10.kv_cache_update",
    points=1,
    hint="Inside the model, the cache must give the same greedy tokens as recomputing everything:"
    " check that you concatenate along the sequence axis (dim=-2), not the head axis.",
)
def kv_cache_update_drives_generation(ns: Namespace) -> None:
    update = ns.function("kv_cache_update")

    class LearnerCache(KVCache):
        def update(self, layer_index, k, v):
            return update(self, layer_index, k, v)

    config = ModelConfig(
        vocab_size=50, context_length=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2,
        norm="rmsnorm", mlp="swiglu", position="rope", bias=False,
    )  # fmt: skip
    model = DecoderLM(config).eval()
    prompt = torch.tensor([[3, 14, 15, 9]])
    expected = generate(model, prompt, 12, temperature=0, use_cache=False)
    with torch.inference_mode():
        cache = LearnerCache()
        tokens = prompt
        logits = model(prompt, kv_cache=cache).logits[:, -1]
        for _ in range(12):
            token = logits.argmax(-1, keepdim=True)
            tokens = torch.cat((tokens, token), 1)
            logits = model(token, kv_cache=cache).logits[:, -1]
    assert torch.equal(tokens, expected), (
        f"Greedy tokens with your cache {tokens[0, 4:].tolist()} differ from recomputing "
        f"everything {expected[0, 4:].tolist()}."
    )


# ---- 10.top_p ----------------------------------------------------------------------------------


@exercise_test(
    "10.top_p",
    points=2,
    hint="Sort descending, softmax, cumsum; a token is removed when the probability mass of the "
    "tokens *before* it is already >= p (so the token that crosses p stays). Scatter the mask "
    "back to the original order and fill removed logits with -inf.",
)
def top_p_matches_the_package(ns: Namespace) -> None:
    top_p = ns.function("top_p_filter")
    for p in (0.1, 0.5, 0.9, 0.99):
        logits = torch.randn(4, 30) * 2
        got, want = top_p(logits.clone(), p), top_p_filter(logits, p)
        removed_got, removed_want = torch.isinf(got), torch.isinf(want)
        assert torch.equal(removed_got, removed_want), (
            f"p={p}: you kept {int((~removed_got).sum())} tokens, the package keeps "
            f"{int((~removed_want).sum())}."
        )
        assert_close(got[~removed_got], want[~removed_want], what=f"p={p}: kept logits")


@exercise_test(
    "10.top_p",
    points=1,
    hint="Edge cases: p = 1.0 keeps every token, and the most likely token is always kept even "
    "when its own probability exceeds p.",
)
def top_p_edge_cases(ns: Namespace) -> None:
    top_p = ns.function("top_p_filter")
    logits = torch.tensor([[5.0, 1.0, 0.5, 0.0]])
    assert int((~torch.isinf(top_p(logits.clone(), 0.5))).sum()) == 1, "Keep only the top token."
    assert not torch.isinf(top_p(logits.clone(), 1.0)).any(), "p = 1.0 must keep every token."


# ---- 10.int8_absmax ----------------------------------------------------------------------------


@exercise_test(
    "10.int8_absmax",
    points=2,
    hint="scale = x.abs().max() / 127; q = round(x / scale) clamped to [-127, 127], as "
    "torch.int8; dequantize: q.float() * scale.",
)
def int8_absmax_matches_the_package(ns: Namespace) -> None:
    quantize, dequantize = ns.function("int8_quantize"), ns.function("int8_dequantize")
    for x in (torch.randn(8, 16), torch.randn(100) * 50, torch.tensor([-3.0, 0.0, 1.5])):
        q, scale = quantize(x)
        want_q, want_scale = absmax_quantize(x, bits=8)
        assert q.dtype == torch.int8, f"q must be torch.int8, got {q.dtype}."
        assert torch.equal(q, want_q), "The integer codes differ from the package's."
        assert_close(scale, want_scale, what="scale")
        assert_close(dequantize(q, scale), absmax_dequantize(want_q, want_scale), what="x̂")


# ---- 10.int4_groups ----------------------------------------------------------------------------


@exercise_test(
    "10.int4_groups",
    points=2,
    hint="Reshape w (out, in) to (out, in // group_size, group_size); scale = amax over the last "
    "dim / 7; q = round(w / scale) clamped to [-7, 7] as int8; return q reshaped to (out, in) "
    "and scale (out, in // group_size).",
)
def int4_groups_match_the_package(ns: Namespace) -> None:
    quantize = ns.function("int4_group_quantize")
    for shape, group in (((4, 64), 16), ((8, 96), 32), ((3, 8), 8)):
        w = torch.randn(*shape)
        q, scale = quantize(w, group)
        want_q, want_scale = group_quantize(w, bits=4, group_size=group)
        assert tuple(q.shape) == shape, f"q should be {shape}, got {tuple(q.shape)}."
        assert torch.equal(q.to(torch.int8), want_q), f"{shape}, group {group}: codes differ."
        assert_close(scale, want_scale, what=f"{shape}, group {group}: scales")


# ---- 10.kv_cache_bytes -------------------------------------------------------------------------


@exercise_test(
    "10.kv_cache_bytes",
    points=2,
    hint="2 (keys and values) * n_layer * config.n_kv_head * config.head_dim * seq_len * "
    "batch_size * bytes per value (dtype.itemsize). Use n_kv_head, not n_head: GQA stores fewer.",
)
def kv_cache_bytes_matches_the_package(ns: Namespace) -> None:
    mine = ns.function("kv_cache_bytes")
    for name in ("gpt2", "llama-2-7b", "llama-2-70b", "mistral-7b", "jais-13b", "smollm2-135m"):
        config = zoo.get_config(name)
        for seq_len, batch, dtype in ((1, 1, torch.float16), (4096, 8, torch.float32)):
            got = mine(config, seq_len, batch, dtype)
            want = kv_cache_bytes(config, seq_len, batch, dtype)
            assert got == want, f"{name}, seq {seq_len}, batch {batch}, {dtype}: {got} != {want}."
