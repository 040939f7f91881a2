"""How many bytes one GPU holds while training: model states plus activations.

**Model states** (Rajbhandari et al. 2020, ZeRO, §3.1). Mixed-precision Adam keeps, for each of
the Ψ parameters, 2 bytes of 16-bit weights, 2 bytes of 16-bit gradients and K = 12 bytes of
fp32 optimizer state (master weights, first and second moments): 16Ψ bytes. ZeRO data
parallelism over N_d GPUs partitions them instead of replicating them (§5, Figure 1):

    stage 0 (plain DDP)        2Ψ + 2Ψ + 12Ψ
    stage 1 (P_os)             2Ψ + 2Ψ + 12Ψ/N_d
    stage 2 (P_os+g)           2Ψ + (2Ψ + 12Ψ)/N_d
    stage 3 (P_os+g+p, FSDP)   (2Ψ + 2Ψ + 12Ψ)/N_d

**Activations** (Korthikanti et al. 2022, *Reducing Activation Recomputation in Large
Transformer Models*, §4 and Table 2). For sequence length s, micro-batch b, hidden size h and
a heads, one GPT-style layer (multi-head attention, 4h GELU MLP, dropout, 16-bit activations)
keeps sbh(34 + 5as/h) bytes for the backward pass: 34 sbh for the tensors whose size grows
with s, 5as²b for the attention scores, softmax and dropout mask. Recomputing in the backward
pass trades FLOPs for memory:

    recompute="none"       sbh(34 + 5as/h)     per layer
    recompute="selective"  34·sbh              (only the attention-score block is recomputed)
    recompute="full"       2·sbh               (only each layer's input is kept)

Not counted: the embedding and output layers' activations (the s·b·V logits matter for small
models with large vocabularies), temporary buffers, fragmentation and the CUDA context.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmcourse.config import ModelConfig
from llmcourse.scaling._checks import check_count, check_positive

BYTES_PER_PARAM = {"weights": 2, "gradients": 2, "optimizer_states": 12}  # ZeRO §3.1, K = 12
ZERO_STAGES = (0, 1, 2, 3)
RECOMPUTE = ("none", "selective", "full")


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes held by one GPU, split by what they store."""

    weights: float
    gradients: float
    optimizer_states: float
    activations: float = 0.0

    @property
    def model_states(self) -> float:
        return self.weights + self.gradients + self.optimizer_states

    @property
    def total(self) -> float:
        return self.model_states + self.activations

    def gigabytes(self) -> dict[str, float]:
        """Each part in GB (10^9 bytes, the unit of the ZeRO paper and of GPU datasheets)."""
        parts = ("weights", "gradients", "optimizer_states", "activations")
        sizes = {part: getattr(self, part) / 1e9 for part in parts}
        return {**sizes, "total": self.total / 1e9}

    def __str__(self) -> str:
        return "\n".join(f"{part:<17} {size:10.2f} GB" for part, size in self.gigabytes().items())


def model_state_bytes(n_params: float, n_gpus: int = 1, zero_stage: int = 0) -> TrainingMemory:
    """Per-GPU bytes of weights, gradients and Adam states under ZeRO stage 0-3.

    Rajbhandari et al. 2020, Figure 1: 7.5B parameters on 64 GPUs hold 120 GB each with plain
    data parallelism, then 31.4, 16.6 and 1.9 GB with stages 1, 2 and 3.
    """
    check_positive(n_params=n_params)
    check_count(n_gpus=n_gpus)
    if zero_stage not in ZERO_STAGES:
        raise ValueError(f"zero_stage must be one of {ZERO_STAGES}, got {zero_stage!r}.")
    sharded = {
        "optimizer_states": zero_stage >= 1,
        "gradients": zero_stage >= 2,
        "weights": zero_stage >= 3,
    }
    return TrainingMemory(
        **{
            part: n_params * per_param / (n_gpus if sharded[part] else 1)
            for part, per_param in BYTES_PER_PARAM.items()
        }
    )


