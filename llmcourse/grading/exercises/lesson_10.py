"""Exercises of lesson 10 (SOTA models, serving, quantization): each compares the learner's
function with the package's own on random and edge-case inputs. The KV-cache update changes a
cache object: a probe fills one (whose own ``update`` is switched off, so the answer must do the
work) and drives a small model's greedy decoding with it."""

from __future__ import annotations

import torch

from llmcourse.config import ModelConfig
from llmcourse.grading.compare import Mismatch, close, exact
from llmcourse.grading.spec import Case, Draw, Exercise
from llmcourse.grading.wire import Make
from llmcourse.infer import top_p_filter
from llmcourse.models import DecoderLM
from llmcourse.models.counting import kv_cache_bytes as reference_kv_cache_bytes
from llmcourse.nn import KVCache
from llmcourse.quant import absmax_dequantize, absmax_quantize, group_quantize

# ---- 10.kv_cache_update ----------------------------------------------------------------------


class _PlainCache(KVCache):
    """A cache whose own ``update`` refuses to work: the answer must fill the lists itself."""

    def update(self, layer_index, k, v):
        raise RuntimeError(
            "kv_cache_update must change cache.keys and cache.values itself, not call "
            "cache.update (the package's version of this exercise)"
        )


def _reference_update(cache, layer_index, k, v):
    return KVCache.update(cache, layer_index, k, v)


kv_cache_update = Exercise(
    "10.kv_cache_update",
    answer="kv_cache_update",
    reference=_reference_update,
    forbid=["llmcourse.nn.KVCache.update"],
    section="The KV cache, measured",
)


def _fill(update, steps):
    """Each (layer, k, v) in turn into an empty cache: what update returned, and the length."""
    cache = _PlainCache()
    returned = [update(cache, layer, k, v) for layer, k, v in steps]
    return {"returned (keys, values)": returned, "positions held": cache.seq_len}


