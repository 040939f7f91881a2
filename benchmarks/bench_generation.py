"""Greedy generation speed on SmolLM2-135M: KV cache vs no cache vs transformers' generate,
and speculative decoding.

    .venv/bin/python benchmarks/bench_generation.py [--tokens 200] [--repeats 3] [--threads N]

Every method generates the same greedy continuation of the same prompt (checked: the outputs
must be identical), so tokens/s compare like for like. Timings are interleaved and repeated,
and the median is reported; ratios are taken within this run. Goals (issue 9): the cache is
>= 5x faster than no cache, and ours is at least as fast as ``transformers``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import AutoModelForCausalLM

from llmcourse.infer import generate
from llmcourse.infer.speculative import layer_skip_draft, speculative_generate
from llmcourse.models.hf import load_smollm2
from llmcourse.pretrained import smollm2_dir
from llmcourse.quant import quantize

PROMPT = "Once upon a time, in a small village by the sea,"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nocache-tokens", type=int, default=None, help="default: --tokens")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.tokens
    ours, tokenizer = load_smollm2()
    theirs = AutoModelForCausalLM.from_pretrained(smollm2_dir(), local_files_only=True).eval()
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    print(
        f"SmolLM2-135M fp32, prompt {ids.shape[1]} tokens, {n} greedy tokens, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )

    def hf_generate():
        with torch.inference_mode():
            return theirs.generate(
                ids,
                max_new_tokens=n,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=tokenizer.eos_token_id,
            )

    methods = {
        "ours, dynamic KV cache": lambda: generate(ours, ids, n, temperature=0),
        "ours, static KV cache": lambda: generate(ours, ids, n, temperature=0, cache="static"),
        "transformers generate": hf_generate,
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    outputs = {}
    generate(ours, ids, 5, temperature=0)  # warm-up
    hf_generate()
    for _ in range(args.repeats):
        for name, fn in methods.items():
            outputs[name], seconds = timed(fn)
            times[name].append(seconds)
    reference = outputs["ours, dynamic KV cache"]
    for name, out in outputs.items():
        if not torch.equal(out, reference):
            raise SystemExit(f"{name} generated different tokens than ours with a cache.")

    m = args.nocache_tokens or n
    no_cache, seconds = timed(lambda: generate(ours, ids, m, temperature=0, use_cache=False))
    if not torch.equal(no_cache, reference[:, : ids.shape[1] + m]):
        raise SystemExit("Generation without a cache differs from generation with one.")
    rates = {name: n / statistics.median(t) for name, t in times.items()}
    rates[f"ours, no cache ({m} tokens, 1 run)"] = m / seconds

    base = rates["ours, dynamic KV cache"]
    print(f"\n{'method':42s} {'tokens/s':>9s} {'vs ours+cache':>14s}")
    for name, rate in rates.items():
        print(f"{name:42s} {rate:9.2f} {rate / base:13.2f}x")
    no_cache_rate = rates[f"ours, no cache ({m} tokens, 1 run)"]
    print(f"\ncache speed-up over no cache: {base / no_cache_rate:.1f}x (goal >= 5x)")
    print(
        f"ours / transformers: {base / rates['transformers generate']:.2f} (goal >= 1); "
        "outputs identical: yes"
    )

    print("\nSpeculative decoding (greedy, output checked equal to the target's):")
    print(
        f"{'draft':34s} {'γ':>2s} {'accept':>7s} {'tok/call':>9s} {'tokens/s':>9s} {'speed-up':>9s}"
    )
    drafts = {
        "int8 copy (weight-only)": quantize(ours, "int8"),
        "int4 g64 copy (absmax)": quantize(ours, "int4", group_size=64),
        "layer-skip (every 2nd layer)": layer_skip_draft(ours, range(0, ours.config.n_layer, 2)),
    }
    for name, draft in drafts.items():
        for gamma in (2, 4):
            result, seconds = timed(
                lambda d=draft, g=gamma: speculative_generate(ours, d, ids, n, num_draft_tokens=g)
            )
            if not torch.equal(result.sequence, reference):
                raise SystemExit(f"Speculative decoding with {name} changed the output.")
            rate = n / seconds
            print(
                f"{name:34s} {gamma:2d} {result.acceptance_rate:7.2f} "
                f"{result.tokens_per_target_call:9.2f} {rate:9.2f} {rate / base:8.2f}x"
            )


if __name__ == "__main__":
    main()
