"""Model-card and serving-memory tables built from the zoo."""

from __future__ import annotations

import pytest
import torch

from llmcourse.infer.cards import (
    attention_kind,
    kv_cache_rows,
    markdown_table,
    model_card_rows,
    serving_memory_rows,
)
from llmcourse.models import zoo
from llmcourse.models.counting import count_parameters, kv_cache_bytes


def test_card_rows_cover_the_zoo_including_jais():
    rows = {r["model"]: r for r in model_card_rows()}
    assert len(rows) == len(zoo.names())
    jais = rows["Jais 13B"]
    assert jais["position"] == "alibi" and jais["activation"] == "swiglu"
    assert jais["vocab"] == 84992 and jais["open weights"] is True
    assert jais["params (B)"] == round(count_parameters(zoo.get_config("jais-13b")) / 1e9, 3)
    assert rows["Mixtral 8x7B"]["active (B)"] == pytest.approx(12.88, abs=0.01)  # 12.9B published
    assert rows["PaLM 540B"]["attention"] == "MQA" and rows["Llama 2 70B"]["attention"] == "GQA-8"


def test_kv_cache_rows_use_kv_cache_bytes():
    rows = {r["model"]: r for r in kv_cache_rows(["llama-2-7b", "llama-2-70b", "bert-base"])}
    assert set(rows) == {"Llama 2 7B", "Llama 2 70B"}  # encoders keep no cache
    assert rows["Llama 2 7B"]["KiB/token"] == 512.0  # 0.5 MiB per token in fp16
    per_token = kv_cache_bytes(zoo.get_config("llama-2-70b"), 1, dtype=torch.float16)
    assert rows["Llama 2 70B"]["KiB/token"] == per_token / 1024 == 320.0


def test_serving_memory_rows_and_table():
    (row,) = serving_memory_rows(["llama-2-7b"], seq_len=4096, batch_size=32)
    assert row["KV cache (GiB)"] == 64.0
    assert row["fp16 total (GiB)"] == pytest.approx(row["fp16 weights (GiB)"] + 64.0, abs=0.01)
    table = markdown_table([row])
    assert table.splitlines()[0].startswith("| model | KV cache (GiB) |")
    with pytest.raises(ValueError, match="Unknown weight formats"):
        serving_memory_rows(["llama-2-7b"], 10, 1, weight_formats=["fp8"])
    with pytest.raises(ValueError, match="Unknown model"):
        model_card_rows(["gpt-5"])


def test_attention_kind():
    assert [attention_kind(32, k) for k in (32, 8, 1)] == ["MHA", "GQA-8", "MQA"]
