"""Tokenizers: characters, byte-level BPE (GPT-2), WordPiece (BERT) and Unigram (SentencePiece).

Every tokenizer keeps one contract (``base.Tokenizer``): ``train(text, vocab_size)``,
``encode(str) -> list[int]``, ``decode(list[int]) -> str``, ``vocab_size``, ``special_tokens``,
``eos_id``, ``save(path)`` and ``Tokenizer.load(path)``.
"""

from llmcourse.tokenizers.base import Tokenizer
from llmcourse.tokenizers.bpe import GPT2_SPLIT_PATTERN, BPETokenizer
from llmcourse.tokenizers.char import CharTokenizer
from llmcourse.tokenizers.fertility import fertility
from llmcourse.tokenizers.gpt2 import gpt2_tokenizer
from llmcourse.tokenizers.samples import sample_text
from llmcourse.tokenizers.unigram import UnigramTokenizer
from llmcourse.tokenizers.wordpiece import WordPieceTokenizer, minilm_wordpiece

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "UnigramTokenizer",
    "WordPieceTokenizer",
    "fertility",
    "gpt2_tokenizer",
    "minilm_wordpiece",
    "sample_text",
]
