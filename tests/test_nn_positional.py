"""Positional encodings against their papers and independent implementations."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.nn import (
    LearnedPositionalEmbedding,
    RelativePositionBias,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    relative_position_bucket,
    rope_cos_sin,
    sinusoidal_encoding,
)


def test_sinusoidal_matches_vaswani_section_3_5():
    pe = sinusoidal_encoding(50, 16)
    for pos in (0, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_rope_matches_transformers_llama():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = LlamaConfig(hidden_size=64, num_attention_heads=4, rope_theta=500000.0)
    config.rope_parameters = {"rope_type": "default", "rope_theta": 500000.0}
    positions = torch.tensor([[0, 1, 2, 5, 100, 2047]])
    q, k = torch.randn(1, 4, 6, 16), torch.randn(1, 2, 6, 16)
    cos_hf, sin_hf = LlamaRotaryEmbedding(config)(q, positions)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos_hf, sin_hf)
    cos, sin = rope_cos_sin(positions, 16, theta=500000.0)
    torch.testing.assert_close(cos, cos_hf)
    torch.testing.assert_close(apply_rope(q, cos, sin), q_hf)
    torch.testing.assert_close(apply_rope(k, cos, sin), k_hf)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(0, 500), n=st.integers(0, 500), shift=st.integers(0, 500))
def test_rope_scores_depend_only_on_relative_position(m, n, shift):
    """Su et al. 2021, eq. 16: <R_m q, R_n k> is a function of m - n."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 32, generator=g), torch.randn(1, 1, 1, 32, generator=g)

    def score(a, b):
        cos_a, sin_a = rope_cos_sin(torch.tensor([a]), 32)
        cos_b, sin_b = rope_cos_sin(torch.tensor([b]), 32)
        return (apply_rope(q, cos_a, sin_a) * apply_rope(k, cos_b, sin_b)).sum().item()

    assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=1e-3)


def test_rope_preserves_norms():
    x = torch.randn(2, 3, 9, 8)
    cos, sin = rope_cos_sin(torch.arange(9), 8)
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def test_alibi_slopes_follow_press_et_al():
    assert alibi_slopes(8).tolist() == [2.0**-i for i in range(1, 9)]
    # 12 heads: the 8-head slopes, then every other slope of the 16-head sequence.
    expected = [2.0**-i for i in range(1, 9)] + [2.0 ** -(i + 0.5) for i in range(4)]
    torch.testing.assert_close(alibi_slopes(12), torch.tensor(expected))


@pytest.mark.parametrize("n_head", [1, 3, 5, 6, 8, 12, 20, 40, 96])
@pytest.mark.parametrize(("q_len", "k_len"), [(7, 7), (1, 9), (3, 10)])
def test_alibi_bias_equals_press_et_al_written_independently(n_head, q_len, k_len):
    """Press et al. 2022, §3: with n a power of two the slopes are 2^(-8h/n), h = 1..n. Otherwise
    take the c = 2^floor(log2 n) slopes of c heads and fill up with every other slope of 2c
    heads, i.e. the half steps 2^(-8(h - 1/2)/c). Written here with float64 numpy."""
    c = 2 ** int(np.floor(np.log2(n_head)))
    exponents = [-8 * h / c for h in range(1, c + 1)]
    exponents += [-8 * (h - 0.5) / c for h in range(1, n_head - c + 1)]
    slopes = np.power(2.0, exponents)
    query_positions = np.arange(k_len - q_len, k_len)  # the queries are the last q_len positions
    distance = np.abs(np.subtract.outer(query_positions, np.arange(k_len)))
    expected = -slopes[:, None, None] * distance[None]
    torch.testing.assert_close(alibi_slopes(n_head), torch.tensor(slopes, dtype=torch.float32))
    ours = alibi_bias(n_head, q_len, k_len)
    assert ours.shape == (n_head, q_len, k_len)
    torch.testing.assert_close(ours, torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize("n_head", [4, 6, 40])
def test_alibi_matches_bloom_in_transformers(n_head):
    """BLOOM adds m·j; ours adds -m·(i - j). Per query row they differ by a constant, so after
    the causal mask the softmax is the same."""
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    seq = 7
    bloom = build_alibi_tensor(torch.ones(1, seq), n_head, torch.float32).view(n_head, 1, seq)
    ours = alibi_bias(n_head, seq)
    mask = torch.ones(seq, seq).tril().bool()
    scores = torch.randn(n_head, seq, seq)
    a = torch.softmax((scores + bloom).masked_fill(~mask, float("-inf")), -1)
    b = torch.softmax((scores + ours).masked_fill(~mask, float("-inf")), -1)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_t5_buckets_match_transformers(bidirectional):
    from transformers.models.t5.modeling_t5 import T5Attention

    relative = torch.arange(-300, 300).view(1, -1)
    expected = T5Attention._relative_position_bucket(
        relative, bidirectional=bidirectional, num_buckets=32, max_distance=128
    )
    ours = relative_position_bucket(relative, bidirectional=bidirectional)
    assert torch.equal(ours, expected)


def test_relative_bias_shape_and_sharing_by_distance():
    bias = RelativePositionBias(n_head=3)(4, 4)
    assert bias.shape == (1, 3, 4, 4)
    torch.testing.assert_close(bias[0, :, 1, 0], bias[0, :, 3, 2])  # same distance, same bias


def test_learned_positions_refuse_to_run_past_the_context():
    table = LearnedPositionalEmbedding(8, 4)
    assert table(torch.arange(8)[None]).shape == (1, 8, 4)
    with pytest.raises(ValueError, match="past this model's context of 8"):
        table(torch.arange(9)[None])


def test_odd_dimensions_are_rejected():
    with pytest.raises(ValueError, match="must be even"):
        sinusoidal_encoding(4, 5)
    with pytest.raises(ValueError, match="must be even"):
        rope_cos_sin(torch.arange(3), 7)
