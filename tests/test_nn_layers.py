"""Norms, feed-forward networks, block layouts and the mixture of experts."""

import pytest
import torch
import torch.nn.functional as F

from llmcourse.config import ModelConfig
from llmcourse.nn import (
    GatedMLP,
    LayerNorm,
    MixtureOfExperts,
    RMSNorm,
    TransformerBlock,
    load_balancing_loss,
    rms_norm,
    swiglu,
)
from llmcourse.nn.feedforward import MLP


def test_rmsnorm_matches_torch():
    x = torch.randn(3, 5, 16) * 4 + 1
    ours = RMSNorm(16, eps=1e-6)
    torch.nn.init.normal_(ours.weight)
    reference = torch.nn.RMSNorm(16, eps=1e-6)
    reference.weight.data.copy_(ours.weight.data)
    torch.testing.assert_close(ours(x), reference(x))
    rms = rms_norm(x).pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-4, rtol=0)


def test_layernorm_matches_torch_with_and_without_bias():
    x = torch.randn(2, 7, 12)
    torch.testing.assert_close(LayerNorm(12)(x), torch.nn.LayerNorm(12)(x))
    assert LayerNorm(12, bias=False).bias is None
    torch.testing.assert_close(LayerNorm(12, bias=False)(x), torch.nn.LayerNorm(12)(x))


def test_swiglu_function_and_module_agree_with_shazeer_2020():
    mlp = GatedMLP(8, 20, "silu")
    x = torch.randn(4, 8)
    expected = mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
    torch.testing.assert_close(mlp(x), expected)
    w = (mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight)
    torch.testing.assert_close(swiglu(x, *w), expected)


def test_geglu_and_plain_mlps():
    x = torch.randn(4, 8)
    geglu = GatedMLP(8, 16, "gelu")
    torch.testing.assert_close(
        geglu(x), geglu.down_proj(F.gelu(geglu.gate_proj(x)) * geglu.up_proj(x))
    )
    relu = MLP(8, 32, "relu")
    torch.testing.assert_close(relu(x), relu.down_proj(F.relu(relu.up_proj(x))))
    with pytest.raises(ValueError, match="Unknown activation"):
        MLP(8, 32, "swish")


SMALL = ModelConfig(vocab_size=50, context_length=16, d_model=16, n_layer=2, n_head=4)


def test_pre_norm_block_by_hand():
    block = TransformerBlock(SMALL).eval()
    x = torch.randn(2, 5, 16)
    h = x + block.attn(block.attn_norm(x), is_causal=True)[0]
    expected = h + block.mlp(block.mlp_norm(h))
    torch.testing.assert_close(block(x, is_causal=True)[0], expected)


def test_post_norm_block_by_hand():
    block = TransformerBlock(SMALL.replace(norm_placement="post")).eval()
    x = torch.randn(2, 5, 16)
    h = block.attn_norm(x + block.attn(x)[0])
    torch.testing.assert_close(block(x)[0], block.mlp_norm(h + block.mlp(h)))


def test_parallel_block_by_hand_has_one_norm():
    block = TransformerBlock(SMALL.replace(parallel_block=True, mlp="swiglu")).eval()
    assert not hasattr(block, "mlp_norm")
    x = torch.randn(2, 5, 16)
    h = block.attn_norm(x)
    expected = x + block.attn(h, is_causal=True)[0] + block.mlp(h)
    torch.testing.assert_close(block(x, is_causal=True)[0], expected)


def test_moe_with_identical_experts_equals_one_expert():
    moe = MixtureOfExperts(8, 16, n_expert=4, top_k=2, mlp="swiglu")
    for expert in moe.experts[1:]:
        expert.load_state_dict(moe.experts[0].state_dict())
    x = torch.randn(2, 3, 8)
    out, _ = moe(x)
    torch.testing.assert_close(out, moe.experts[0](x))  # the top-k weights sum to one


def test_moe_top1_sends_each_token_to_its_argmax_expert():
    moe = MixtureOfExperts(8, 16, n_expert=3, top_k=1, mlp="gelu")
    x = torch.randn(10, 8)
    out, _ = moe(x[None])
    choice = moe.router(x).argmax(-1)
    expected = torch.stack([moe.experts[int(e)](row) for e, row in zip(choice, x, strict=True)])
    torch.testing.assert_close(out[0], expected)


def test_load_balancing_loss_is_one_when_uniform_and_larger_when_collapsed():
    uniform = torch.full((8, 4), 0.25)
    spread = torch.tensor([[0], [1], [2], [3], [0], [1], [2], [3]])
    assert load_balancing_loss(uniform, spread).item() == pytest.approx(1.0)
    collapsed = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(8, 1)
    assert load_balancing_loss(collapsed, torch.zeros(8, 1, dtype=torch.long)).item() > 3.8


def test_moe_loss_has_gradients_for_the_router():
    moe = MixtureOfExperts(8, 16, n_expert=4, top_k=2, mlp="swiglu")
    out, aux = moe(torch.randn(2, 5, 8))
    (out.sum() + aux).backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