def activation_bytes_per_layer(
    seq_len: int,
    batch_size: int,
    d_model: int,
    n_head: int,
    recompute: str = "none",
    tensor_parallel: int = 1,
    sequence_parallel: bool = False,
) -> float:
    """Activation bytes one Transformer layer keeps for backward (Korthikanti et al. 2022, Table 2).

    With tensor parallelism over t GPUs the attention and MLP activations are split t ways but
    the 10·sbh around the layer norms and dropouts are replicated, giving
    sbh(10 + 24/t + 5as/(ht)); sequence parallelism splits those too, sbh/t·(34 + 5as/h).
    Selective recomputation drops the 5as/h term; full recomputation keeps only the layer's
    2·sbh input (the layer being recomputed is transiently alive on top, as Table 2 leaves out).
    Shapes: (seq_len, batch_size, d_model) activations, ``n_head`` attention heads.
    """
    check_count(
        seq_len=seq_len,
        batch_size=batch_size,
        d_model=d_model,
        n_head=n_head,
        tensor_parallel=tensor_parallel,
    )
    if recompute not in RECOMPUTE:
        raise ValueError(f"recompute must be one of {RECOMPUTE}, got {recompute!r}.")
    s, b, h, a, t = seq_len, batch_size, d_model, n_head, tensor_parallel
    sbh = s * b * h
    if recompute == "full":
        return 2.0 * sbh
    linear = 34.0 / t if sequence_parallel else 10.0 + 24.0 / t
    scores = 0.0 if recompute == "selective" else 5.0 * a * s / (h * t)
    return sbh * (linear + scores)


def training_memory(
    n_params: float,
    n_layer: int,
    d_model: int,
    n_head: int,
    seq_len: int,
    batch_size: int,
    *,
    n_gpus: int = 1,
    zero_stage: int = 0,
    recompute: str = "none",
) -> TrainingMemory:
    """Bytes per GPU to train a Transformer with mixed-precision Adam and ZeRO data parallelism.

    Model states from ``model_state_bytes`` (Rajbhandari et al. 2020) plus n_layer times the
    per-layer activations of ``activation_bytes_per_layer`` (Korthikanti et al. 2022).
    ``batch_size`` is the micro-batch each GPU processes; ``n_gpus`` the data-parallel degree.
    """
    states = model_state_bytes(n_params, n_gpus=n_gpus, zero_stage=zero_stage)
    check_count(n_layer=n_layer)
    per_layer = activation_bytes_per_layer(
        seq_len, batch_size, d_model, n_head, recompute=recompute
    )
    return TrainingMemory(
        weights=states.weights,
        gradients=states.gradients,
        optimizer_states=states.optimizer_states,
        activations=n_layer * per_layer,
    )


def training_memory_for_config(
    config: ModelConfig,
    n_params: float,
    batch_size: int,
    seq_len: int | None = None,
    *,
    n_gpus: int = 1,
    zero_stage: int = 0,
    recompute: str = "none",
) -> TrainingMemory:
    """``training_memory`` with the shape read from a ``ModelConfig``.

    Pass ``n_params=llmcourse.models.counting.count_parameters(config)``; ``seq_len`` defaults
    to the config's context length. Korthikanti's count is for GPT-style blocks; for LLaMA-style
    configs (grouped-query attention, SwiGLU, no dropout) it is an approximation, and
    encoder-decoder configs (two stacks, cross-attention) are refused.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a llmcourse.config.ModelConfig, got {type(config)}.")
    if config.architecture == "encoder-decoder":
        raise ValueError(
            f"{config.name!r} is an encoder-decoder; the per-layer activation count covers "
            "self-attention blocks only. Call training_memory() with the numbers of each stack."
        )
    return training_memory(
        n_params,
        config.n_layer,
        config.d_model,
        config.n_head,
        config.context_length if seq_len is None else seq_len,
        batch_size,
        n_gpus=n_gpus,
        zero_stage=zero_stage,
        recompute=recompute,
    )
