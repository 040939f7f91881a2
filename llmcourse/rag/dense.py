"""Dense retrieval: embed chunks and queries in one vector space, rank by cosine similarity.

A sentence encoder (here MiniLM, ``llmcourse.pretrained.minilm``) maps text to unit vectors
trained so that a question lands near passages that answer it (Karpukhin et al. 2020, DPR;
Reimers & Gurevych 2019, Sentence-BERT). With unit vectors, cosine similarity is a dot product:

    sim(q, c) = q · c / (|q| |c|) = q · c

so searching ``n`` chunks is one matrix-vector product, ``(n, dim) @ (dim,)``, followed by
top-k. That exact search is fine up to millions of vectors; beyond, libraries trade a little
recall for speed with approximate indexes (HNSW, IVF).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Embed = Callable[[Sequence[str]], torch.Tensor]


class DenseIndex:
    """Exact cosine-similarity search over ``embed(texts)`` (vectors are re-normalised)."""

    def __init__(self, embed: Embed, texts: Sequence[str]) -> None:
        if not texts:
            raise ValueError("A dense index needs at least one text.")
        self.embed = embed
        # Embed in order of length: batches then pad to similar lengths, which saves encoder
        # time on texts of mixed sizes; the rows are put back in the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = embed([texts[i] for i in order]).float()
        self.vectors = torch.empty_like(vectors)
        self.vectors[torch.tensor(order)] = torch.nn.functional.normalize(vectors, dim=-1)

    def similarities(self, query: str) -> torch.Tensor:
        """Cosine similarity of the query with every indexed text, ``(n_texts,)``."""
        q = torch.nn.functional.normalize(self.embed([query]).float(), dim=-1)[0]
        return self.vectors @ q

    def search(self, query: str, k: int = 5) -> list[int]:
        """Indices of the ``k`` most similar texts, best first."""
        sims = self.similarities(query)
        return torch.topk(sims, min(k, sims.numel())).indices.tolist()