def _greedy_tokens(update, seed, prompt, new_tokens):
    """Greedy decoding of a small random GQA model that keeps its past in the answer's cache."""

    class LearnerCache(_PlainCache):
        def update(self, layer_index, k, v):
            return update(self, layer_index, k, v)

    config = ModelConfig(
        vocab_size=50, context_length=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2,
        norm="rmsnorm", mlp="swiglu", position="rope", bias=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = DecoderLM(config).eval()
    tokens = prompt
    with torch.inference_mode():
        cache = LearnerCache()
        logits = model(prompt, kv_cache=cache).logits[:, -1]
        for _ in range(new_tokens):
            token = logits.argmax(-1, keepdim=True)
            tokens = torch.cat((tokens, token), 1)
            logits = model(token, kv_cache=cache).logits[:, -1]
    return tokens


@kv_cache_update.variant("keys and values are concatenated along the head axis, not the sequence")
def _wrong_axis(cache, layer_index, k, v):
    if layer_index == len(cache.keys):
        cache.keys.append(k)
        cache.values.append(v)
    else:
        cache.keys[layer_index] = torch.cat((cache.keys[layer_index], k), dim=1)
        cache.values[layer_index] = torch.cat((cache.values[layer_index], v), dim=1)
    return cache.keys[layer_index], cache.values[layer_index]


@kv_cache_update.test(
    points=2,
    hint="A layer seen for the first time (its index equals the number of layers stored) adds "
    "k and v to the lists; later calls replace that layer's entries by the old ones followed by "
    "the new ones along the sequence axis (dim -2). Return that layer's keys and values.",
    probe=_fill,
)
def kv_cache_update_matches_the_package(draw: Draw) -> list[Case]:
    steps = []
    for new in [5, 1, 1, draw.integer(1, 4)]:
        for layer in range(3):
            steps.append((layer, draw.randn(2, 3, new, 4), draw.randn(2, 3, new, 4)))
    return [Case((steps,), label="prompts of 5, 1, 1 and a few positions into 3 layers")]


@kv_cache_update.test(
    points=1,
    hint="Inside the model the cache must give the same greedy tokens as the package's cache: "
    "check that you concatenate along the sequence axis (dim=-2), not the head axis.",
    probe=_greedy_tokens,
    compare=exact(),
)
def kv_cache_update_drives_generation(draw: Draw) -> list[Case]:
    prompt = draw.randint(0, 50, (1, draw.integer(2, 6)))
    return [
        Case(
            (draw.integer(0, 10**6), prompt, 12),
            label=f"12 greedy tokens after {prompt.tolist()[0]}",
        )
    ]


# ---- 10.top_p ----------------------------------------------------------------------------------

top_p = Exercise(
    "10.top_p",
    answer="top_p_filter",
    reference=top_p_filter,
    forbid=["llmcourse.infer.sampling.process_logits"],
    section="Decoding: from logits to text",
)


@top_p.variant("the token that crosses p is removed too (the kept mass stays below p)")
def _crossing_removed(logits, p):
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = torch.softmax(sorted_logits, dim=-1)
    remove_sorted = probs.cumsum(dim=-1) > p
    remove_sorted[..., 0] = False
    return logits.masked_fill(remove_sorted.scatter(-1, order, remove_sorted), float("-inf"))


@top_p.test(
    points=2,
    hint="Sort the tokens by probability; a token is removed when the mass of the tokens before "
    "it is already >= p (so the one that crosses p stays). Removed logits become -inf, in the "
    "tokens' original order.",
)
def top_p_matches_the_package(draw: Draw) -> list[Case]:
    return [
        Case((draw.randn(4, 30) * 2, p), label=f"p={p}")
        for p in (0.1, 0.5, 0.9, 0.99, round(draw.uniform(0.2, 0.95), 3))
    ]


@top_p.test(
    points=1,
    hint="Edge cases: p = 1.0 keeps every token, and the most likely token is always kept even "
    "when its own probability exceeds p.",
)
def top_p_edge_cases(draw: Draw) -> list[Case]:
    peaked = torch.tensor([[5.0, 1.0, 0.5, 0.0]]) + draw.uniform(-1, 1)
    return [
        Case((peaked, 0.5), label="one token above p"),
        Case((draw.randn(2, 10), 1.0), label="p = 1.0"),
    ]


# ---- 10.int8_absmax ----------------------------------------------------------------------------


def _reference_int8(x):
    return absmax_quantize(x, bits=8)


int8_absmax = Exercise(
    "10.int8_absmax",
    answer=("int8_quantize", "int8_dequantize"),
    reference=(_reference_int8, absmax_dequantize),
    forbid=["llmcourse.quant", "torch.ao.quantization", "torch.quantize_per_tensor"],
    section="Quantization",
)


def _round_trip(quantize, dequantize, x):
    q, scale = quantize(x)
    return {"codes": q, "scale": scale, "dequantized": dequantize(q, scale)}


def _int8_codes(got, expected, case: Case) -> None:
    if isinstance(got, dict) and isinstance(got.get("codes"), torch.Tensor):
        if got["codes"].dtype != torch.int8:
            raise Mismatch(f"codes: the codes must be torch.int8, got {got['codes'].dtype}.")
        exact()(got["codes"], expected["codes"], case)
    close()(got, expected, case)


@int8_absmax.variant("the scale divides by 128 instead of 127", answer="int8_quantize")
def _scale_128(x):
    scale = x.abs().max() / 128
    return torch.clamp(torch.round(x / scale), -127, 127).to(torch.int8), scale


@int8_absmax.test(
    points=2,
    hint="scale = the largest |x| divided by 127; the codes are x / scale rounded, clamped to "
    "[-127, 127], as torch.int8; dequantizing multiplies the codes (as floats) by the scale.",
    answer=("int8_quantize", "int8_dequantize"),
    probe=_round_trip,
    compare=_int8_codes,
)
def int8_absmax_matches_the_package(draw: Draw) -> list[Case]:
    values = (
        draw.randn(8, 16),
        draw.randn(100) * 50,
        torch.tensor([-3.0, 0.0, 1.5]) * draw.uniform(0.5, 2),
    )
    return [Case((x,), label=f"x of shape {tuple(x.shape)}") for x in values]


# ---- 10.int4_groups ----------------------------------------------------------------------------


def _reference_int4(w, group_size):
    return group_quantize(w, bits=4, group_size=group_size)


int4_groups = Exercise(
    "10.int4_groups",
    answer="int4_group_quantize",
    reference=_reference_int4,
    forbid=["llmcourse.quant"],
    section="Quantization",
)


def _codes_then_scales(got, expected, case: Case) -> None:
    if not (isinstance(got, tuple) and len(got) == 2):
        raise Mismatch(f"return a pair (codes, scales), got {type(got).__name__}.")
    exact(names=("codes",))((got[0],), (expected[0],), case)
    close(names=("codes", "scales"))(got, expected, case)


@int4_groups.variant("one scale per row instead of per group", answer="int4_group_quantize")
def _per_row(w, group_size):
    q, scale = absmax_quantize(w, bits=4, dim=-1)
    return q, scale.expand(-1, w.shape[1] // group_size).contiguous()


@int4_groups.test(
    points=2,
    hint="View w (out, in) as (out, in // group_size, group_size); each group's scale is its "
    "largest |w| / 7; codes are w / scale rounded and clamped to [-7, 7] (int8), returned as "
    "(out, in) with the scales as (out, in // group_size).",
    compare=_codes_then_scales,
)
def int4_groups_match_the_package(draw: Draw) -> list[Case]:
    shapes = [
        ((4, 64), 16),
        ((8, 96), 32),
        ((3, 8), 8),
        ((draw.integer(1, 6), 16 * draw.integer(1, 4)), 16),
    ]
    return [
        Case((draw.randn(*shape), group), label=f"w {shape}, group {group}")
        for shape, group in shapes
    ]


# ---- 10.kv_cache_bytes -------------------------------------------------------------------------

kv_cache_bytes = Exercise(
    "10.kv_cache_bytes",
    answer="kv_cache_bytes",
    reference=reference_kv_cache_bytes,
    compare=exact(),
    section="What serving costs: weights and the KV cache",
)
MODELS = ("gpt2", "llama-2-7b", "llama-2-70b", "mistral-7b", "jais-13b", "smollm2-135m")


@kv_cache_bytes.variant("n_head is used instead of the key/value heads (no GQA saving)")
def _all_heads(config, seq_len, batch_size=1, dtype=torch.float16):
    return (
        2 * config.n_layer * config.n_head * config.head_dim * seq_len * batch_size * dtype.itemsize
    )


@kv_cache_bytes.test(
    points=2,
    hint="2 (keys and values) × layers × key/value heads × head size × seq_len × batch_size × "
    "bytes per value. Use the key/value heads, not n_head: GQA stores fewer.",
)
def kv_cache_bytes_matches_the_package(draw: Draw) -> list[Case]:
    cases = []
    for name in MODELS:
        config = Make("llmcourse.models.zoo:get_config", name)
        settings = [(1, 1, torch.float16), (4096, 8, torch.float32)]
        settings.append(
            (
                draw.integer(1, 32768),
                draw.integer(1, 16),
                draw.choice([torch.float16, torch.bfloat16, torch.float32]),
            )
        )
        for seq_len, batch, dtype in settings:
            cases.append(
                Case(
                    (config, seq_len, batch, dtype),
                    label=f"{name}, seq {seq_len}, batch {batch}, {dtype}",
                )
            )
    return cases
