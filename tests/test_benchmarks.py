"""The benchmark scripts' measuring code, run at a tiny size: rows of the right shape and range.

Timings are measurements, never assertions; these tests only check that the code behind the
README's performance table still runs and reports what it says it does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from llmcourse.models import DecoderLM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_quant  # benchmarks/ is a folder of scripts, put on sys.path above
from test_quant import TINY


def test_quant_speed_rows_and_step_profile():
    torch.manual_seed(0)
    model = DecoderLM(TINY).eval()
    variants = bench_quant.speed_variants(model)
    ids = torch.randint(0, TINY.vocab_size, (1, 5))
    rows = bench_quant.speed_rows(variants, ids, tokens=3, rounds=1, peers=False)
    by_name = {row["variant"]: row for row in rows}
    assert list(by_name) == list(variants)
    for row in rows:
        assert row["tokens_per_s"] > 0 and 0 <= row["same_tokens_as_fp32"] <= 3
    assert by_name["fp32"]["vs_fp32"] == 1.0 and by_name["fp32"]["same_tokens_as_fp32"] == 3
    # A quantized tied head drops the float table: with it the model is smaller than without.
    assert by_name["int8 (head int8)"]["bytes"] < by_name["int8 (head fp32)"]["bytes"]
    assert by_name["int4 g64 (head int4)"]["bytes"] < by_name["int4 g64 (head fp32)"]["bytes"]

    profiled = {name: variants[name] for name in bench_quant.PROFILED}
    profile = bench_quant.matmul_profile(profiled, ids, rounds=1)
    assert [row["variant"] for row in profile] == list(bench_quant.PROFILED)
    weights = [row["weight_bytes"] for row in profile]
    assert weights[0] > weights[1] > weights[2]  # fp32 > int8 > int4
    for row in profile:
        assert row["step_ms"] > 0 and row["matmuls_ms"] > 0 and row["matmul_gb_s"] > 0
