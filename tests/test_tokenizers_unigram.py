"""Unigram (SentencePiece) under the course contract, fertility, and the multilingual samples."""

from __future__ import annotations

import functools
import unicodedata

import pytest

from llmcourse import pretrained
from llmcourse.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    UnigramTokenizer,
    fertility,
    gpt2_tokenizer,
    sample_text,
)
from llmcourse.tokenizers.samples import SAMPLES

TEXTS = [
    "To be, or not to be: that is the question.",
    "  two leading spaces\n\nand blank lines\t tabs  ",
    "unseen characters: 日本語 🙂 مرحبا",
    "specials <s> and </s> inside",
]


@functools.cache
def unigram() -> UnigramTokenizer:
    return UnigramTokenizer().train(pretrained.shakespeare()[:300_000], vocab_size=1000)


@pytest.mark.parametrize("text", TEXTS)
def test_unigram_round_trips_and_matches_sentencepiece(text):
    tok = unigram()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    if "<s>" not in text:
        assert ids == tok._processor.encode(text)  # the wrapper adds nothing of its own


def test_unigram_vocabulary_pieces_and_specials(tmp_path):
    tok = unigram()
    assert tok.vocab_size == 1000
    assert tok.special_tokens == {"<unk>": 0, "<s>": 1, "</s>": 2} and tok.eos_id == 2
    pieces = tok.pieces("To be, or not to be")
    assert "".join(pieces).replace("▁", " ") == "To be, or not to be"
    assert b"".join(tok.token_bytes(i) for i in tok.encode("café 🙂")) == "café 🙂".encode()
    again = Tokenizer.load(tok.save(tmp_path / "unigram.json"))
    assert again.encode(TEXTS[0]) == tok.encode(TEXTS[0])


def test_unigram_bad_input(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        UnigramTokenizer().train("some text", vocab_size=100)
    with pytest.raises(ValueError, match="SentencePiece could not train"):
        UnigramTokenizer().train("tiny corpus", vocab_size=5000)
    path = unigram().save(tmp_path / "u.json")
    path.write_text(path.read_text().replace('"model": "', '"model": "!!'))
    with pytest.raises(ValueError, match="damaged"):
        Tokenizer.load(path)


def test_fertility_counts_tokens_per_whitespace_word():
    tok = CharTokenizer().train("ab cd")
    assert fertility(tok, "ab cd") == 5 / 2  # the space is a token too
    with pytest.raises(ValueError, match="no words"):
        fertility(tok, "   ")
    with pytest.raises(TypeError):
        fertility(tok, None)


def test_samples_are_parallel_and_in_their_scripts():
    assert {len(paragraphs) for paragraphs in SAMPLES.values()} == {6}
    for language, script in (("arabic", "ARABIC"), ("urdu", "ARABIC")):
        letters = [c for c in sample_text(language) if c.isalpha()]
        assert all(script in unicodedata.name(c) for c in letters), language
    assert "ے" in sample_text("urdu") and "ے" not in sample_text("arabic")  # Urdu's bari ye
    for language in SAMPLES:
        train, test = sample_text(language, "train"), sample_text(language, "test")
        assert train and test and test not in train
        assert sample_text(language) == train + "\n\n" + test
    with pytest.raises(ValueError, match="choose one of"):
        sample_text("klingon")


def test_gpt2_spends_far_more_tokens_per_word_on_arabic_and_urdu_than_on_english():
    tok = gpt2_tokenizer()
    english = fertility(tok, sample_text("english"))
    assert 1.0 < english < 1.6
    assert fertility(tok, sample_text("arabic")) > 3 * english
    assert fertility(tok, sample_text("urdu")) > 3 * english


def test_a_mixed_vocabulary_lowers_held_out_arabic_and_urdu_fertility():
    english = pretrained.shakespeare("train")[:300_000]
    mixed_docs = [english] + [sample_text(lang, "train") for lang in ("arabic", "urdu")] * 10
    english_only = BPETokenizer().train(english, vocab_size=2048)
    mixed = BPETokenizer().train(mixed_docs, vocab_size=2048)
    for language in ("arabic", "urdu"):
        held_out = sample_text(language, "test")
        assert fertility(mixed, held_out) < 0.6 * fertility(english_only, held_out)
