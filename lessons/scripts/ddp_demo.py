"""The same training script on 1 or N processes: ``torchrun --nproc_per_node=2 ddp_demo.py``.

A character bigram model learns from Shakespeare. Every step draws one *global* batch; each
process takes its own slice of it, computes gradients on that slice, and DistributedDataParallel
averages the gradients across processes before the optimizer step. So 1 process and 2 processes
end with the same weights (up to float rounding): data parallelism changes who computes, not what.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from llmcourse.pretrained import shakespeare
from llmcourse.utils import seed_everything
from llmcourse.utils.distributed import all_reduce_mean, cleanup_distributed, init_distributed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--global-batch", type=int, default=64)
    args = parser.parse_args()

    ctx = init_distributed()
    if args.global_batch % ctx.world_size:
        raise SystemExit(f"--global-batch must be divisible by the {ctx.world_size} processes")
    seed_everything(0)  # same seed everywhere: identical initial weights and identical batches

    text = shakespeare("train")[:200_000]
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(c) for c in text])
    model: torch.nn.Module = torch.nn.Embedding(len(vocab), len(vocab))  # logits of next char
    if ctx.is_distributed:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)

    per_rank = args.global_batch // ctx.world_size
    for step in range(args.steps):
        starts = torch.randint(0, len(ids) - 1, (args.global_batch,))  # the same on every rank
        mine = starts[ctx.rank * per_rank : (ctx.rank + 1) * per_rank]  # this rank's slice
        logits = model(ids[mine])
        loss = torch.nn.functional.cross_entropy(logits, ids[mine + 1])
        optimizer.zero_grad()
        loss.backward()  # DDP all-reduces (averages) the gradients here
        optimizer.step()
        global_loss = all_reduce_mean(loss.detach().clone())
        if ctx.is_main and (step % 10 == 0 or step == args.steps - 1):
            print(f"step {step:3d}  loss {global_loss.item():.4f}", flush=True)

    weights = (model.module if ctx.is_distributed else model).weight.detach()
    checksum = torch.tensor([weights.double().sum().item()], dtype=torch.float64)
    gathered = [torch.zeros(1, dtype=torch.float64) for _ in range(ctx.world_size)]
    if ctx.is_distributed:
        dist.all_gather(gathered, checksum)
    else:
        gathered = [checksum]
    if ctx.is_main:
        report = {
            "world_size": ctx.world_size,
            "backend": ctx.backend,
            "final_loss": round(global_loss.item(), 6),
            "weight_checksums": [round(c.item(), 6) for c in gathered],
        }
        print("RESULT " + json.dumps(report), flush=True)
    cleanup_distributed()


if __name__ == "__main__":
    main()
