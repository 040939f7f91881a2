"""Run by ``torchrun --nproc_per_node=2`` (test_train_distributed.py): FSDP2 with
``TrainConfig.mixed_precision`` on gloo. Prints ``RESULT {json}`` on rank 0 with, per policy, the
dtypes the layers computed in, the dtypes of the sharded weights and gradients, and whether
every reduced gradient is exactly a bf16 number (true when the reduction itself ran in bf16)."""

import json

import torch

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.train import TrainConfig, causal_lm_loss
from llmcourse.train.parallel import wrap_model
from llmcourse.utils.distributed import cleanup_distributed, init_distributed
from llmcourse.utils.seed import seed_everything

POLICIES = {
    "none": (None, None),
    "bf16/fp32": ("bf16", "fp32"),
    "bf16/bf16": ("bf16", None),
    "fp16/fp16": ("fp16", None),
}


def main() -> None:
    ctx = init_distributed()
    results = {}
    for name, (param, reduce) in POLICIES.items():
        seed_everything(0)
        model = DecoderLM(
            ModelConfig(vocab_size=32, context_length=16, d_model=32, n_layer=2, n_head=4)
        )
        config = TrainConfig(parallel="fsdp", mixed_precision=param, mixed_precision_reduce=reduce)
        model = wrap_model(model, config, ctx)
        computed = set()
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_pre_hook(
                    lambda m, args, seen=computed: seen.add(
                        str(m.weight.dtype).removeprefix("torch.")
                    )
                )
        # Different data on each process, so the reduced gradient is a real sum.
        ids = torch.randint(0, 32, (4, 16), generator=torch.Generator().manual_seed(ctx.rank))
        causal_lm_loss(model(ids).logits, ids).backward()
        grads = [p.grad.to_local() for p in model.parameters() if p.grad is not None]
        results[name] = {
            "computed_in": sorted(computed),
            "weights": sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()}),
            "grads": sorted({str(g.dtype).removeprefix("torch.") for g in grads}),
            "grads_are_bf16_numbers": all(
                torch.equal(g, g.bfloat16().float()) for g in grads if g.numel()
            ),
        }
    if ctx.is_main:
        print("RESULT " + json.dumps(results), flush=True)
    cleanup_distributed()


if __name__ == "__main__":
    main()
