"""Micro-batches from rollouts: sample with the current policy, then several epochs over them.

On-policy RL (PPO, GRPO) alternates two phases. **Collect**: the task's ``rollout(model)``
samples responses from the policy as it is now and scores them, giving a block of rows (tokens,
masks, the sampling log-probs π_old, advantages, ...). **Learn**: ``epochs`` passes over that
block in shuffled micro-batches of ``batch_size`` rows; several optimizer steps reuse the same
samples, which PPO's clipped ratio π_θ/π_old keeps honest (Schulman et al. 2017, §5). Then the
next rollout, from the updated policy.

``RolloutBatches`` is that schedule as a stream with the same face as ``ShardedBatches``:
``next`` gives the next micro-batch, asking for a rollout when the current one is used up. The
shuffle of epoch e of rollout k depends only on ``(seed, k, e)``, so a checkpoint needs the
rollout's rows, k and the position in it (``state_dict``), nothing else.

Two helpers every rollout uses: ``response_mask`` (which positions of prompt + sampled tokens
are response tokens, up to and including the stop token) and ``response_ids`` (each row's
response as a list, what a reward function reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from llmcourse.train.batches import row_count, rows, to_device


class RolloutBatches:
    """An endless stream of micro-batches over successive rollouts (see the module docstring).

    ``collect()`` returns ``(rows, metrics)``; ``group`` is the number of micro-batches of one
    optimizer step (``grad_accum_steps``), which must divide the micro-batches of a rollout so
    that every rollout starts a step: the policy that samples is always the freshly updated one.
    """

    def __init__(
        self,
        collect: Callable[[], tuple[Any, dict[str, float]]],
        batch_size: int,
        epochs: int,
        *,
        seed: int = 0,
        group: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"rollout_epochs must be a positive integer, got {epochs!r}.")
        self.collect, self.batch_size, self.epochs = collect, batch_size, epochs
        self.seed, self.group, self.device = seed, group, torch.device(device)
        self.rollouts = 0  # rollouts collected so far
        self.position = 0  # micro-batches handed out from the current rollout
        self.data: Any = None
        self.metrics: dict[str, float] = {}

    @property
    def per_epoch(self) -> int:
        return row_count(self.data) // self.batch_size

    def __next__(self) -> Any:
        if self.data is None or self.position == self.epochs * self.per_epoch:
            self._new_rollout()
        epoch, offset = divmod(self.position, self.per_epoch)
        order = torch.randperm(
            row_count(self.data), generator=torch.Generator().manual_seed(self._seed(epoch))
        )
        self.position += 1
        return rows(self.data, order[offset * self.batch_size : (offset + 1) * self.batch_size])

    def __iter__(self) -> RolloutBatches:
        return self

    def _seed(self, epoch: int) -> int:
        # Python hashes tuples of ints the same in every process and run.
        return hash((self.seed, self.rollouts, epoch)) % (2**63)

    def _new_rollout(self) -> None:
        data, metrics = self.collect()
        n_rows = row_count(data)
        per_rollout = self.epochs * (n_rows // self.batch_size)
        if n_rows < self.batch_size or per_rollout % self.group:
            raise ValueError(
                f"A rollout of {n_rows} rows gives {self.epochs} epoch(s) x "
                f"{n_rows // self.batch_size} micro-batch(es) of batch_size={self.batch_size}, "
                f"which grad_accum_steps={self.group} must divide (and be at least 1): make the "
                "rollout a multiple of batch_size x grad_accum_steps."
            )
        self.data, self.metrics = data, dict(metrics)
        self.rollouts += 1
        self.position = 0

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue mid-rollout: its rows (on the CPU) and place."""
        state: dict[str, Any] = {"rollouts": self.rollouts, "position": self.position}
        if self.data is not None:
            state["data"] = to_device(self.data, torch.device("cpu"))
            state["metrics"] = self.metrics
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rollouts, self.position = state["rollouts"], state["position"]
        data = state.get("data")
        self.data = None if data is None else to_device(data, self.device)
        self.metrics = dict(state.get("metrics", {}))


def response_mask(
    tokens: torch.Tensor, prompt_len: int, stop_token: int | None = None
) -> torch.Tensor:
    """``(batch, seq - 1)`` float mask aligned with next-token log-probs (entry t scores token
    t + 1): 1 on the response tokens of ``tokens`` ``(batch, seq)``, up to and including the
    first ``stop_token``; 0 on the prompt and on whatever ``generate`` wrote after a row stopped.
    """
    mask = torch.zeros_like(tokens, dtype=torch.float32)
    mask[:, prompt_len:] = 1.0
    if stop_token is not None:
        stopped = (tokens[:, prompt_len:] == stop_token).long().cumsum(-1)
        after_stop = torch.cat((torch.zeros_like(stopped[:, :1]), stopped[:, :-1]), -1) > 0
        mask[:, prompt_len:] *= (~after_stop).float()
    return mask[:, 1:]


def response_ids(tokens: torch.Tensor, mask: torch.Tensor, prompt_len: int) -> list[list[int]]:
    """Each row's response tokens (where ``response_mask`` is 1) as a list of ids."""
    return [
        row[prompt_len:][m[prompt_len - 1 :] > 0].tolist()
        for row, m in zip(tokens, mask, strict=True)
    ]
