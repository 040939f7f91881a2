"""Quantization: round trips, parity with torch's quantized tensors, layer SQNR and storage."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.quant import (
    Int4Embedding,
    Int4Linear,
    Int8Embedding,
    Int8Linear,
    LLMInt8Linear,
    absmax_dequantize,
    absmax_quantize,
    decode_weight_bytes,
    group_dequantize,
    group_minmax_dequantize,
    group_minmax_quantize,
    group_quantize,
    int8_matmul,
    kernels,
    model_bytes,
    output_sqnr,
    pack_int4,
    quantize,
    sqnr,
    unpack_int4,
    weight_sqnr,
    zeropoint_dequantize,
    zeropoint_quantize,
)
from llmcourse.quant.awq import fake_quantize_int4, search_scale
from llmcourse.quant.linear import INT8_KERNEL_MAX_ROWS

seeds = st.integers(0, 2**31 - 1)


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


# --------------------------------------------------------------------------------------------
# Tensor quantization
# --------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=seeds, bits=st.integers(2, 8), per_channel=st.booleans())
def test_absmax_round_trip_error_is_at_most_half_a_step(seed, bits, per_channel):
    x = randn(16, 24, seed=seed, scale=3.0)
    q, scale = absmax_quantize(x, bits, dim=-1 if per_channel else None)
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 2 ** (bits - 1) - 1
    error = (absmax_dequantize(q, scale) - x).abs()
    assert bool((error <= scale / 2 + 1e-6).all())


@settings(max_examples=30, deadline=None)
@given(seed=seeds, bits=st.integers(2, 8), shift=st.floats(-3, 3))
def test_zeropoint_round_trip_and_exact_zero(seed, bits, shift):
    x = randn(10, 12, seed=seed) + shift
    q, scale, zero = zeropoint_quantize(x, bits, dim=-1)
    assert q.dtype == torch.uint8 and int(q.max()) <= 2**bits - 1
    assert bool(((zeropoint_dequantize(q, scale, zero) - x).abs() <= scale / 2 + 1e-6).all())
    q0, s0, z0 = zeropoint_quantize(torch.zeros(1), bits)
    assert float(zeropoint_dequantize(q0, s0, z0)) == 0.0


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_absmax_matches_torch_quantize_per_channel():
    """Independent peer: PyTorch's own quantized tensors, given the same scales."""
    w = randn(32, 64, seed=1)
    q, scale = absmax_quantize(w, 8, dim=-1)
    peer = torch.quantize_per_channel(
        w, scale.squeeze(1).double(), torch.zeros(32, dtype=torch.long), 0, torch.qint8
    )
    assert torch.equal(q, peer.int_repr())


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_zeropoint_matches_torch_quantize_per_tensor():
    x = randn(200, seed=2) + 0.7
    q, scale, zero = zeropoint_quantize(x, 8)
    peer = torch.quantize_per_tensor(x, float(scale), int(zero), torch.quint8)
    assert torch.equal(q, peer.int_repr())


def test_finer_granularity_means_less_error():
    w = randn(64, 256, seed=3)
    w[0, 0] = 40.0  # one outlier
    per_tensor = sqnr(w, absmax_dequantize(*absmax_quantize(w, 4)))
    per_channel = sqnr(w, absmax_dequantize(*absmax_quantize(w, 4, dim=-1)))
    per_group = sqnr(w, group_dequantize(*group_quantize(w, 4, 32)))
    assert per_tensor < per_channel < per_group


@settings(max_examples=30, deadline=None)
@given(seed=seeds, columns=st.integers(1, 20))
def test_int4_pack_round_trip(seed, columns):
    q = torch.randint(
        -8, 8, (5, 2 * columns), generator=torch.Generator().manual_seed(seed), dtype=torch.int8
    )
    packed = pack_int4(q)
    assert packed.dtype == torch.uint8 and packed.shape == (5, columns)
    assert torch.equal(unpack_int4(packed), q)


