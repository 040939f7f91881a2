"""Tokenizer benchmarks: BPE training against Hugging Face ``tokenizers``, the naive trainer,
and GPT-2 encoding against ``tiktoken``, each pair measured in the same run.

    .venv/bin/python benchmarks/bench_tokenizers.py

1. Byte-level BPE training on the complete works of Shakespeare (5.1 MB) to 4,096 and 16,384
   tokens: ``BPETokenizer.train`` (pure Python, one process) and the ``tokenizers`` Rust
   ``BpeTrainer`` with the same byte-level pre-tokenizer (it may use every core). Both learn the
   same merges (tests/test_tokenizers.py checks it); the goal is ours within 3x of theirs.
2. ``train_naive`` (recount every pair after every merge) against ``train`` on a 40 kB slice.
3. GPT-2 encoding of the five held-out plays (0.55 MB): ``gpt2_tokenizer()`` against
   ``tiktoken`` built from the same ranks; "cold" is a fresh tokenizer (empty chunk cache),
   "warm" a second pass over the same text.

Each timing is the best of ``REPEATS`` runs, to damp noise from other processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from llmcourse import pretrained
from llmcourse.tokenizers import GPT2_SPLIT_PATTERN, BPETokenizer, gpt2_tokenizer

REPEATS = 3


def best_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def hf_train(text: str, vocab_size: int) -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tokenizer.train_from_iterator([text], trainer)
    return tokenizer


def row(task: str, ours: float, theirs: float, peer: str, unit: str = "s") -> None:
    print(f"{task:<44} {ours:>10.3f} {theirs:>10.3f}  {peer:<22} {ours / theirs:>7.2f}x  ({unit})")


def main() -> None:
    import tiktoken

    text = pretrained.shakespeare()
    held_out = pretrained.shakespeare("val")
    print(f"CPU cores visible: {os.cpu_count()}; best of {REPEATS} runs; ratio = ours / peer")
    print(f"{'task':<44} {'ours':>10} {'peer':>10}  {'peer name':<22} {'ratio':>8}")

    for vocab_size in (4096, 16384):
        ours = best_seconds(lambda v=vocab_size: BPETokenizer().train(text, v))
        theirs = best_seconds(lambda v=vocab_size: hf_train(text, v))
        row(f"BPE train, Shakespeare 5.1 MB, vocab {vocab_size:,}", ours, theirs, "HF tokenizers")

    sample = text[:40_000]
    naive = best_seconds(lambda: BPETokenizer().train_naive(sample, 512), repeats=1)
    fast = best_seconds(lambda: BPETokenizer().train(sample, 512))
    row("train_naive vs train, 40 kB, vocab 512", naive, fast, "BPETokenizer.train")

    gpt2 = gpt2_tokenizer()
    reference = tiktoken.Encoding(
        name="gpt2-local",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=pretrained.gpt2_bpe_ranks(),
        special_tokens={"<|endoftext|>": 50256},
    )
    assert gpt2.encode(held_out) == reference.encode(held_out, allowed_special="all")
    megabytes = len(held_out.encode("utf-8")) / 1e6
    fresh = iter([gpt2_tokenizer() for _ in range(REPEATS)])  # built outside the timing
    cold = best_seconds(lambda: next(fresh).encode(held_out))
    warm = best_seconds(lambda: gpt2.encode(held_out))
    tiktoken_seconds = best_seconds(lambda: reference.encode(held_out, allowed_special="all"))
    row(
        "GPT-2 encode 0.55 MB, cold cache (MB/s)",
        megabytes / cold,
        megabytes / tiktoken_seconds,
        "tiktoken",
        "MB/s; <1 is slower",
    )
    row(
        "GPT-2 encode 0.55 MB, warm cache (MB/s)",
        megabytes / warm,
        megabytes / tiktoken_seconds,
        "tiktoken",
        "MB/s; <1 is slower",
    )


if __name__ == "__main__":
    main()
