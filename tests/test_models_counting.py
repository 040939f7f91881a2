"""FLOPs, KV-cache and inference memory arithmetic, checked against published figures."""

import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM, KVCache
from llmcourse.models.counting import (
    count_parameters,
    flops_per_token,
    inference_memory,
    kv_cache_bytes,
)
from llmcourse.models.zoo import get_config


def test_gpt3_training_compute_matches_brown_et_al():
    """GPT-3 175B on 300B tokens took 3.14e23 FLOPs (Brown et al. 2020, Table D.1: 3.64e3
    petaflop/s-days), counted as 6·N·D without attention."""
    config = get_config("gpt3-175b")
    total = flops_per_token(config, include_attention=False) * 300e9
    assert total == pytest.approx(3.14e23, rel=0.01)


def test_attention_term_is_palms_12_l_h_q_t():
    config = get_config("palm-540b")
    with_attention = flops_per_token(config, seq_len=2048)
    without = flops_per_token(config, seq_len=2048, include_attention=False)
    assert with_attention - without == 12 * 118 * 48 * 256 * 2048
    assert flops_per_token(config, training=False, include_attention=False) * 3 == without


def test_flops_count_the_tied_output_layer_but_not_the_lookups():
    config = ModelConfig(vocab_size=100, context_length=8, d_model=16, n_layer=1, n_head=2)
    n = count_parameters(config) - 8 * 16  # learned positions are a lookup, not a matmul
    assert flops_per_token(config, include_attention=False) == 6 * n


def test_kv_cache_of_llama_2_7b_is_half_a_mebibyte_per_token():
    per_token = kv_cache_bytes(get_config("llama-2-7b"), seq_len=1)
    assert per_token == 2 * 32 * 4096 * 2 == 512 * 1024
    assert kv_cache_bytes(get_config("llama-2-7b"), 4096, batch_size=2) == 4 * 2**30


def test_gqa_shrinks_the_cache():
    llama3 = get_config("llama-3-8b")
    mha = llama3.replace(n_kv_head=None)
    assert kv_cache_bytes(mha, 8192) == 4 * kv_cache_bytes(llama3, 8192)
    assert kv_cache_bytes(llama3, 10, dtype="float32") == 2 * kv_cache_bytes(llama3, 10)


def test_kv_cache_bytes_equals_what_the_real_cache_holds():
    config = get_config("smollm2-135m").replace(n_layer=3, vocab_size=100)
    cache = KVCache()
    with torch.no_grad():
        DecoderLM(config)(torch.zeros(2, 7, dtype=torch.long), kv_cache=cache)
    assert cache.nbytes == kv_cache_bytes(config, 7, batch_size=2, dtype=torch.float32)


def test_inference_memory_adds_weights_and_cache():
    config = get_config("llama-2-7b")
    memory = inference_memory(config, 4096, dtype=torch.bfloat16)
    assert memory.weights == 2 * 6_738_415_616
    assert memory.total == memory.weights + 2 * 2**30


def test_bad_arguments():
    with pytest.raises(ValueError, match="keep no KV cache"):
        kv_cache_bytes(get_config("bert-base"), 10)
    with pytest.raises(ValueError, match="Unknown dtype"):
        kv_cache_bytes(get_config("gpt2"), 10, dtype="float17")
