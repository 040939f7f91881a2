"""GPT-2's tokenizer rebuilt from its published ranks, as a ``BPETokenizer``.

OpenAI distributes GPT-2's vocabulary as *ranks*: ``{token bytes: rank}`` for 50,256 tokens,
where ranks 0-255 are single bytes and rank 256 + i is the i-th merge learned (Radford et al.
2019). The merge *pairs* are not stored, but they can be recovered: a token's pair is what
BPE makes of its bytes using only the merges learned before it, which must leave exactly two
pieces. ``gpt2_tokenizer()`` does that once and then encodes with the ordinary
``BPETokenizer`` machinery; the tests check the ids against ``tiktoken`` on varied text.
"""

from __future__ import annotations

from functools import cache

from llmcourse.tokenizers.bpe import GPT2_SPLIT_PATTERN, BPETokenizer, Pair

END_OF_TEXT = "<|endoftext|>"


def merges_from_ranks(ranks: dict[bytes, int]) -> dict[Pair, int]:
    """Recover ``{(first id, second id): merged id}`` from tiktoken-style ``{bytes: rank}``.

    For each token, rank order, start from its single bytes and repeatedly merge the adjacent
    pair whose concatenation has the lowest rank below the token's own, until two pieces remain.
    """
    by_rank = sorted(ranks.items(), key=lambda item: item[1])
    if [rank for _, rank in by_rank] != list(range(len(by_rank))):
        raise ValueError("ranks must be 0, 1, 2, ... with no gaps or repeats.")
    if sorted(len(token) == 1 for token, rank in by_rank[:256]) != [True] * 256:
        raise ValueError("ranks 0-255 must be the 256 single bytes.")
    merges: dict[Pair, int] = {}
    for token, rank in by_rank[256:]:
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                joined_rank = ranks.get(parts[i] + parts[i + 1])
                if (
                    joined_rank is not None
                    and joined_rank < rank
                    and (best is None or joined_rank < best[0])
                ):
                    best = (joined_rank, i)
            if best is None:
                break
            i = best[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not the merge of two earlier ones.")
        merges[(ranks[parts[0]], ranks[parts[1]])] = rank
    return merges


@cache
def _gpt2_merges() -> tuple[tuple[bytes, ...], tuple[tuple[Pair, int], ...]]:
    from llmcourse import pretrained

    ranks = pretrained.gpt2_bpe_ranks()
    vocab = tuple(token for token, _ in sorted(ranks.items(), key=lambda item: item[1]))
    return vocab, tuple(merges_from_ranks(ranks).items())


def gpt2_tokenizer() -> BPETokenizer:
    """GPT-2's byte-level BPE: 50,257 ids, ``<|endoftext|>`` = 50,256 (a fresh object each call).

    Built from ``llmcourse.pretrained.gpt2_bpe_ranks()``; recovering the merges takes about a
    second the first time in a process.
    """
    vocab, merges = _gpt2_merges()
    tokenizer = BPETokenizer(
        GPT2_SPLIT_PATTERN, special_tokens=[END_OF_TEXT], eos_token=END_OF_TEXT
    )
    tokenizer._set_vocab(list(vocab), dict(merges))
    tokenizer._set_special_ids(len(vocab))
    return tokenizer
