"""Training throughput of our Trainer + DecoderLM against the same Trainer on transformers' GPT-2.

    .venv/bin/python benchmarks/bench_training.py            # three sizes, a few minutes
    .venv/bin/python benchmarks/bench_training.py --quick    # the smallest two, fewer steps

For each size, a ``transformers.GPT2LMHeadModel`` is built and ours is ``from_hf`` of it: the
same config and the same weights (the script checks the logits agree first). Both train under
the same ``Trainer`` (AdamW, clipping, schedule, data loading), and a third column runs the
textbook loop on DecoderLM (forward, loss, backward, clip, AdamW) to show the Trainer's own
overhead. A fourth runs the same textbook loop on LitGPT's ``GPT`` (``pip install litgpt``)
built to the same sizes; LitGPT has no learned positions or tied head, so it uses RoPE and an
untied head (more parameters, the same matmuls per token). Without ``litgpt`` that column is
reported as skipped with the reason. Steps alternate between the runners (A, B, C, D, A, ...)
so load from other processes hits all alike; the table reports tokens/s from the median step
time and the median of the per-round ratios (ours/peer > 1: ours is faster). On CUDA it adds
the model FLOPs utilisation of our model. ``--json`` prints the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
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
        out = model(ids)  # LitGPT returns the logits tensor itself
        loss = causal_lm_loss(out if isinstance(out, torch.Tensor) else out.logits, ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        position[0] += 1

    return step


def litgpt_model(d_model: int, n_layer: int, n_head: int, seq_len: int, vocab: int):
    """LitGPT's GPT at the given sizes (GPT-2-like: LayerNorm, GELU MLP, biases), or the reason
    it cannot be built."""
    try:
        from litgpt.config import Config
        from litgpt.model import GPT
    except ImportError as error:  # pragma: no cover - depends on the environment
        return None, f"litgpt not installed ({error}); pip install litgpt"
    config = Config(
        block_size=seq_len,
        vocab_size=vocab,
        padded_vocab_size=vocab,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=d_model,
        n_query_groups=n_head,
        bias=True,
        norm_class_name="LayerNorm",
        mlp_class_name="GptNeoxMLP",
        intermediate_size=4 * d_model,
        gelu_approximate="tanh",
        rotary_percentage=1.0,
        parallel_residual=False,
    )
    return GPT(config), None


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
    lit, lit_skip = litgpt_model(d_model, n_layer, n_head, seq_len, vocab)
    if lit is not None:
        runners["litgpt"] = textbook_step(lit.train(), data, batch)
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
    vs_litgpt = (
        statistics.median(li / t for li, t in zip(times["litgpt"], times["textbook"], strict=True))
        if lit is not None
        else None
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
        "litgpt": tokens_per_step / per_step["litgpt"] if lit is not None else None,
        "vs_litgpt": vs_litgpt,
        "litgpt_skipped": lit_skip,
        "mfu": mfu(ours_tps, model_training_flops_per_token(ours, seq_len), 1, device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two sizes, fewer steps")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = ["char", "s"] if args.quick else list(SIZES)
    steps, warmup = (6, 2) if args.quick else (12, 3)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, transformers "
        f"{tf.__version__}, load average {os.getloadavg()[0]:.1f}; tokens/s of one training "
        f"step (median of {steps} interleaved rounds)"
    )
    header = (
        f"{'size':6} {'params':>9} {'ours':>9} {'transformers':>13} {'textbook':>9} "
        f"{'litgpt':>8} {'ours/hf':>8} {'ours/litgpt':>12} {'trainer overhead':>17} {'MFU':>6}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for size in sizes:
        row = measure(size, steps, warmup)
        rows.append(row)
        mfu_text = "n/a" if row["mfu"] is None else f"{row['mfu']:.1%}"
        lit_rate = "skipped" if row["litgpt"] is None else f"{row['litgpt']:,.0f}"
        lit_ratio = "skipped" if row["vs_litgpt"] is None else f"{row['vs_litgpt']:.2f}x"
        print(
            f"{row['size']:6} {row['params']:>9,} {row['ours']:>9,.0f} "
            f"{row['transformers']:>13,.0f} {row['textbook']:>9,.0f} {lit_rate:>8} "
            f"{row['speedup']:>7.2f}x {lit_ratio:>12} {row['overhead'] - 1:>16.1%} {mfu_text:>6}",
            flush=True,
        )
    if rows and rows[0]["litgpt_skipped"]:
        print(f"litgpt column skipped: {rows[0]['litgpt_skipped']}")
    print(
        "ours/hf > 1: our Trainer step on DecoderLM is faster than on GPT2LMHeadModel (goal 1.0)."
    )
    print("ours/litgpt > 1: the textbook loop is faster on DecoderLM than on LitGPT (goal 1.0).")
    print("trainer overhead: extra time of a Trainer step over the textbook loop, same model.")
    if args.json:
        print(
            json.dumps({"benchmark": "training", "threads": torch.get_num_threads(), "rows": rows})
        )


if __name__ == "__main__":
    main()
