"""FLOPs, KV-cache and inference memory arithmetic, checked against published figures."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import llmcourse
import llmcourse.models
from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM, KVCache
from llmcourse.models.counting import (
    DTYPE_BYTES,
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
    with pytest.raises(ValueError, match="positive"):
        kv_cache_bytes(get_config("gpt2"), 10, dtype=0)
    with pytest.raises(TypeError, match="dtype"):
        kv_cache_bytes(get_config("gpt2"), 10, dtype=True)
    with pytest.raises(TypeError, match="dtype"):
        kv_cache_bytes(get_config("gpt2"), 10, dtype=object())


def test_a_dtype_is_a_name_a_byte_count_or_a_torch_or_numpy_dtype():
    config = get_config("llama-2-7b")
    fp16 = kv_cache_bytes(config, 100)
    for dtype in ("float16", "torch.float16", "half", 2, torch.float16, np.dtype("float16")):
        assert kv_cache_bytes(config, 100, dtype=dtype) == fp16, dtype
    assert kv_cache_bytes(config, 100, dtype=0.5) == fp16 // 4  # 4-bit values
    assert inference_memory(config, 100, dtype="bfloat16") == inference_memory(
        config, 100, dtype=torch.bfloat16
    )
    for name, size in DTYPE_BYTES.items():  # the table torch-free imports use agrees with torch
        assert getattr(torch, name).itemsize == size, name


def test_counting_and_scaling_import_without_torch(record_property):
    """DESIGN.md: counting and scaling are pure arithmetic. A fresh interpreter imports them
    (and the zoo) and must not have imported torch; the time is reported, never asserted."""
    code = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "import llmcourse.models.counting, llmcourse.models.zoo, llmcourse.scaling\n"
        "print(time.perf_counter() - start)\n"
        "print('torch' in sys.modules)\n"
    )
    root = Path(llmcourse.__file__).resolve().parents[1]  # import this checkout's package
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    seconds, imported_torch = result.stdout.split("\n")[:2]
    assert imported_torch == "False", "importing counting, zoo or scaling imported torch"
    record_property("import_seconds", float(seconds))
    print(f"import llmcourse.models.counting, zoo, scaling: {float(seconds):.3f} s")


def test_models_resolves_its_classes_lazily():
    assert llmcourse.models.DecoderLM is DecoderLM
    assert "Seq2SeqLM" in dir(llmcourse.models)
    with pytest.raises(AttributeError, match="NoSuchModel"):
        llmcourse.models.NoSuchModel  # noqa: B018
