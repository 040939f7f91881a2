"""LoRA from scratch (llmcourse.train.lora) against Hugging Face peft."""

from __future__ import annotations

import copy

import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.train.lora import (
    LoRALinear,
    apply_lora,
    linear_names,
    load_lora,
    lora_layers,
    merge_lora,
    save_lora,
    trainable_parameters,
    training_state_bytes,
    unmerge_lora,
)

TARGETS = ["q_proj", "v_proj", "down_proj"]


def small_model(tie: bool = True) -> DecoderLM:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=50,
        context_length=16,
        d_model=32,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        position="rope",
        norm="rmsnorm",
        mlp="swiglu",
        bias=False,
        tie_embeddings=tie,
    )
    return DecoderLM(config)


def ours_and_peft(r: int = 4, alpha: float = 8.0):
    peft = pytest.importorskip("peft")
    base = small_model()
    ours = apply_lora(copy.deepcopy(base), TARGETS, r=r, alpha=alpha)
    theirs = peft.get_peft_model(
        copy.deepcopy(base), peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=TARGETS)
    )
    with torch.no_grad():  # B is zero at the start: give it values so the adapters matter
        for name, layer in lora_layers(ours).items():
            torch.nn.init.normal_(layer.lora_B, std=0.1)
            twin = theirs.base_model.model.get_submodule(name)
            twin.lora_A["default"].weight.copy_(layer.lora_A)
            twin.lora_B["default"].weight.copy_(layer.lora_B)
    return ours, theirs


def test_outputs_and_gradients_match_peft():
    ours, theirs = ours_and_peft()
    ids = torch.randint(0, 50, (2, 10))
    ours_logits, theirs_logits = ours(ids).logits, theirs(ids).logits
    torch.testing.assert_close(ours_logits, theirs_logits, atol=1e-6, rtol=1e-5)
    ours_logits.square().mean().backward()
    theirs_logits.square().mean().backward()
    for name, layer in lora_layers(ours).items():
        twin = theirs.base_model.model.get_submodule(name)
        torch.testing.assert_close(layer.lora_A.grad, twin.lora_A["default"].weight.grad)
        torch.testing.assert_close(layer.lora_B.grad, twin.lora_B["default"].weight.grad)


def test_trainable_counts_and_merge_match_peft():
    ours, theirs = ours_and_peft(r=2, alpha=5.0)
    assert trainable_parameters(ours) == theirs.get_nb_trainable_parameters()
    ids = torch.randint(0, 50, (1, 8))
    merged_theirs = theirs.merge_and_unload()
    merge_lora(ours, unwrap=True)
    assert not lora_layers(ours)
    torch.testing.assert_close(ours(ids).logits, merged_theirs(ids).logits, atol=1e-5, rtol=1e-5)


def test_a_fresh_adapter_changes_nothing_and_merge_unmerge_round_trip():
    base = small_model()
    model = apply_lora(copy.deepcopy(base), ["q_proj", "o_proj"], r=4)
    ids = torch.randint(0, 50, (2, 9))
    torch.testing.assert_close(model(ids).logits, base(ids).logits)  # B = 0 at the start
    for layer in lora_layers(model).values():
        torch.nn.init.normal_(layer.lora_B)
    before = model(ids).logits
    weights = {n: layer.base.weight.clone() for n, layer in lora_layers(model).items()}
    merge_lora(model)
    torch.testing.assert_close(model(ids).logits, before, atol=1e-5, rtol=1e-5)
    unmerge_lora(model)
    torch.testing.assert_close(model(ids).logits, before, atol=1e-5, rtol=1e-5)
    for name, layer in lora_layers(model).items():
        torch.testing.assert_close(layer.base.weight, weights[name], atol=1e-6, rtol=0)


def test_only_adapters_train():
    model = apply_lora(small_model(), ["v_proj"], r=3)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    n_trainable, total = trainable_parameters(model)
    assert n_trainable == 2 * (3 * 32 + 16 * 3)  # two layers of A (3×32) and B (16×3): GQA's v
    state = training_state_bytes(model)
    assert state["optimizer"] == 2 * 4 * n_trainable and state["weights"] == 4 * total


def test_save_and_load_adapters(tmp_path):
    model = apply_lora(small_model(), TARGETS, r=4, alpha=8)
    for layer in lora_layers(model).values():
        torch.nn.init.normal_(layer.lora_B)
    path = save_lora(model, tmp_path / "adapter.safetensors")
    assert path.stat().st_size < 20_000  # the adapters only, not the model
    fresh = load_lora(small_model(), path)
    ids = torch.randint(0, 50, (1, 7))
    torch.testing.assert_close(fresh(ids).logits, model(ids).logits)
    other = apply_lora(small_model(), ["q_proj"], r=4)
    with pytest.raises(ValueError, match="does not fit"):
        load_lora(other, path)


def test_clear_errors():
    with pytest.raises(ValueError, match=r"No nn\.Linear module named \['qkv'\]") as error:
        apply_lora(small_model(), ["q_proj", "qkv"])
    assert "q_proj" in str(error.value) and "gate_proj" in str(error.value)
    with pytest.raises(ValueError, match="tied"):
        apply_lora(small_model(tie=True), ["lm_head"])
    apply_lora(small_model(tie=False), ["lm_head"])  # an untied head is fine
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(torch.nn.Linear(4, 4), r=0)
    with pytest.raises(TypeError, match=r"nn\.Linear"):
        LoRALinear(torch.nn.Conv1d(4, 4, 1))
    with pytest.raises(ValueError, match="apply_lora"):
        merge_lora(small_model())
    model = apply_lora(small_model(), ["q_proj"])
    with pytest.raises(ValueError, match="already"):
        apply_lora(model, ["v_proj"])
    assert "lora_A" not in linear_names(model)