def test_group_minmax_is_lossless_on_a_4bit_grid():
    """Weights already on a per-group 16-level grid (llama.cpp Q4_1) come back exactly."""
    levels = torch.randint(0, 16, (8, 64), generator=torch.Generator().manual_seed(4)).float()
    levels[:, ::32] = 0
    levels[:, 1::32] = 15
    w = levels * 0.125 - 1.0
    q, scale, minimum = group_minmax_quantize(w, 4, 32)
    assert torch.equal(group_minmax_dequantize(q, scale, minimum), w)


def test_sqnr_definition():
    ref = torch.tensor([3.0, 4.0])
    assert sqnr(ref, ref + torch.tensor([0.5, 0.0])) == pytest.approx(
        10 * torch.log10(torch.tensor(25 / 0.25)).item()
    )
    assert sqnr(ref, ref) == float("inf")
    with pytest.raises(ValueError, match="equal shapes"):
        sqnr(ref, ref[:1])


def test_bad_tensor_arguments():
    with pytest.raises(ValueError, match="bits"):
        absmax_quantize(torch.ones(3), bits=1)
    with pytest.raises(ValueError, match=r"not divisible by group_size=64"):
        group_quantize(torch.ones(4, 100), 4, 64)
    with pytest.raises(ValueError, match="\\[-8, 7\\]"):
        pack_int4(torch.tensor([9, 0], dtype=torch.int8))


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(1024, 512)


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return randn(64, 1024, seed=5)


def test_int8_weight_only_sqnr_at_least_40db(linear, inputs):
    layer = Int8Linear(linear)
    with torch.no_grad():
        assert sqnr(linear(inputs), layer(inputs)) >= 40.0
        assert sqnr(linear.weight, layer.dequantized_weight()) >= 40.0


@pytest.mark.parametrize("symmetric", [True, False])
def test_int4_group64_sqnr_at_least_15db(linear, inputs, symmetric):
    layer = Int4Linear(linear, group_size=64, symmetric=symmetric)
    with torch.no_grad():
        assert sqnr(linear(inputs), layer(inputs)) >= 15.0


