"""Training skip-gram word vectors (word2vec's SGNS) on ``Trainer``.

``llmcourse.embeddings`` holds the model (``SkipGram``: input and output tables), the loss
(``sgns_loss``) and the (centre, context) pairs (``skipgram_pairs``); this module makes them a
task. ``train_sgns`` prepares the data as word2vec does (Mikolov et al. 2013b): drop rare words,
subsample frequent ones afresh each epoch, draw pairs within a random window, shuffle; the
``Trainer`` takes one ready-made batch of pairs per step, and ``SGNSTask`` draws the negatives.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from llmcourse.embeddings import SkipGram, WordVectors, skipgram_pairs
from llmcourse.train.config import TrainConfig
from llmcourse.train.tasks import Metrics, Task
from llmcourse.train.trainer import Trainer


class SGNSTask(Task):
    """Skip-gram with negative sampling on ``Trainer``: batches ``{"centers", "contexts"}`` of
    ids ``(batch,)``; the unit is a (centre, context) pair. ``negatives`` noise words per pair
    are drawn from ``noise`` (unigram^0.75 probabilities) with torch's global generator, which
    checkpoints keep."""

    name = "skip-gram"

    def __init__(self, noise: torch.Tensor, negatives: int = 5) -> None:
        if negatives <= 0:
            raise ValueError(f"negatives must be positive, got {negatives}.")
        self.noise, self.negatives = noise, negatives

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["centers"].shape[0]

    def loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, Metrics]:
        centers = batch["centers"]
        self.noise = self.noise.to(centers.device)
        sampled = torch.multinomial(self.noise, len(centers) * self.negatives, replacement=True)
        negatives = sampled.view(len(centers), self.negatives)
        return model(centers, batch["contexts"], negatives, reduction="sum"), {}


class _Batches(torch.utils.data.Dataset):
    """Ready-made batches as the items of a dataset (the trainer takes them one at a time)."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batches[index]


def _only_item(items: list[Any]) -> Any:
    return items[0]


@dataclass
class SGNSResult:
    vectors: WordVectors  # the input embeddings, one per vocabulary word
    losses: list[float] = field(default_factory=list)  # mean loss of each optimizer step
    seconds: float = 0.0
    pairs_seen: int = 0


def train_sgns(
    sentences: Sequence[Sequence[str]],
    dim: int = 50,
    window: int = 4,
    negatives: int = 5,
    min_count: int = 5,
    subsample: float = 1e-4,
    epochs: int = 3,
    batch_size: int = 4096,
    lr: float = 0.01,
    max_seconds: float | None = None,
    seed: int = 0,
    num_threads: int = 1,
    progress_bar: bool = True,
) -> SGNSResult:
    """Train skip-gram word vectors on tokenised ``sentences`` (lists of words).

    Words rarer than ``min_count`` are dropped. Frequent words are subsampled: a word of corpus
    frequency f is kept with probability min(1, sqrt(subsample / f)) (Mikolov et al. 2013b), so
    "the" and "and" stop dominating the pairs. Negatives come from unigram^0.75. Adam updates
    both tables (``Trainer``: constant ``lr``, no clipping, no weight decay); training stops
    after ``epochs`` or ``max_seconds`` of training, whichever is first. ``num_threads`` is torch's
    intra-op thread count while training (restored afterwards).
    """
    if min(dim, window, negatives, epochs, batch_size, num_threads) <= 0:
        raise ValueError(
            "dim, window, negatives, epochs, batch_size and num_threads must all be positive."
        )
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    counts = Counter(w for s in sentences for w in s)
    words = [w for w, n in counts.most_common() if n >= min_count]
    if len(words) < 2:
        raise ValueError(f"fewer than two words occur {min_count}+ times; lower min_count.")
    index = {w: i for i, w in enumerate(words)}
    freq = np.array([counts[w] for w in words], dtype=np.float64)
    stream = np.array([index[w] for s in sentences for w in s if w in index], dtype=np.int64)
    keep_probability = np.minimum(1.0, np.sqrt(subsample / (freq / freq.sum())))
    noise = torch.tensor(freq**0.75 / (freq**0.75).sum(), dtype=torch.float32)
    batches = []
    for _ in range(epochs):
        # A fresh subsample and fresh windows each epoch, as word2vec does on every pass.
        kept = stream[rng.random(len(stream)) < keep_probability[stream]]
        centers, contexts = skipgram_pairs(kept, window, rng)
        order = rng.permutation(len(centers))
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            batches.append(
                {
                    "centers": torch.from_numpy(centers[rows]),
                    "contexts": torch.from_numpy(contexts[rows]),
                }
            )

    model = SkipGram(len(words), dim)
    config = TrainConfig(
        max_steps=len(batches),
        batch_size=1,  # one ready-made batch of pairs per step
        lr=lr,
        betas=(0.9, 0.999),
        weight_decay=0.0,
        grad_clip=None,
        schedule="constant",
        warmup_steps=0,
        shuffle=False,  # the pairs are shuffled within each epoch above
        log_every=1,
        progress_bar=progress_bar,
        max_seconds=max_seconds,  # of training, the data preparation above not counted
        seed=seed,
    )
    trainer = Trainer(
        model, config, _Batches(batches), task=SGNSTask(noise, negatives), collate_fn=_only_item
    )
    # Each step is small, so more intra-op threads gain little, and when other processes compete
    # for the cores they cost a lot: 90k vs 8k pairs/s with 1 vs 2 threads on a busy 2-core box.
    threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        result = trainer.fit()
    finally:
        torch.set_num_threads(threads)
    return SGNSResult(
        vectors=WordVectors(words, model.inputs.weight.detach().cpu().numpy().copy()),
        losses=[record["loss"] for record in result.history],
        seconds=time.perf_counter() - start,
        pairs_seen=sum(len(batch["centers"]) for batch in batches[: result.step]),
    )
