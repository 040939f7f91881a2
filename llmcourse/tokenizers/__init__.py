"""Tokenizers: characters, byte-level BPE (GPT-2), WordPiece (BERT) and Unigram (SentencePiece).

Every tokenizer keeps one contract (``base.Tokenizer``): ``train(text, vocab_size)``,
``encode(str) -> list[int]``, ``decode(list[int]) -> str``, ``vocab_size``, ``special_tokens``,
``eos_id``, ``save(path)`` and ``Tokenizer.load(path)``. ``BPETokenizer.from_vocab_merges``
and the readers and writers of ``bpe_files`` exchange byte-level BPE vocabularies with GPT-2's
files, tiktoken and Hugging Face ``tokenizers``.
"""

from llmcourse.tokenizers.base import Tokenizer
from llmcourse.tokenizers.bpe import GPT2_SPLIT_PATTERN, BPETokenizer
from llmcourse.tokenizers.bpe_files import (
    load_gpt2_files,
    load_hf_tokenizer,
    load_tiktoken,
    save_gpt2_files,
    save_hf_tokenizer,
    save_tiktoken,
)
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
    "load_gpt2_files",
    "load_hf_tokenizer",
    "load_tiktoken",
    "minilm_wordpiece",
    "sample_text",
    "save_gpt2_files",
    "save_hf_tokenizer",
    "save_tiktoken",
]
