"""GPT-2's tokenizer rebuilt from its published ranks, as a ``BPETokenizer``.

OpenAI distributes GPT-2's vocabulary as *ranks*: ``{token bytes: rank}`` for 50,256 tokens,
where ranks 0-255 are single bytes and rank 256 + i is the i-th merge learned (Radford et al.
2019). The merge *pairs* are not stored, but ``bpe_files.merges_from_ranks`` recovers them, and
``gpt2_tokenizer()`` then encodes with the ordinary ``BPETokenizer`` machinery; the tests check
the ids against ``tiktoken`` on varied text.
"""

from __future__ import annotations

import copy
from functools import cache

from llmcourse.tokenizers.bpe import GPT2_SPLIT_PATTERN, BPETokenizer
from llmcourse.tokenizers.bpe_files import from_tiktoken_ranks

END_OF_TEXT = "<|endoftext|>"


@cache
def _gpt2() -> BPETokenizer:
    from llmcourse import pretrained

    return from_tiktoken_ranks(
        pretrained.gpt2_bpe_ranks(),
        {END_OF_TEXT: 50256},
        pattern=GPT2_SPLIT_PATTERN,
        eos_token=END_OF_TEXT,
    )


def gpt2_tokenizer() -> BPETokenizer:
    """GPT-2's byte-level BPE: 50,257 ids, ``<|endoftext|>`` = 50,256 (a fresh object each call).

    Built from ``llmcourse.pretrained.gpt2_bpe_ranks()``; recovering the merges takes about a
    second the first time in a process.
    """
    return copy.deepcopy(_gpt2())
