"""Training throughput of DecoderLM against transformers' GPT2LMHeadModel, same config, same run.

    .venv/bin/python benchmarks/bench_model.py            # five sizes, a few minutes on 2 cores
    .venv/bin/python benchmarks/bench_model.py --quick    # the three smallest, fewer repeats
    llmcourse bench model --quick --json                  # the same, as one JSON object

For each size both models get the same weights (ours is ``from_hf`` of the transformers model),
dropout off, and time one forward + backward of a next-token cross-entropy on the same batch.
Steps alternate between the models (A, B, A, B, ...), so load from other processes hits both
alike; the table reports medians: of each model's step time and of the per-pair ratios.
A second table compares our two attention paths (fused SDPA vs the explicit reference).
Goal: ours >= 1.3x transformers on small configs and never slower.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F
import transformers as tf

from llmcourse.models.hf import from_hf

# name: (d_model, n_layer, n_head, seq_len, batch, vocab); "char" is lesson 04's character-level
# Shakespeare GPT, the others use BPE-sized vocabularies.
SIZES = {
    "char": (64, 4, 4, 64, 16, 96),
    "xs": (64, 2, 2, 64, 8, 1024),
    "s": (128, 4, 4, 128, 8, 4096),
    "m": (256, 6, 8, 128, 8, 8192),
    "l": (512, 8, 8, 256, 4, 16384),
}


def train_step(model: torch.nn.Module, ids: torch.Tensor) -> Callable[[], None]:
    # Next-token targets with the last position ignored: no slice of the logits to copy back.
    targets = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], dim=1).flatten()

    def step() -> None:
        logits = model(ids).logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets, ignore_index=-100)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def compare(a: Callable[[], None], b: Callable[[], None], repeats: int) -> tuple[float, ...]:
    """Alternate a and b; return (median ratio time_a / time_b, median a, median b)."""
    for _ in range(2):  # warm-up: allocator, kernels, lazy init
        a()
        b()
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(timed(a))
        times_b.append(timed(b))
    ratios = [ta / tb for ta, tb in zip(times_a, times_b, strict=True)]
    return statistics.median(ratios), statistics.median(times_a), statistics.median(times_b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three sizes, fewer repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object, no tables")
    args = parser.parse_args()
    say = (lambda *_: None) if args.json else print
    sizes = {k: SIZES[k] for k in ("char", "xs", "s")} if args.quick else SIZES
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    say(f"torch {torch.__version__}, transformers {tf.__version__}, {threads} threads")
    say("\nforward+backward tokens/s (median step); ratio = median of alternating pairs")
    header = f"{'size':>4} {'d/L/H':>10} {'seq x batch':>11} {'transformers':>13} {'llmcourse':>10}"
    say(header + f" {'ratio':>6}")
    model_rows, attention_rows = [], []
    for name, (d, n_layer, n_head, seq, batch, vocab) in sizes.items():
        repeats = args.repeats or (8 if args.quick else (12 if d <= 256 else 6))
        config = tf.GPT2Config(
            vocab_size=vocab,
            n_positions=seq,
            n_embd=d,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=0,  # GPT-2's 50256 is outside these vocabularies
            eos_token_id=0,
        )
        theirs = tf.GPT2LMHeadModel(config).train()
        ours = from_hf(theirs).train()
        ids = torch.randint(0, vocab, (batch, seq))
        ratio, median_theirs, median_ours = compare(
            train_step(theirs, ids), train_step(ours, ids), repeats
        )
        tokens = batch * seq
        model_rows.append(
            {
                "size": name,
                "tokens_per_s_transformers": tokens / median_theirs,
                "tokens_per_s_llmcourse": tokens / median_ours,
                "time_ratio_transformers_over_llmcourse": ratio,
            }
        )
        say(
            f"{name:>4} {f'{d}/{n_layer}/{n_head}':>10} {f'{seq} x {batch}':>11} "
            f"{tokens / median_theirs:>13,.0f} {tokens / median_ours:>10,.0f} {ratio:>5.2f}x"
        )
        explicit = from_hf(theirs).train()
        explicit.attn_impl = "explicit"
        attention_rows.append(
            (name, *compare(train_step(explicit, ids), train_step(ours, ids), repeats), tokens)
        )
    say("\nattention path inside DecoderLM, forward+backward tokens/s")
    say(f"{'size':>4} {'explicit':>10} {'sdpa':>10} {'sdpa speed-up':>14}")
    for name, ratio, median_explicit, median_sdpa, tokens in attention_rows:
        say(
            f"{name:>4} {tokens / median_explicit:>10,.0f} {tokens / median_sdpa:>10,.0f} "
            f"{ratio:>13.2f}x"
        )
    if args.json:
        speedups = {name: ratio for name, ratio, *_ in attention_rows}
        print(json.dumps({"threads": threads, "models": model_rows, "sdpa_speedup": speedups}))


if __name__ == "__main__":
    main()
