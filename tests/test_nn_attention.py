"""Attention: the explicit reference against PyTorch's fused kernel, masks, heads, GQA."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.nn import (
    MultiHeadAttention,
    attend,
    causal_mask,
    combine_masks,
    merge_heads,
    padding_mask,
    prefix_lm_mask,
    repeat_kv,
    scaled_dot_product_attention,
    sliding_window_mask,
    split_heads,
)


def qkv(batch=2, heads=4, kv_heads=4, q_len=6, k_len=6, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, q_len, dim, generator=g)
    k = torch.randn(batch, kv_heads, k_len, dim, generator=g)
    v = torch.randn(batch, kv_heads, k_len, dim, generator=g)
    return q, k, v


def test_explicit_matches_the_formula_written_out():
    q, k, v = qkv()
    out, weights = scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(out, expected @ v)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 6))


@pytest.mark.parametrize(
    "mask",
    [
        None,
        causal_mask(6),
        sliding_window_mask(6, 3),
        prefix_lm_mask(6, 2),
        padding_mask(torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])),
        torch.randn(1, 4, 6, 6),  # an additive bias (ALiBi, T5)
    ],
    ids=["none", "causal", "window", "prefix", "padding", "additive"],
)
def test_explicit_path_matches_torch_sdpa(mask):
    q, k, v = qkv()
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_both_paths_agree_with_gqa_and_is_causal():
    q, k, v = qkv(heads=6, kv_heads=2)
    fast, none = attend(q, k, v, is_causal=True, impl="sdpa")
    slow, weights = attend(q, k, v, is_causal=True, impl="explicit")
    assert none is None and weights.shape == (2, 6, 6, 6)
    torch.testing.assert_close(fast, slow)
    assert torch.all(weights.triu(1) == 0), "causal weights above the diagonal must be zero"


def test_masked_keys_get_exactly_zero_weight():
    q, k, v = qkv()
    _, weights = scaled_dot_product_attention(q, k, v, sliding_window_mask(6, 2))
    allowed = sliding_window_mask(6, 2)
    assert torch.all(weights[..., ~allowed] == 0)
    assert torch.all(weights[..., allowed] > 0)


def test_masks_by_hand():
    assert causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert sliding_window_mask(4, 2).int().tolist() == [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
    ]
    assert prefix_lm_mask(4, 2).int().tolist() == [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [1, 1, 1, 1],
    ]
    # Two new queries after three cached keys line up with the end of the keys.
    assert causal_mask(2, 5).int().tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]


def test_prefix_mask_per_sequence_lengths_stack_the_single_masks():
    lengths = torch.tensor([0, 2, 5])
    batched = prefix_lm_mask(5, lengths)
    assert batched.shape == (3, 1, 5, 5)
    for row, length in enumerate(lengths.tolist()):
        assert torch.equal(batched[row, 0], prefix_lm_mask(5, length))
    # After two cached keys, three new queries see the 4-token prefix and the keys up to them.
    assert torch.equal(prefix_lm_mask(3, torch.tensor([4]), 5)[0, 0], prefix_lm_mask(3, 4, 5))
    for bad in (6, -1, torch.tensor([1, 6])):
        with pytest.raises(ValueError, match="prefix_len"):
            prefix_lm_mask(5, bad)


def test_combined_padding_mask_never_leaves_a_row_empty():
    left_padded = torch.tensor([[0, 0, 1, 1]])
    mask = combine_masks(4, 4, causal=True, attention_mask=left_padded)
    assert mask.shape == (1, 1, 4, 4)
    assert mask.any(-1).all(), "every query must see at least one key (no NaN rows)"
    assert mask[0, 0, 3].int().tolist() == [0, 0, 1, 1]  # real tokens ignore the padding
    q, k, v = qkv(batch=1, q_len=4, k_len=4)
    assert torch.isfinite(F.scaled_dot_product_attention(q, k, v, attn_mask=mask)).all()


def test_combine_masks_rejects_a_mask_of_the_wrong_length():
    with pytest.raises(ValueError, match="cached \\+ new"):
        combine_masks(1, 5, causal=True, attention_mask=torch.ones(1, 1))


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 3),
    seq=st.integers(1, 7),
    n_head=st.integers(1, 4),
    head_dim=st.integers(1, 5),
)
def test_split_and_merge_heads_round_trip(batch, seq, n_head, head_dim):
    x = torch.randn(batch, seq, n_head * head_dim)
    heads = split_heads(x, n_head)
    assert heads.shape == (batch, n_head, seq, head_dim)
    # Head h holds channels h*head_dim .. (h+1)*head_dim - 1 of every position.
    torch.testing.assert_close(heads[:, -1, :, :], x[:, :, -head_dim:])
    torch.testing.assert_close(merge_heads(heads), x)


def test_repeat_kv_serves_consecutive_query_heads():
    k = torch.arange(2.0).view(1, 2, 1, 1)
    assert repeat_kv(k, 3).flatten().tolist() == [0, 0, 0, 1, 1, 1]


def test_grouped_query_attention_equals_mha_with_shared_key_value_heads():
    """GQA with 2 KV heads = MHA whose 6 K/V heads are copies in groups of 3 (Ainslie et al.)."""
    torch.manual_seed(0)
    gqa = MultiHeadAttention(24, 6, 2)
    mha = MultiHeadAttention(24, 6, 6)
    with torch.no_grad():
        for name in ("q_proj", "o_proj"):
            getattr(mha, name).load_state_dict(getattr(gqa, name).state_dict())
        for name in ("k_proj", "v_proj"):
            w = getattr(gqa, name).weight.view(2, 4, 24).repeat_interleave(3, 0).reshape(24, 24)
            b = getattr(gqa, name).bias.view(2, 4).repeat_interleave(3, 0).reshape(24)
            getattr(mha, name).weight.copy_(w)
            getattr(mha, name).bias.copy_(b)
    x = torch.randn(2, 5, 24)
    torch.testing.assert_close(gqa(x, is_causal=True)[0], mha(x, is_causal=True)[0])
    assert gqa.k_proj.weight.shape == (8, 24), "K/V projections shrink with n_kv_head"


def test_module_returns_weights_only_when_asked():
    attn = MultiHeadAttention(16, 4, 1)  # multi-query
    x = torch.randn(1, 3, 16)
    out, weights = attn(x, is_causal=True)
    assert weights is None
    out2, weights = attn(x, is_causal=True, output_attentions=True)
    assert weights.shape == (1, 4, 3, 3)
    torch.testing.assert_close(out, out2)


@pytest.mark.parametrize(
    ("args", "message"),
    [((30, 4), "not divisible by n_head"), ((32, 4, 3), "not divisible by n_kv_head")],
)
def test_bad_head_counts_raise(args, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(*args)


def test_unknown_attention_path_raises():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="'sdpa' or 'explicit'"):
        attend(q, k, v, impl="flash")
