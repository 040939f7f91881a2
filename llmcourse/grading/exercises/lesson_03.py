"""Exercise tests of lesson 03 (LLM architecture): each compares the learner's function with the
package's own in ``llmcourse.nn`` on random and edge-case inputs."""

from __future__ import annotations

import torch

from llmcourse.grading.api import Namespace, assert_close, exercise_test
from llmcourse.nn import attention as reference_attention
from llmcourse.nn import feedforward, masks, norms, positional

# ---- 03.attention -----------------------------------------------------------------------------


def _qkv(batch: int = 2, heads: int = 3, q_len: int = 5, k_len: int = 5, dim: int = 8):
    return (
        torch.randn(batch, heads, q_len, dim),
        torch.randn(batch, heads, k_len, dim),
        torch.randn(batch, heads, k_len, dim),
    )


def _compare_attention(function, q, k, v, mask, what: str) -> None:
    result = function(q, k, v, mask)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(
            f"{what}: return a pair (output, weights), got {type(result).__name__}."
        )
    out, weights = result
    expected_out, expected_weights = reference_attention.scaled_dot_product_attention(q, k, v, mask)
    assert_close(weights, expected_weights, what=f"{what}: weights")
    assert_close(out, expected_out, what=f"{what}: output")


@exercise_test(
    "03.attention",
    points=1,
    hint="scores = q @ k.transpose(-2, -1) / sqrt(d_k), where d_k = q.shape[-1]; softmax over the "
    "last dimension (the keys); output = weights @ v.",
)
def attention_without_mask(ns: Namespace) -> None:
    _compare_attention(ns.function("attention"), *_qkv(), None, "no mask")


@exercise_test(
    "03.attention",
    points=1,
    hint="Where mask is False the score must become -inf before the softmax "
    "(scores.masked_fill(~mask, float('-inf'))), so those keys get weight exactly 0.",
)
def attention_with_causal_mask(ns: Namespace) -> None:
    q, k, v = _qkv()
    _compare_attention(ns.function("attention"), q, k, v, masks.causal_mask(5), "causal mask")


@exercise_test(
    "03.attention",
    points=1,
    hint="The mask must broadcast: a padding mask of shape (batch, 1, 1, k_len) applies to every "
    "head and query; keys and queries may differ in length (q_len < k_len).",
)
def attention_with_padding_and_rectangular_scores(ns: Namespace) -> None:
    q, k, v = _qkv(q_len=2, k_len=6)
    padding = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]).bool()[:, None, None, :]
    _compare_attention(ns.function("attention"), q, k, v, padding, "padding mask, q_len=2 k_len=6")


# ---- 03.heads ---------------------------------------------------------------------------------


@exercise_test(
    "03.heads",
    points=1,
    hint="(batch, seq, n_head * head_dim) -> view as (batch, seq, n_head, head_dim) -> "
    "transpose(1, 2). Head h owns channels h*head_dim ... (h+1)*head_dim - 1.",
)
def split_heads_matches(ns: Namespace) -> None:
    split = ns.function("split_heads")
    for shape, n_head in [((2, 5, 12), 3), ((1, 1, 8), 8), ((3, 4, 6), 1)]:
        x = torch.randn(*shape)
        assert_close(
            split(x, n_head),
            reference_attention.split_heads(x, n_head),
            what=f"split_heads(x of shape {shape}, n_head={n_head})",
        )


@exercise_test(
    "03.heads",
    points=1,
    hint="Undo split_heads: transpose(1, 2) back to (batch, seq, n_head, head_dim), then reshape "
    "(not view: the transpose made it non-contiguous) to (batch, seq, n_head * head_dim).",
)
def merge_heads_inverts_split(ns: Namespace) -> None:
    merge = ns.function("merge_heads")
    x = torch.randn(2, 4, 7, 5)
    assert_close(merge(x), reference_attention.merge_heads(x), what="merge_heads(x (2, 4, 7, 5))")
    y = torch.randn(2, 7, 20)
    assert_close(
        merge(reference_attention.split_heads(y, 4)), y, what="merge_heads(split_heads(y, 4))"
    )


