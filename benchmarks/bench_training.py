"""Training throughput of our Trainer + DecoderLM against the same Trainer on transformers' GPT-2.

    .venv/bin/python benchmarks/bench_training.py            # three sizes, a few minutes
    .venv/bin/python benchmarks/bench_training.py --quick    # the smallest two, fewer steps

For each size, a ``transformers.GPT2LMHeadModel`` is built and ours is ``from_hf`` of it: the
same config and the same weights (the script checks the logits agree first). Both train under
the same ``Trainer`` (AdamW, clipping, schedule, data loading), and a third column runs the
textbook loop on DecoderLM (forward, loss, backward, clip, AdamW) to show the Trainer's own
overhead. Steps alternate between the three (A, B, C, A, B, C, ...) so load from other
processes hits all alike; the table reports tokens/s from the median step time and the median
of the per-round ratios. On CUDA it adds the model FLOPs utilisation of our model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import transformers as tf

from llmcourse.data.loaders import RandomWindows
from llmcourse.models.hf import from_hf
from llmcourse.train import TrainConfig, Trainer, causal_lm_loss
from llmcourse.train.metrics import mfu, model_training_flops_per_token
from llmcourse.train.parallel import parameter_groups
from llmcourse.utils.seed import seed_everything

# name: (d_model, n_layer, n_head, seq_len, batch, vocab). "char" is the course's Shakespeare
# character model; the others have BPE-sized vocabularies.
SIZES = {
    "char": (128, 4, 4, 64, 12, 84),
    "s": (128, 4, 4, 128, 8, 4096),
    "m": (256, 6, 8, 128, 8, 8192),
}


def textbook_step(model: torch.nn.Module, data: RandomWindows, batch: int) -> Callable[[], None]:
    """The plain PyTorch loop, for the Trainer's overhead."""
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95))
    position = [0]

    def step() -> None:
        start = position[0] * batch % (len(data) - batch)
        ids = torch.stack([data[i]["input_ids"] for i in range(start, start + batch)])
        loss = causal_lm_loss(model(ids).logits, ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        position[0] += 1

    return step


def measure(size: str, steps: int, warmup: int) -> dict[str, float | str | None]:
    d_model, n_layer, n_head, seq_len, batch, vocab = SIZES[size]
    seed_everything(0)
    hf = tf.GPT2LMHeadModel(
        tf.GPT2Config(
            vocab_size=vocab,
            n_positions=seq_len,
            n_embd=d_model,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    ours, plain = from_hf(hf), from_hf(hf)
    ids = torch.randint(0, vocab, (2, seq_len))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf.eval()(ids).logits, atol=1e-4, rtol=0)
    tokens = np.random.default_rng(0).integers(0, vocab, 200_000)
    data = RandomWindows(tokens, seq_len, num_samples=(steps + warmup) * batch * 2, seed=0)
    config = TrainConfig(
        max_steps=steps + warmup, batch_size=batch, warmup_steps=0, progress_bar=False
    )
    runners = {
        "ours": Trainer(ours.train(), config, data).train_step,
        "transformers": Trainer(hf.train(), config, data).train_step,
        "textbook": textbook_step(plain.train(), data, batch),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(steps + warmup):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    per_step = {name: statistics.median(values) for name, values in times.items()}
    ratio = statistics.median(
        h / o for h, o in zip(times["transformers"], times["ours"], strict=True)
    )
    overhead = statistics.median(
        o / t for o, t in zip(times["ours"], times["textbook"], strict=True)
    )
    tokens_per_step = batch * seq_len
    ours_tps = tokens_per_step / per_step["ours"]
    device = next(ours.parameters()).device
    return {
        "size": size,
        "params": sum(p.numel() for p in ours.parameters()),
        "ours": ours_tps,
        "transformers": tokens_per_step / per_step["transformers"],
        "textbook": tokens_per_step / per_step["textbook"],
        "speedup": ratio,
        "overhead": overhead,
        "mfu": mfu(ours_tps, model_training_flops_per_token(ours, seq_len), 1, device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two sizes, fewer steps")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = ["char", "s"] if args.quick else list(SIZES)
    steps, warmup = (6, 2) if args.quick else (12, 3)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, transformers "
        f"{tf.__version__}; tokens/s of one training step (median of {steps} rounds)"
    )
    header = (
        f"{'size':6} {'params':>9} {'ours':>9} {'transformers':>13} {'textbook':>9} "
        f"{'ours/hf':>8} {'trainer overhead':>17} {'MFU':>6}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        row = measure(size, steps, warmup)
        mfu_text = "n/a" if row["mfu"] is None else f"{row['mfu']:.1%}"
        print(
            f"{row['size']:6} {row['params']:>9,} {row['ours']:>9,.0f} "
            f"{row['transformers']:>13,.0f} {row['textbook']:>9,.0f} {row['speedup']:>7.2f}x "
            f"{row['overhead'] - 1:>16.1%} {mfu_text:>6}",
            flush=True,
        )
    print("ours/hf > 1: our Trainer step on DecoderLM is faster than on GPT2LMHeadModel.")
    print("trainer overhead: extra time of a Trainer step over the textbook loop, same model.")


if __name__ == "__main__":
    main()
