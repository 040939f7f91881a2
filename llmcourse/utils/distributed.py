"""torch.distributed for the course: set up from ``torchrun``'s environment, average, tear down.

``torchrun --nproc_per_node=N script.py`` starts N copies of a script and tells each one who it
is through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``). ``init_distributed`` reads them, joins the process group (NCCL between GPUs,
gloo on CPUs) and returns a small context; run without ``torchrun`` it returns a one-process
context and the same script works unchanged. On several machines, run ``torchrun`` on each with
``--nnodes``, ``--node_rank`` and ``--rdzv_endpoint``; nothing in the script changes.

``ring_all_reduce`` simulates, in one process, the algorithm NCCL and Horovod use to average
gradients (Patarasuk & Yuan 2009; Sergeev & Del Balso 2018): each of n workers sends and receives
2(n-1)/n of its data, however many workers there are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from llmcourse.utils.devices import device as pick_device


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None  # None when running as a single process

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and writes checkpoints; the others only compute."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(backend: str | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` describes, or run as a single process.

    ``backend`` defaults to ``"nccl"`` when CUDA is available and ``"gloo"`` otherwise. Each
    process on a GPU machine takes the GPU of its ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size == 1 and not dist.is_initialized():
        return DistributedContext(0, 0, 1, pick_device(), None)
    if "MASTER_ADDR" not in os.environ and not dist.is_initialized():
        raise RuntimeError(
            f"WORLD_SIZE={world_size} but MASTER_ADDR is not set: launch with torchrun, e.g. "
            "`torchrun --nproc_per_node=2 script.py`, which sets every variable needed."
        )
    use_cuda = torch.cuda.is_available() and backend in (None, "nccl")
    chosen_backend = backend or ("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        run_device = torch.device("cuda", local_rank)
    else:
        run_device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(chosen_backend)
    return DistributedContext(
        dist.get_rank(), local_rank, dist.get_world_size(), run_device, chosen_backend
    )


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over all processes, in place (a no-op in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def cleanup_distributed() -> None:
    """Leave the process group (call once at the end of a ``torchrun`` script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def ring_all_reduce(tensors: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], int]:
    """Average ``tensors[i]`` (worker i's data) across workers the way a ring all-reduce does.

    Every worker splits its tensor into n chunks. *Reduce-scatter*: in each of n-1 steps worker
    i passes one partial sum to worker i+1, which adds its own chunk; afterwards worker i holds the
    complete sum of chunk (i+1) mod n. *All-gather*: n-1 more steps pass the finished chunks round
    the ring until everyone has all of them. Returns each worker's result (all equal to the mean)
    and how many elements worker 0 sent: 2(n-1)/n of the tensor, so the traffic per worker hardly
    grows with n — why data-parallel training scales to many GPUs.
    """
    n = len(tensors)
    if n == 0:
        raise ValueError("ring_all_reduce needs at least one worker's tensor.")
    shape = tensors[0].shape
    if any(t.shape != shape for t in tensors):
        shapes = [tuple(t.shape) for t in tensors]
        raise ValueError(f"Every worker must hold the same shape; got {shapes}.")
    # chunks[w][c]: worker w's copy of chunk c (flattened views of a private copy).
    chunks = [list(torch.tensor_split(t.detach().flatten().clone(), n)) for t in tensors]
    sent = 0
    for step in range(n - 1):  # reduce-scatter
        outgoing = [chunks[w][(w - step) % n].clone() for w in range(n)]
        for w in range(n):
            receiver, c = (w + 1) % n, (w - step) % n
            chunks[receiver][c] += outgoing[w]
        sent += outgoing[0].numel()
    for step in range(n - 1):  # all-gather: pass the completed chunks round
        outgoing = [chunks[w][(w + 1 - step) % n].clone() for w in range(n)]
        for w in range(n):
            receiver, c = (w + 1) % n, (w + 1 - step) % n
            chunks[receiver][c] = outgoing[w]
        sent += outgoing[0].numel()
    results = [torch.cat(worker).reshape(shape) / n for worker in chunks]
    return results, sent
