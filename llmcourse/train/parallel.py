"""One model, many processes: DDP, FSDP2 and ZeRO-1, and checkpoints that gather the shards.

- **DDP** (Li et al. 2020): every process holds the whole model; after the backward pass the
  gradients are averaged with an all-reduce (in buckets, overlapped with the backward pass), so
  every replica takes the same step. Memory per GPU: the full 16 bytes/parameter of mixed-
  precision Adam.
- **ZeRO-1** (Rajbhandari et al. 2020): DDP, but each process keeps the optimizer state (Adam's
  two moments, 8 of those 16 bytes) for only its 1/N of the parameters, updates that share and
  broadcasts it (``ZeroRedundancyOptimizer``).
- **FSDP** (Zhao et al. 2023; ZeRO-3): parameters, gradients and optimizer state are all
  sharded; each layer's weights are all-gathered just before it runs and freed after, and
  gradients are reduce-scattered. PyTorch's FSDP2 is ``fully_shard``: applied to every
  Transformer block, then to the root, so one layer at a time is ever whole.
- **FSDP mixed precision** (``TrainConfig.mixed_precision``; Micikevicius et al. 2018): the
  shards stay fp32 (the optimizer's master weights), but each layer is all-gathered, run and
  differentiated in bf16/fp16, halving the gather traffic and the activations; gradients are
  reduce-scattered in ``mixed_precision_reduce`` (fp32 keeps the sum over processes exact to
  fp32 rounding) and land in the fp32 shards. Unlike autocast it casts whole modules, once.

A checkpoint always holds the *full*, unsharded state (``gather_state``), so a run saved by 8
FSDP processes loads into a single-process model, and vice versa (``restore_state``).

``torch.distributed``'s FSDP, ZeRO and checkpoint modules take seconds to import, so they are
imported where used: a single-process run in a notebook never pays for them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from llmcourse.nn.blocks import TransformerBlock
from llmcourse.train.config import TrainConfig
from llmcourse.utils.distributed import DistributedContext


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices, none on norms, biases and embeddings.

    Weight decay shrinks weights towards zero. That regularises the matrices that mix features,
    but pulling norm gains towards 0 or biases towards 0 only fights the model, and embedding
    rows of rare tokens, updated seldom, would decay away between updates (a tied output layer
    shares the embedding's weight and is treated as the embedding).
    """
    embeddings = {
        id(p)
        for module in model.modules()
        if isinstance(module, nn.Embedding)
        for p in module.parameters(recurse=False)
    }
    decay, no_decay = [], []
    for parameter in model.parameters():  # each shared (tied) parameter once
        if not parameter.requires_grad:
            continue
        if parameter.dim() < 2 or id(parameter) in embeddings:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def wrap_model(model: nn.Module, config: TrainConfig, ctx: DistributedContext) -> nn.Module:
    """The model as training sees it: itself (one process), DDP or FSDP2 (several)."""
    if not ctx.is_distributed:
        return model
    if config.parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # DDP copies rank 0's weights to every process; fully_shard keeps each process's own
        # slice, so make sure they all start from the same weights first.
        for tensor in [*model.parameters(), *model.buffers()]:
            torch.distributed.broadcast(tensor.data, src=0)
        options = {"mp_policy": mixed_precision_policy(config)}
        for module in model.modules():
            if isinstance(module, TransformerBlock):
                fully_shard(module, **options)
        fully_shard(model, **options)  # the rest: embeddings, final norm, output layer
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def mixed_precision_policy(config: TrainConfig) -> Any:
    """FSDP2's ``MixedPrecisionPolicy`` for ``config.mixed_precision`` (parameter dtype) and
    ``config.mixed_precision_reduce`` (gradient reduction dtype; None: the parameter dtype)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if config.mixed_precision is None:
        return MixedPrecisionPolicy()
    reduce = config.mixed_precision_reduce
    return MixedPrecisionPolicy(
        param_dtype=DTYPES[config.mixed_precision],
        reduce_dtype=None if reduce is None else DTYPES[reduce],
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside a DDP wrapper (FSDP2 shards the model in place)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def build_optimizer(
    model: nn.Module, config: TrainConfig, ctx: DistributedContext
) -> torch.optim.Optimizer:
    """AdamW over ``parameter_groups`` (call after ``wrap_model``: FSDP replaces parameters)."""
    groups = parameter_groups(unwrap(model), config.weight_decay)
    options = {"lr": config.lr, "betas": config.betas, "eps": config.eps}
    if config.zero1 and ctx.is_distributed:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, **options)
    return torch.optim.AdamW(groups, **options)


@contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce for this backward pass when ``enabled`` is False.

    With gradient accumulation only the last micro-batch needs the averaged gradient; the
    earlier ones just add into ``.grad`` locally, saving one all-reduce each.
    """
    if enabled:
        yield
    elif isinstance(model, DistributedDataParallel):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):  # sharded by FSDP2's fully_shard
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def gather_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, ctx: DistributedContext
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full model and optimizer state dicts on rank 0 (other ranks get empty dicts).

    Every process must call this (the shards are gathered with collectives). Keys are the
    unwrapped model's parameter names, with no ``module.`` prefix and no sharding.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    model_state = gather_model_state(model, ctx)
    if _is_zero(optimizer):
        optimizer.consolidate_state_dict(to=0)
        return model_state, (optimizer.state_dict() if ctx.is_main else {})
    options = StateDictOptions(full_state_dict=True, cpu_offload=ctx.is_distributed)
    return model_state, get_optimizer_state_dict(model, optimizer, options=options)


def gather_model_state(model: nn.Module, ctx: DistributedContext) -> dict[str, torch.Tensor]:
    """The full weights, named as in the unwrapped model, on rank 0 (others: an empty dict)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=ctx.is_distributed)
    return get_model_state_dict(model, options=options)


def restore_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    model_state: dict[str, Any],
    optimizer_state: dict[str, Any],
    ctx: DistributedContext,
) -> None:
    """Load full state dicts into a (possibly wrapped or sharded) model and its optimizer.

    Under several processes only rank 0 needs the dicts (the others may pass empty ones): rank 0
    broadcasts them and each process keeps its own shard.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    if _is_zero(optimizer):
        objects = [model_state, optimizer_state]
        torch.distributed.broadcast_object_list(objects, src=0)
        unwrap(model).load_state_dict(objects[0])
        optimizer.load_state_dict(objects[1])
        return
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=ctx.is_distributed)
    set_model_state_dict(model, model_state, options=options)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)


def _is_zero(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` is a ``ZeroRedundancyOptimizer`` (without importing it needlessly)."""
    zero = getattr(sys.modules.get("torch.distributed.optim"), "ZeroRedundancyOptimizer", None)
    return zero is not None and isinstance(optimizer, zero)
