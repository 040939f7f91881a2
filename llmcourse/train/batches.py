"""Micro-batches for one process that can stop and resume at the exact same example.

``TensorRows`` makes a dataset of the rows of already-built tensors (preference pairs, a
rollout); ``rows`` and ``to_device`` index and move such (possibly nested) dicts of tensors.

``DistributedSampler`` gives process r every world_size-th index of a (shuffled) epoch, so the
processes see disjoint slices and together the whole dataset. With one process and a batch of
B, or two processes and B/2 each, a step covers the very same examples: index i of the global
order goes to process i mod world_size.

The position (micro-batches consumed) is all a checkpoint needs: the epoch and the offset in
it follow, and the shuffle of an epoch depends only on ``seed + epoch``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from llmcourse.utils.distributed import DistributedContext


def rows(batch: Any, index: torch.Tensor | int) -> Any:
    """The rows ``index`` of every tensor in a (nested) dict/list of ``(rows, ...)`` tensors."""
    if isinstance(batch, torch.Tensor):
        return batch[index]
    if isinstance(batch, dict):
        return {key: rows(value, index) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(rows(value, index) for value in batch)
    return batch


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor moved to ``device`` (dicts, lists and tuples followed)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def row_count(batch: Any) -> int:
    """The number of rows of a (nested) dict of tensors, checked to agree everywhere."""
    sizes = set()

    def visit(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            sizes.add(value.shape[0] if value.dim() else None)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit(batch)
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"Every tensor of the batch needs the same first (row) dimension; got sizes "
            f"{sorted(sizes, key=str)}."
        )
    return sizes.pop()


class TensorRows(Dataset):
    """The rows of a (nested) dict of tensors that share their first dimension, as a dataset.

    ``TensorRows({"chosen_ids": (n, T), "chosen_mask": (n, T), ...})[i]`` is row i of each;
    the default collate function stacks rows back into a batch.
    """

    def __init__(self, batch: Any) -> None:
        self.batch, self.n_rows = batch, row_count(batch)

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, index: int) -> Any:
        return rows(self.batch, index)


class ShardedBatches:
    """An endless, resumable stream of this process's micro-batches (epochs roll over)."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        ctx: DistributedContext,
        *,
        shuffle: bool = True,
        seed: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        num_workers: int = 0,
    ) -> None:
        # drop_last: every process gets the same number of examples (no padding by repeats).
        self.sampler = DistributedSampler(
            dataset,
            num_replicas=ctx.world_size,
            rank=ctx.rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=True,
        )
        self.batches_per_epoch = len(self.sampler) // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"The dataset has {len(dataset)} examples: fewer than one batch of {batch_size} "
                f"for each of {ctx.world_size} process(es). Use a smaller batch_size or more data."
            )
        self.dataset, self.batch_size = dataset, batch_size
        self.collate_fn, self.num_workers = collate_fn, num_workers
        self.position = 0  # micro-batches handed out so far
        self._iterator: Iterator[Any] | None = None

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._start()
        try:
            batch = next(self._iterator)
        except StopIteration:  # end of an epoch: start the next one
            self._iterator = self._start()
            batch = next(self._iterator)
        self.position += 1
        return batch

    def __iter__(self) -> ShardedBatches:
        return self

    def seek(self, position: int) -> None:
        """Continue from micro-batch ``position`` (as saved in a checkpoint)."""
        if position < 0:
            raise ValueError(f"position must be ≥ 0, got {position}.")
        self.position, self._iterator = position, None

    def _start(self) -> Iterator[Any]:
        epoch, offset = divmod(self.position, self.batches_per_epoch)
        self.sampler.set_epoch(epoch)
        indices = list(self.sampler)[offset * self.batch_size :]
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=indices,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            drop_last=True,
            # Its own generator: a DataLoader iterator otherwise draws a seed from the global RNG,
            # and a resumed run (which starts an iterator mid-epoch) would drift from the original.
            generator=torch.Generator().manual_seed(self.sampler.seed + epoch),
        )
        return iter(loader)


def curriculum_length(
    step: int, warmup_steps: int, start: int, full: int, multiple: int = 8
) -> int:
    """Sequence length at ``step`` of a linear length warm-up from ``start`` to ``full`` tokens.

    Short sequences early are cheaper per step and, at a large batch, stabilise the start of
    training (Li et al. 2022, "The stability-efficiency dilemma"). Rounded down to a multiple of
    ``multiple`` (kernels like aligned shapes), never below ``start`` nor above ``full``.
    """
    if warmup_steps <= 0 or step >= warmup_steps:
        return full
    length = start + (full - start) * step / warmup_steps
    return max(min(start, full), min(full, int(length) // multiple * multiple))


def truncate_batch(batch: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
    """Keep the first ``length`` positions of every ``(batch, seq)`` tensor of a batch."""
    return {
        key: value[:, :length] if isinstance(value, torch.Tensor) and value.dim() == 2 else value
        for key, value in batch.items()
    }
