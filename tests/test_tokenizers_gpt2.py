"""gpt2_tokenizer() gives exactly tiktoken's ids, loaded with the same GPT-2 ranks."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse import pretrained
from llmcourse.tokenizers import GPT2_SPLIT_PATTERN, BPETokenizer, gpt2_tokenizer
from llmcourse.tokenizers.bpe_files import merges_from_ranks

tiktoken = pytest.importorskip("tiktoken")

VARIED = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog. It's 3.14159, isn't it? I'll've, we'd",
    "Ünïcödé àccents: café, naïve, Zürich, São Paulo, Ærøskøbing",
    "日本語のテキストと中文和한국어",
    "emoji 🙂👍🏽 family 👨‍👩‍👧 flags 🇬🇧🇯🇵 ✨",
    "   spaces   \n\n\n  newlines\n \n\t\ttabs \r\n\r\n windows",
    "trailing spaces    ",
    "<|endoftext|>",
    "one<|endoftext|>two <|endoftext|> three<|endoftext|><|endoftext|>",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n",
    "१२३ ١٢٣ numbers 12345678901234567890",
    "مرحبا بالعالم — سلام دنیا",
    "",
]


@functools.cache
def reference():
    """tiktoken's Encoding built from the very same ranks file, no download."""
    return tiktoken.Encoding(
        name="gpt2-local",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=pretrained.gpt2_bpe_ranks(),
        special_tokens={"<|endoftext|>": 50256},
    )


@functools.cache
def ours() -> BPETokenizer:
    return gpt2_tokenizer()


@pytest.mark.parametrize("text", VARIED)
def test_ids_equal_tiktoken_on_varied_text(text):
    ids = ours().encode(text)
    assert ids == reference().encode(text, allowed_special="all")
    assert ours().decode(ids) == text


def test_ids_equal_tiktoken_on_real_corpora():
    for text in (
        pretrained.shakespeare()[:300_000],
        "\n\n".join(pretrained.python_docs().values())[:300_000],
    ):
        assert ours().encode(text) == reference().encode(text, allowed_special="all")


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_ids_equal_tiktoken_and_round_trip_on_any_unicode(text):
    ids = ours().encode(text)
    assert ids == reference().encode(text, allowed_special="all")
    assert ours().decode(ids) == text


PIECES = [
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "\r\n",
    "a",
    "The",
    " the",
    "é",
    "日本",
    "🙂",
    "'s",
    "'ll",
    "1",
    "42",
    "!",
    "?!",
    "<|endoftext|>",
    "\u00a0",
    "ß",
    "‍",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_ids_equal_tiktoken_on_runs_of_whitespace_punctuation_and_specials(text):
    assert ours().encode(text) == reference().encode(text, allowed_special="all")


def test_vocabulary_layout_and_special_token():
    tok = ours()
    assert tok.vocab_size == 50257
    assert tok.eos_id == 50256 and tok.special_tokens == {"<|endoftext|>": 50256}
    assert len(tok.merges) == 50000
    assert tok.encode("<|endoftext|>", allowed_special=False) == reference().encode_ordinary(
        "<|endoftext|>"
    )
    assert tok.token_bytes(50256) == b"<|endoftext|>"
    assert tok.encode(" the") == [262]  # GPT-2's most familiar id


def test_each_call_returns_an_independent_tokenizer():
    first, second = gpt2_tokenizer(), gpt2_tokenizer()
    assert first is not second
    first.train("something else", vocab_size=300)
    assert second.vocab_size == 50257


def test_merges_from_ranks_recovers_a_small_hand_made_vocabulary():
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"ab"] = 256
    ranks[b"abc"] = 257
    ranks[b"cab"] = 258  # c + ab, not ca + b: "ca" is not a token
    assert merges_from_ranks(ranks) == [(b"a", b"b"), (b"ab", b"c"), (b"c", b"ab")]


def test_merges_from_ranks_rejects_broken_rank_tables():
    ranks = {bytes([b]): b for b in range(256)}
    with pytest.raises(ValueError, match="distinct"):
        merges_from_ranks({**ranks, b"ab": 3})
    without_x = {token: rank for token, rank in ranks.items() if token != b"x"}
    with pytest.raises(ValueError, match="not the merge of two earlier ones"):
        merges_from_ranks({**without_x, b"xyz": 256})
    with pytest.raises(ValueError, match="not the merge of two earlier ones"):
        merges_from_ranks({**ranks, b"abc": 256})
