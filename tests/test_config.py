import dataclasses

import pytest

from llmcourse.config import ModelConfig


def test_defaults_are_gpt2_small():
    config = ModelConfig()
    assert (config.d_model, config.n_layer, config.n_head, config.vocab_size) == (
        768,
        12,
        12,
        50257,
    )
    assert config.n_kv_head == 12 and config.head_dim == 64 and config.d_ff == 3072


def test_derived_sizes_follow_replacements():
    config = ModelConfig().replace(d_model=512, n_head=8, n_kv_head=2, d_ff=1376)
    assert (config.head_dim, config.n_kv_head, config.d_ff) == (64, 2, 1376)


def test_sizes_left_to_derive_are_derived_again_after_replace():
    small = ModelConfig().replace(d_model=256, n_head=4)  # GPT-2 small's sizes were derived
    assert (small.head_dim, small.n_kv_head, small.d_ff) == (64, 4, 1024)
    assert small.replace(norm="rmsnorm").norm_bias is False
    assert ModelConfig().norm_bias is True
    explicit = ModelConfig(d_ff=100, norm_bias=False).replace(d_model=256, n_head=4)
    assert (explicit.d_ff, explicit.norm_bias) == (100, False)  # what you set stays set
    assert ModelConfig(n_kv_head=12, head_dim=64) == ModelConfig()  # same model, equal configs


def test_to_dict_leaves_derived_sizes_to_derive():
    values = ModelConfig(d_ff=100).to_dict()
    assert values["d_ff"] == 100 and values["head_dim"] is None and values["n_kv_head"] is None
    assert ModelConfig.from_dict(values).replace(d_model=256, n_head=4).head_dim == 64


def test_json_round_trip():
    config = ModelConfig(name="tiny", mlp="swiglu", norm="rmsnorm", position="rope", n_kv_head=4)
    assert ModelConfig.from_json(config.to_json()) == config


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().d_model = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"d_model": 100, "n_head": 12}, "not divisible by n_head"),
        ({"n_head": 12, "n_kv_head": 5}, "not divisible by n_kv_head"),
        ({"norm": "rmsnrom"}, "Did you mean 'rmsnorm'"),
        ({"position": "rotary"}, "is not one of"),
        ({"n_layer": 0}, "positive integer"),
        ({"n_expert": 4, "n_expert_active": 5}, "n_expert_active"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_configs_say_what_to_change(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)


def test_unknown_fields_are_rejected_by_name():
    with pytest.raises(ValueError, match="n_heads"):
        ModelConfig.from_dict({"n_heads": 4})
