"""Tensor parallelism (Shoeybi et al. 2019, Megatron-LM): split every layer across processes.

Data parallelism copies the model; tensor parallelism cuts each weight matrix so that a layer
too large for one GPU runs on several. The MLP ``y = W_down · act(W_up · x)`` splits without
any communication in the middle:

- ``W_up`` by output features ("column parallel"): process r computes hidden units
  ``h_r = act(W_up[r] · x)``, its own slice (the activation is elementwise, so it needs nothing
  from the other slices; a gated MLP splits ``W_gate`` the same way);
- ``W_down`` by input features ("row parallel"): process r computes ``W_down[:, r] · h_r``, a
  partial sum of y, and one **all-reduce** adds the partial sums.

Attention splits by heads, which are independent: q/k/v projections column-parallel (each
process gets n_head/N heads), the output projection row-parallel, one all-reduce. So a
Transformer layer costs two all-reduces forward and two backward: fast inside one NVLink
machine, too chatty across machines (where pipeline and data parallelism take over).

``split_mlp`` does the arithmetic in one process for the lesson; ``apply_tensor_parallel``
does it for real with ``torch.distributed.tensor.parallel`` (runs on gloo/CPU and NCCL/GPU).
Run ``torchrun --nproc_per_node=2 -m llmcourse.train.tensor_parallel`` to check that a split
model computes the same logits and gradients as the whole one.
"""

from __future__ import annotations

import json

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

from llmcourse.nn.attention import MultiHeadAttention
from llmcourse.nn.feedforward import MLP, GatedMLP


def split_mlp(mlp: MLP | GatedMLP, x: torch.Tensor, n_shards: int) -> torch.Tensor:
    """``mlp(x)`` computed as ``n_shards`` column/row slices whose outputs are summed.

    Each loop iteration is what one process of a tensor-parallel group computes; the final
    sum is the all-reduce. ``x`` is ``(..., d_model)``; the hidden width must divide evenly.
    """
    hidden = mlp.up_proj.out_features
    if hidden % n_shards:
        raise ValueError(f"The hidden width {hidden} does not split into {n_shards} equal shards.")
    width = hidden // n_shards
    total = torch.zeros((), dtype=x.dtype)
    for shard in range(n_shards):
        rows = slice(shard * width, (shard + 1) * width)
        up = nn.functional.linear(x, mlp.up_proj.weight[rows], _bias(mlp.up_proj, rows))
        if isinstance(mlp, GatedMLP):
            gate = nn.functional.linear(x, mlp.gate_proj.weight[rows], _bias(mlp.gate_proj, rows))
            h = mlp.activation(gate) * up
        else:
            h = mlp.activation(up)
        total = total + nn.functional.linear(h, mlp.down_proj.weight[:, rows])  # partial sum
    if mlp.down_proj.bias is not None:
        total = total + mlp.down_proj.bias  # added once, after the all-reduce
    return total


def _bias(layer: nn.Linear, rows: slice) -> torch.Tensor | None:
    return None if layer.bias is None else layer.bias[rows]


def apply_tensor_parallel(model: nn.Module, mesh: DeviceMesh) -> nn.Module:
    """Split every attention and MLP module of ``model`` over ``mesh`` (in place).

    Embeddings, norms and the output layer stay replicated. Each process keeps
    ``n_head / N`` query heads and ``n_kv_head / N`` key/value heads.
    """
    size = mesh.size()
    for module in list(model.modules()):
        if isinstance(module, MultiHeadAttention):
            if module.n_head % size or module.n_kv_head % size:
                raise ValueError(
                    f"{module.n_head} query and {module.n_kv_head} key/value heads do not split "
                    f"evenly over {size} processes."
                )
            plan = {name: ColwiseParallel() for name in ("q_proj", "k_proj", "v_proj")}
            parallelize_module(module, mesh, {**plan, "o_proj": RowwiseParallel()})
            module.n_head //= size  # the heads this process computes
            module.n_kv_head //= size
        elif isinstance(module, (MLP, GatedMLP)):
            if module.up_proj.out_features % size:
                raise ValueError(
                    f"The MLP width {module.up_proj.out_features} does not split over {size}."
                )
            plan = {"up_proj": ColwiseParallel(), "down_proj": RowwiseParallel()}
            if isinstance(module, GatedMLP):
                plan["gate_proj"] = ColwiseParallel()
            parallelize_module(module, mesh, plan)
    return model


def _check() -> dict[str, float]:
    """On every process: a split DecoderLM against the whole one (logits and gradients)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from llmcourse.config import ModelConfig
    from llmcourse.models import DecoderLM
    from llmcourse.train.objectives import causal_lm_loss
    from llmcourse.utils.distributed import init_distributed

    ctx = init_distributed()
    torch.manual_seed(0)
    results = {}
    llama = {"position": "rope", "norm": "rmsnorm", "mlp": "swiglu", "n_kv_head": 2}
    for name, extra in (("gpt2", {}), ("llama", llama)):
        config = ModelConfig(
            vocab_size=97, context_length=16, d_model=32, n_layer=2, n_head=4, **extra
        )
        whole = DecoderLM(config)
        split = DecoderLM(config)
        split.load_state_dict(whole.state_dict())
        apply_tensor_parallel(split, init_device_mesh(ctx.device.type, (ctx.world_size,)))
        ids = torch.randint(0, config.vocab_size, (3, 16))
        logits = [model(ids).logits for model in (whole, split)]
        for out in logits:
            causal_lm_loss(out, ids).backward()
        grads = {n: p.grad for n, p in whole.named_parameters()}
        grad_error = max(
            float((_full(p.grad) - grads[n]).abs().max()) for n, p in split.named_parameters()
        )
        results[name] = {
            "logits_max_abs_diff": float((logits[0] - _full(logits[1])).abs().max()),
            "grad_max_abs_diff": grad_error,
        }
    if ctx.is_main:
        print("RESULT " + json.dumps({"world_size": ctx.world_size, **results}), flush=True)
    dist.destroy_process_group()
    return results


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor gathered to a plain tensor (plain tensors pass through)."""
    tensor = tensor.detach()
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


if __name__ == "__main__":
    _check()