# ---- 03.rmsnorm -------------------------------------------------------------------------------


@exercise_test(
    "03.rmsnorm",
    points=1,
    hint="Divide x by sqrt(mean(x**2 over the last dim, keepdim=True) + eps), then multiply by "
    "weight. No mean subtraction and no bias: that is LayerNorm.",
)
def rmsnorm_matches(ns: Namespace) -> None:
    rms_norm = ns.function("rms_norm")
    for shape in [(4, 8), (2, 3, 16), (1, 1)]:
        x = torch.randn(*shape) * 3 + 1
        weight = torch.randn(shape[-1])
        assert_close(
            rms_norm(x, weight, 1e-6), norms.rms_norm(x, weight, 1e-6), what=f"x of shape {shape}"
        )


@exercise_test(
    "03.rmsnorm",
    points=1,
    hint="eps goes inside the square root, so an all-zero row gives 0, not NaN.",
)
def rmsnorm_handles_zeros_and_eps(ns: Namespace) -> None:
    rms_norm = ns.function("rms_norm")
    x = torch.zeros(2, 4)
    x[1] = 1e-3
    weight = torch.ones(4)
    assert_close(rms_norm(x, weight, 1e-2), norms.rms_norm(x, weight, 1e-2), what="eps=1e-2")


# ---- 03.swiglu --------------------------------------------------------------------------------


@exercise_test(
    "03.swiglu",
    points=2,
    hint="SwiGLU(x) = (silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T; silu(z) = z * sigmoid(z). "
    "Weights are in nn.Linear layout (out_features, in_features).",
)
def swiglu_matches(ns: Namespace) -> None:
    swiglu = ns.function("swiglu")
    for d_model, d_ff, shape in [(8, 20, (3, 8)), (6, 16, (2, 5, 6))]:
        x = torch.randn(*shape)
        w_gate, w_up = torch.randn(d_ff, d_model), torch.randn(d_ff, d_model)
        w_down = torch.randn(d_model, d_ff)
        assert_close(
            swiglu(x, w_gate, w_up, w_down),
            feedforward.swiglu(x, w_gate, w_up, w_down),
            what=f"swiglu on x of shape {shape}, d_ff={d_ff}",
            atol=1e-4,
        )


# ---- 03.rope ----------------------------------------------------------------------------------


@exercise_test(
    "03.rope",
    points=1,
    hint="inverse_frequency = 1 / theta ** (arange(0, head_dim, 2) / head_dim); angles = "
    "positions[..., None] * inverse_frequency; duplicate them with torch.cat((a, a), -1), then "
    "take cos and sin.",
)
def rope_angles_match(ns: Namespace) -> None:
    rope_cos_sin = ns.function("rope_cos_sin")
    positions = torch.tensor([[0, 1, 2, 7, 100]])
    for head_dim, theta in [(8, 10000.0), (16, 500000.0)]:
        cos, sin = rope_cos_sin(positions, head_dim, theta)
        expected_cos, expected_sin = positional.rope_cos_sin(positions, head_dim, theta)
        assert_close(cos, expected_cos, what=f"cos (head_dim={head_dim}, theta={theta:g})")
        assert_close(sin, expected_sin, what=f"sin (head_dim={head_dim}, theta={theta:g})")


@exercise_test(
    "03.rope",
    points=2,
    hint="rotate_half([x1, x2]) = [-x2, x1] (halves of the last dim); the result is "
    "x * cos + rotate_half(x) * sin, with cos/sin of shape (batch, seq, head_dim) unsqueezed at "
    "dim 1 to broadcast over heads.",
)
def rope_rotation_matches(ns: Namespace) -> None:
    apply_rope = ns.function("apply_rope")
    x = torch.randn(2, 3, 5, 8)
    cos, sin = positional.rope_cos_sin(torch.arange(5).expand(2, 5), 8)
    assert_close(apply_rope(x, cos, sin), positional.apply_rope(x, cos, sin), what="apply_rope")
    at_zero = positional.rope_cos_sin(torch.zeros(2, 5), 8)
    assert_close(apply_rope(x, *at_zero), x, what="apply_rope at position 0 (no rotation)")
