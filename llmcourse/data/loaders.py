"""Causal language-model datasets over a token stream: random windows and contiguous blocks.

Pre-training draws windows of ``context_length`` tokens from anywhere in the packed corpus
(nanoGPT samples a random offset per sequence); since documents are joined with EOS, a window
may span several documents. Evaluation instead walks the corpus in non-overlapping blocks so
every token is scored once.

Each item is a dict of int64 tensors of shape (context_length,):

- ``input_ids``: the tokens;
- ``labels``: the same tokens. Labels stay aligned with the inputs and the loss shifts them by
  one position (predict ``labels[t + 1]`` from ``input_ids[: t + 1]``), the convention of
  ``transformers`` and of the masked-LM and SFT collators, so one loss function serves all.

The default ``collate_fn`` stacks items into (batch, context_length). Offsets come from
``numpy.random.default_rng(seed)``, so item ``i`` is the same window in every run, in every
DataLoader worker and on every rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from llmcourse.data.tokenfile import TokenFile

TokenSource = TokenFile | np.ndarray | torch.Tensor | Sequence[int]


def token_array(source: TokenSource) -> np.ndarray | TokenFile:
    """A 1-D integer array (or a ``TokenFile``, kept as is so workers re-map it by path)."""
    if isinstance(source, TokenFile):
        return source
    array = source.numpy() if isinstance(source, torch.Tensor) else np.asarray(source)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"Expected a 1-D array of token ids, got shape {array.shape} {array.dtype}."
        )
    return array


def _tokens(source: np.ndarray | TokenFile) -> np.ndarray:
    return source.tokens if isinstance(source, TokenFile) else source


class RandomWindows(Dataset):
    """``num_samples`` windows of ``context_length`` tokens at offsets fixed by ``seed``."""

    def __init__(
        self, tokens: TokenSource, context_length: int, num_samples: int, seed: int = 0
    ) -> None:
        self.source = token_array(tokens)
        n = len(_tokens(self.source))
        if context_length <= 0 or num_samples <= 0:
            raise ValueError("context_length and num_samples must be positive.")
        if n < context_length:
            raise ValueError(
                f"The corpus has {n} tokens, fewer than one window of {context_length}; "
                "use a shorter context_length or more text."
            )
        self.context_length = context_length
        self.offsets = np.random.default_rng(seed).integers(0, n - context_length + 1, num_samples)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = int(self.offsets[index])
        window = torch.from_numpy(
            _tokens(self.source)[start : start + self.context_length].astype(np.int64)
        )
        return {"input_ids": window, "labels": window.clone()}


class ContiguousBlocks(Dataset):
    """Non-overlapping blocks in corpus order; the last partial block is left out."""

    def __init__(self, tokens: TokenSource, context_length: int) -> None:
        if context_length <= 0:
            raise ValueError(f"context_length must be positive, got {context_length}.")
        self.source = token_array(tokens)
        self.context_length = context_length

    def __len__(self) -> int:
        return len(_tokens(self.source)) // self.context_length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"block {index} out of range for {len(self)} blocks")
        start = index * self.context_length
        block = _tokens(self.source)[start : start + self.context_length].astype(np.int64)
        window = torch.from_numpy(block)
        return {"input_ids": window, "labels": window.clone()}


def causal_lm_loader(
    tokens: TokenSource,
    context_length: int,
    batch_size: int,
    num_samples: int,
    seed: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """Batches of random windows: ``input_ids`` and ``labels`` of shape (batch, context_length)."""
    dataset = RandomWindows(tokens, context_length, num_samples, seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