def test_layers_really_store_fewer_bytes(linear):
    fp32 = linear.weight.numel() * 4
    int8 = Int8Linear(linear)
    int4 = Int4Linear(linear, group_size=64)
    weight_bytes = lambda m: sum(
        b.numel() * b.element_size() for n, b in m.state_dict().items() if n != "bias"
    )
    assert weight_bytes(int8) == fp32 // 4 + 512 * 4  # 1 byte per weight + fp32 row scales
    assert weight_bytes(int4) == fp32 // 8 + 512 * (1024 // 64) * 2  # half a byte + fp16 scales
    assert int4.packed.dtype == torch.uint8 and int4.packed.shape == (512, 512)
    # On the packed path the kernel's bf16 (scale, zero) pairs add 32/g bits per weight.
    extra = 512 * (1024 // 64) * 2 * 2 if int4.layout != "nibbles" else 0
    assert model_bytes(int4) == weight_bytes(int4) + extra + 512 * 4  # + the fp32 bias


# --------------------------------------------------------------------------------------------
# Packed kernels against the readable path
# --------------------------------------------------------------------------------------------

needs_int4_kernel = pytest.mark.skipif(
    kernels.int4_layout("cpu") is None, reason="this torch build has no CPU int4 kernel"
)
needs_int8_kernel = pytest.mark.skipif(
    not kernels.int8_kernel("cpu"), reason="this torch build has no CPU int8 kernel"
)


@needs_int8_kernel
@pytest.mark.parametrize("rows", [1, 5, INT8_KERNEL_MAX_ROWS, INT8_KERNEL_MAX_ROWS + 1])
def test_int8_packed_kernel_equals_the_readable_path(linear, rows):
    packed, readable = Int8Linear(linear), Int8Linear(linear, kernel=False)
    assert packed.on_kernel and not readable.on_kernel
    x = randn(2, rows, 1024, seed=rows)
    with torch.inference_mode():
        fast, slow = packed(x), readable(x)
        # The kernel computes in bfloat16 (8 significant bits): the product of bf16-rounded
        # activations with the same weight, rounded once more, stays within ~50 dB.
        reference = readable(x.bfloat16().float())
    assert fast.shape == slow.shape == (2, rows, 512) and fast.dtype == torch.float32
    assert sqnr(slow, fast) > 40.0
    torch.testing.assert_close(fast, reference, atol=0.02 * float(reference.abs().max()), rtol=0)
    if rows > INT8_KERNEL_MAX_ROWS:  # long prompts take the float GEMM: bit-equal
        assert torch.equal(fast, slow)


@needs_int4_kernel
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_int4_packed_kernel_equals_the_readable_path(linear, symmetric, group_size):
    packed = Int4Linear(linear, group_size, symmetric)
    readable = Int4Linear(linear, group_size, symmetric, kernel=False)
    assert packed.layout == "cpu" and readable.layout == "nibbles"
    # Same codes and scales: the kernel layout reads back to the readable layer's weight.
    assert torch.equal(packed.codes(), readable.codes())
    assert torch.equal(packed.dequantized_weight(), readable.dequantized_weight())
    x = randn(3, 1024, seed=group_size)
    with torch.inference_mode():
        fast, slow = packed(x), readable(x)
        exact = linear(x)
    assert sqnr(slow, fast) > 40.0  # bf16 arithmetic only: far above int4's own error
    assert abs(sqnr(exact, fast) - sqnr(exact, slow)) < 0.5


@needs_int4_kernel
def test_int4_falls_back_where_the_kernel_cannot_go():
    torch.manual_seed(1)
    odd_rows = nn.Linear(64, 40)  # the CPU kernel needs out_features % 16 == 0
    layer = Int4Linear(odd_rows, group_size=32)
    assert layer.layout == "nibbles"
    tiny_groups = Int4Linear(nn.Linear(64, 32), group_size=16)  # kernels take g >= 32
    assert tiny_groups.layout == "nibbles"
    x = randn(2, 64, seed=2)
    with torch.no_grad():
        assert sqnr(odd_rows(x), layer(x)) > 15.0


@needs_int4_kernel
def test_int4_layer_survives_dtype_and_copy(linear):
    layer = Int4Linear(linear, group_size=64, symmetric=False)
    x = randn(2, 1024, seed=3)
    with torch.inference_mode():
        before = layer(x)
        half = copy.deepcopy(layer).half()  # fp16 scales; the kernel's pairs rebuilt in bf16
        assert half.kernel_scales.dtype == torch.bfloat16 and half.layout == "cpu"
        assert sqnr(before, half(x.half()).float()) > 35.0
        assert torch.equal(layer.to("cpu").codes(), half.codes())


def test_tied_int8_head_shares_its_table_with_the_embedding():
    torch.manual_seed(0)
    model = DecoderLM(TINY).eval()
    assert model.lm_head.weight is model.embed_tokens.weight
    body_only = quantize(model, "int8")
    with_head = quantize(model, "int8", skip=())
    assert isinstance(with_head.lm_head, Int8Linear)
    assert isinstance(with_head.embed_tokens, Int8Embedding)
    assert isinstance(body_only.embed_tokens, nn.Embedding)
    vocab, width = TINY.vocab_size, TINY.d_model
    # The float table (4 bytes per value) is gone; one int8 table + fp32 row scales remain
    # (+ the kernel's bf16 copy of the scales).
    scales = vocab * (4 + (2 if with_head.lm_head.on_kernel else 0))
    assert model_bytes(body_only) - model_bytes(with_head) == vocab * width * 3 - scales
    ids = torch.randint(0, vocab, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(
            with_head.embed_tokens(ids), with_head.lm_head.dequantized_weight()[ids]
        )
        assert sqnr(model(ids).logits, with_head(ids).logits) > 25.0


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("calibrated", [False, True])
def test_tied_int4_head_shares_its_codes_with_the_embedding(symmetric, calibrated):
    torch.manual_seed(0)
    model = DecoderLM(TINY).eval()
    calibration = torch.randint(0, TINY.vocab_size, (2, 16)) if calibrated else None
    body_only = quantize(model, "int4", 32, symmetric=symmetric, calibration=calibration)
    with_head = quantize(model, "int4", 32, skip=(), symmetric=symmetric, calibration=calibration)
    head = with_head.lm_head
    assert isinstance(head, Int4Linear) and isinstance(with_head.embed_tokens, Int4Embedding)
    assert (head.input_scale is not None) == calibrated
    # The float table (4 bytes per value) is replaced by the head's 4-bit codes, twice (kernel
    # layout + row nibbles): 1 byte per value, plus the head's scales.
    vocab, width = TINY.vocab_size, TINY.d_model
    saved = model_bytes(body_only) - model_bytes(with_head)
    assert vocab * width * 2.5 < saved < vocab * width * 3
    ids = torch.randint(0, vocab, (3, 7))
    with torch.no_grad():
        torch.testing.assert_close(with_head.embed_tokens(ids), head.dequantized_weight()[ids])
        assert sqnr(model(ids).logits, with_head(ids).logits) > 12.0


def test_packed_layers_take_sliced_inputs_and_follow_loaded_scales():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 64)
    for make in (lambda lin: Int8Linear(lin), lambda lin: Int4Linear(lin, group_size=32)):
        layer = make(nn.Linear(64, 32))
        with torch.inference_mode():
            # Non-contiguous activations (a slice, a transpose) work as with nn.Linear.
            torch.testing.assert_close(layer(x[:, -3:]), layer(x[:, -3:].contiguous()))
            torch.testing.assert_close(layer(x.transpose(0, 1)), layer(x).transpose(0, 1))
            other = make(nn.Linear(64, 32))
            other.load_state_dict(layer.state_dict())
            torch.testing.assert_close(other(x), layer(x))  # kernel scales rebuilt on load


def test_int8_matmul_is_exact():
    a = torch.randint(
        -127, 128, (9, 2500), dtype=torch.int8, generator=torch.Generator().manual_seed(6)
    )
    b = torch.randint(
        -127, 128, (7, 2500), dtype=torch.int8, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(int8_matmul(a, b), (a.long() @ b.long().t()).int())


def test_llm_int8_keeps_outlier_columns_precise(linear, inputs):
    x = inputs.clone()
    x[:, [3, 100, 700]] *= 40.0  # systematic outlier features, as in Dettmers et al. 2022
    with torch.no_grad():
        reference = linear(x)
        w8a8 = sqnr(reference, LLMInt8Linear(linear, threshold=None)(x))
        decomposed_layer = LLMInt8Linear(linear, threshold=6.0)
        decomposed = sqnr(reference, decomposed_layer(x))
    assert decomposed_layer.last_outlier_columns >= 3
    assert decomposed > w8a8 + 10.0


def test_w8a8_matches_the_quantized_math(linear, inputs):
    layer = LLMInt8Linear(linear, threshold=None)
    q_x, s_x = absmax_quantize(inputs, 8, dim=-1)
    expected = (q_x.double() @ layer.weight_int8.double().t()) * s_x * layer.scale.t() + linear.bias
    with torch.no_grad():
        torch.testing.assert_close(layer(inputs).double(), expected.detach(), atol=1e-4, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Whole models
# --------------------------------------------------------------------------------------------

TINY = ModelConfig(
    vocab_size=120,
    context_length=64,
    d_model=64,
    n_layer=2,
    n_head=4,
    n_kv_head=2,
    d_ff=128,
    norm="rmsnorm",
    mlp="swiglu",
    position="rope",
    bias=False,
)


@pytest.mark.parametrize("scheme", ["int8", "int4", "w8a8", "llm.int8"])
def test_quantize_swaps_every_linear_but_the_head(scheme):
    torch.manual_seed(0)
    model = DecoderLM(TINY).eval()
    quantized = quantize(model, scheme, group_size=32)
    linears = [n for n, m in quantized.named_modules() if isinstance(m, nn.Linear)]
    assert linears == ["lm_head"]
    assert all(
        isinstance(m, nn.Linear) for m in model.modules() if m.__class__.__name__ == "Linear"
    )
    assert model_bytes(quantized) < model_bytes(model)
    assert len(weight_sqnr(model, quantized)) == 2 * 7  # q, k, v, o, gate, up, down per layer
    ids = torch.randint(0, 120, (2, 16))
    with torch.no_grad():
        assert sqnr(model(ids).logits, quantized(ids).logits) > 10.0


def test_model_bytes_counts_tied_weights_once():
    model = DecoderLM(TINY)
    assert model_bytes(model) == model.num_parameters() * 4


def test_quantize_rejects_bad_schemes_and_group_sizes():
    model = DecoderLM(TINY.replace(d_model=48, n_head=4, n_kv_head=2, d_ff=96))
    with pytest.raises(ValueError, match=r"'blocks\.0\.attn\.q_proj' has in_features=48"):
        quantize(model, "int4", group_size=32)
    with pytest.raises(ValueError, match="scheme must be one of"):
        quantize(model, "int3")


def test_perplexity_matches_transformers_loss():
    """llmcourse.eval.perplexity (used for the quantization report) against HF's own loss."""
    from llmcourse.eval import perplexity
    from llmcourse.models.hf import to_hf

    torch.manual_seed(0)
    model = DecoderLM(TINY).eval()
    ids = torch.randint(0, 120, (50,))
    with torch.no_grad():
        loss = to_hf(model)(ids[None], labels=ids[None]).loss
    assert perplexity(model, ids) == pytest.approx(float(torch.exp(loss)), rel=1e-5)
    # windows of 20 with stride 10: every token after the first is scored exactly once
    assert perplexity(model, ids, block_size=20, stride=10) > 1.0
    with pytest.raises(ValueError, match="at least two tokens"):
        perplexity(model, ids[:1])


@pytest.mark.slow
def test_smollm2_int8_perplexity_within_one_percent():
    from llmcourse.eval import perplexity
    from llmcourse.models.hf import load_smollm2
    from llmcourse.pretrained import shakespeare

    model, tokenizer = load_smollm2()
    ids = tokenizer(shakespeare("val")[:6000], return_tensors="pt").input_ids[0][:512]
    fp32 = perplexity(model, ids, block_size=512)
    int8 = perplexity(quantize(model, "int8"), ids, block_size=512)
    assert abs(int8 - fp32) / fp32 < 0.01
    assert 5 < fp32 < 100  # plausible for a 135M model on Shakespeare


# --------------------------------------------------------------------------------------------
# Activation-aware scales (AWQ) and quality on a natively float model
# --------------------------------------------------------------------------------------------


def outlier_inputs(rows: int = 128, width: int = 256, seed: int = 0) -> torch.Tensor:
    """Inputs with a few channels 20x larger than the rest, as LLM activations have."""
    x = randn(rows, width, seed=seed)
    x[:, [3, 70, 200]] *= 20.0
    return x


def test_awq_scale_beats_round_to_nearest_when_channels_differ():
    weight = randn(128, 256, seed=1)
    x = outlier_inputs()
    scale, alpha = search_scale(weight, x, group_size=64)
    exact = x @ weight.t()
    rtn = x @ fake_quantize_int4(weight, 64, True).t()
    awq = (x / scale) @ fake_quantize_int4(weight * scale, 64, True).t()
    assert alpha > 0 and scale[[3, 70, 200]].min() > scale.median()  # loud channels scaled up
    assert sqnr(exact, awq) > sqnr(exact, rtn) + 1.0  # dB, measured ~+4
    # Uniform inputs: nothing to gain, and α = 0 (plain rounding) is in the grid.
    flat_scale, _ = search_scale(weight, randn(128, 256, seed=2), group_size=64)
    flat = (x / flat_scale) @ fake_quantize_int4(weight * flat_scale, 64, True).t()
    assert sqnr(exact, flat) > sqnr(exact, rtn) - 1.0


@pytest.mark.parametrize("symmetric", [True, False])
def test_int4_layer_with_input_scale_computes_the_scaled_product(symmetric):
    torch.manual_seed(3)
    linear = nn.Linear(256, 128)
    x = outlier_inputs(seed=4)
    scale, _ = search_scale(linear.weight, x, group_size=64, symmetric=symmetric)
    layer = Int4Linear(linear, 64, symmetric, input_scale=scale)
    readable = Int4Linear(linear, 64, symmetric, kernel=False, input_scale=scale)
    expected = fake_quantize_int4(linear.weight.detach() * scale, 64, symmetric) / scale
    torch.testing.assert_close(readable.dequantized_weight(), expected, rtol=1e-6, atol=1e-6)
    with torch.inference_mode():
        exact, plain = linear(x), Int4Linear(linear, 64, symmetric)(x)
        assert sqnr(readable(x), layer(x)) > 35.0  # packed (bf16) vs readable: same math
        assert sqnr(exact, readable(x)) > sqnr(exact, plain) + 1.0
    with pytest.raises(ValueError, match="input_scale"):
        Int4Linear(linear, 64, input_scale=torch.ones(5))


def test_quantize_with_calibration_uses_activation_aware_scales():
    torch.manual_seed(0)
    model = DecoderLM(TINY).eval()
    calibration = torch.randint(0, TINY.vocab_size, (4, 32))
    awq = quantize(model, "int4", 32, calibration=calibration)
    rtn = quantize(model, "int4", 32)
    layers = [m for m in awq.modules() if isinstance(m, Int4Linear)]
    assert layers and all(m.input_scale is not None for m in layers)
    held_out = torch.randint(
        0, TINY.vocab_size, (2, 32), generator=torch.Generator().manual_seed(9)
    )
    # Per layer AWQ can only lower the calibration error; on the whole model it stays as good.
    assert output_sqnr(model, awq, held_out) > output_sqnr(model, rtn, held_out) - 1.0
    with pytest.raises(ValueError, match="calibration"):
        quantize(model, "int8", calibration=calibration)
    with pytest.raises(ValueError, match="calibration_ids"):
        quantize(model, "int4", 32, calibration=calibration[0])


@pytest.mark.slow
def test_int4_perplexity_on_the_natively_float_tiny_gpt():
    """The course's tiny GPT was trained in float32 (unlike SmolLM2, shipped as Q4_1), so its
    weights are not on any 4-bit grid: int4 must round every one of them."""
    from llmcourse.eval import perplexity
    from llmcourse.pretrained import shakespeare
    from llmcourse.train.tiny_gpt import pretrained_tiny_gpt

    tiny = pretrained_tiny_gpt()
    ids = torch.tensor(tiny.tokenizer.encode(shakespeare("val")[:4096]))
    calibration = torch.tensor(tiny.tokenizer.encode(shakespeare("train")[:1024])).reshape(16, 64)
    base = perplexity(tiny.model, ids, block_size=64)
    # d_ff = 344 = 8 · 43: groups of 8 fit every layer (the readable path; kernels need g >= 32).
    for symmetric in (True, False):
        for calib in (None, calibration):
            quantized = quantize(tiny.model, "int4", 8, symmetric=symmetric, calibration=calib)
            assert perplexity(quantized, ids, block_size=64) <= 1.10 * base  # issue 23's goal


def test_decode_weight_bytes_counts_what_a_step_reads():
    torch.manual_seed(0)
    model = DecoderLM(TINY).eval()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    fp32 = sum(m.weight.numel() * 4 for m in linears)  # the tied head reads the embeddings
    assert decode_weight_bytes(model) == fp32
    int8 = quantize(model, "int8", skip=())
    layers = [m for m in int8.modules() if isinstance(m, Int8Linear)]
    expected = sum(
        m.weight_int8.numel() + m.scale.numel() * 4 + (m.out_features * 2 if m.on_kernel else 0)
        for m in layers
    )
    assert decode_weight_bytes(int8) == expected < fp32 / 3
