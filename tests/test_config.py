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
    assert config.kv_heads == 12 and config.head_size == 64 and config.ffn_dim == 3072


def test_derived_sizes_follow_replacements():
    config = ModelConfig().replace(d_model=512, n_head=8, n_kv_head=2, d_ff=1376)
    assert (config.head_size, config.kv_heads, config.ffn_dim) == (64, 2, 1376)


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
