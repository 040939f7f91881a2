"""The tokenizer contract: BPE (fast = naive = Hugging Face), characters, files, bad input."""

from __future__ import annotations

import functools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse import pretrained
from llmcourse.tokenizers import BPETokenizer, CharTokenizer, Tokenizer
from llmcourse.tokenizers.bpe import (
    apply_merges,
    gpt2_byte_order,
    merge_pair,
    most_frequent_pair,
    pair_counts,
    train_merges_naive,
)
from llmcourse.tokenizers.bpe_files import token_from_text

VARIED = [
    "Hello, world! It's 2024; we'll see.",
    "héllo wörld, café naïve — résumé",
    "日本語のテキスト 中文 한국어",
    "emoji 🙂👍🏽 family 👨‍👩‍👧 flags 🇬🇧",
    "   leading and trailing   \n\n\n\t tabs\r\n windows line\u00a0nbsp",
    "<|endoftext|>between<|endoftext|>",
    "",
]


@pytest.fixture(scope="module")
def docs_text() -> str:
    return "\n\n".join(pretrained.python_docs().values())[:200_000]


@pytest.fixture(scope="module")
def small_bpe(docs_text) -> BPETokenizer:
    return BPETokenizer().train(docs_text, vocab_size=600)


# ---- the teaching helpers ----------------------------------------------------------------------


def test_pair_counts_and_merge_pair_on_a_hand_example():
    assert pair_counts([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert pair_counts([7]) == {}
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]
    assert merge_pair([5, 5, 5], (5, 5), 9) == [9, 5]  # leftmost, non-overlapping
    assert merge_pair([5, 5, 5, 5], (5, 5), 9) == [9, 9]
    assert most_frequent_pair(pair_counts([3, 4, 1, 2])) == (1, 2)  # ties: smallest pair


def test_naive_training_on_the_wikipedia_bpe_example():
    """Wikipedia's "Byte pair encoding" example: aaabdaaabac -> ZabdZabac -> ZYdZYac -> XdXac."""
    a, b, c, d = 0, 1, 2, 3
    text = [a, a, a, b, d, a, a, a, b, a, c]
    merges = train_merges_naive([text], 3, first_id=4)
    z, y, x = 4, 5, 6
    assert merges == {(a, a): z, (a, b): y, (z, y): x}
    assert apply_merges(text, merges) == [x, d, x, a, c]


def test_gpt2_byte_order_matches_gpt2s_first_ranks():
    ranks = pretrained.gpt2_bpe_ranks()
    first = sorted((rank, token) for token, rank in ranks.items() if rank < 256)
    assert [token[0] for _, token in first] == gpt2_byte_order()


# ---- training -----------------------------------------------------------------------------------


def test_fast_and_naive_trainers_learn_identical_merges():
    text = pretrained.shakespeare()[:20_000]
    fast = BPETokenizer().train(text, vocab_size=380)
    naive = BPETokenizer().train_naive(text, vocab_size=380)
    assert len(fast.merges) == 380 - 256 - 1
    assert fast.merges == naive.merges
    assert fast.vocab == naive.vocab


@pytest.mark.slow
def test_merges_equal_hugging_face_tokenizers_bpe_trainer():
    """Same corpus, same vocabulary size: the HF byte-level trainer learns the same merges."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    text = pretrained.shakespeare()[:1_000_000]
    ours = BPETokenizer().train(text, vocab_size=2000)
    theirs = HFTokenizer(models.BPE())
    theirs.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    theirs.train_from_iterator([text], trainer)
    hf_merges = [
        tuple(token_from_text(part) for part in merge)
        for merge in json.loads(theirs.to_str())["model"]["merges"]
    ]
    our_merges = [(ours.vocab[a], ours.vocab[b]) for a, b in ours.merges]
    assert len(our_merges) == len(hf_merges) == 2000 - 257
    assert our_merges == hf_merges
    # And both encode held-out text into the same tokens (their ids are numbered differently).
    sample = pretrained.shakespeare("val")[:20_000] + " 日本語 🙂 café"
    their_tokens = [token_from_text(t) for t in theirs.encode(sample).tokens]
    assert [ours.vocab[i] for i in ours.encode(sample)] == their_tokens


def test_training_accepts_documents_and_keeps_special_tokens_whole(docs_text):
    tok = BPETokenizer().train([docs_text[:5000], docs_text[5000:10000]], vocab_size=300)
    assert tok.vocab_size == 300
    assert tok.special_tokens == {"<|endoftext|>": 299}
    assert tok.eos_id == 299
    ids = tok.encode("a<|endoftext|>b")
    assert ids.count(299) == 1
    assert tok.encode("<|endoftext|>", allowed_special=False) != [299]
    assert tok.vocab[299] == b"<|endoftext|>" == tok.token_bytes(299)
    assert not any(b"<|" in token for token in tok.vocab[:299])  # never learned from the marker


def test_training_stops_when_nothing_is_left_to_merge():
    tok = BPETokenizer().train("ab ab ab", vocab_size=1000)
    assert tok.vocab_size < 1000
    assert tok.encode("ab ab") == [tok.vocab.index(b"ab"), tok.vocab.index(b" ab")]


def test_text_between_pattern_matches_is_kept_as_chunks_of_its_own():
    tok = BPETokenizer(r"\p{L}+").train("ab, cd; ab. ab", vocab_size=260)
    assert tok.pretokenize("ab, cd!") == ["ab", ", ", "cd", "!"]
    assert tok.decode(tok.encode("ab, cd!")) == "ab, cd!"


# ---- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", VARIED)
def test_trained_bpe_round_trips_varied_text(small_bpe, text):
    assert small_bpe.decode(small_bpe.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_bpe_round_trips_any_unicode(text):
    tok = _property_tokenizer()
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text


@functools.cache
def _property_tokenizer() -> BPETokenizer:
    """Built once: hypothesis re-runs the test body, and fixtures would not be reset anyway."""
    return BPETokenizer().train(pretrained.shakespeare()[:50_000], vocab_size=500)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdefgh \n"))
def test_char_tokenizer_round_trips_its_alphabet(text):
    tok = CharTokenizer().train("abcdefgh \n")
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) == len(text)


def test_char_tokenizer_ids_specials_and_unknown_characters():
    tok = CharTokenizer(special_tokens=["<eos>"], eos_token="<eos>").train("hello")
    assert tok.chars == ["e", "h", "l", "o"]
    assert tok.encode("hole<eos>") == [1, 3, 2, 0, 4]
    assert tok.eos_id == 4 and tok.vocab_size == 5
    assert tok.decode([1, 0, 2, 2, 3, 4]) == "hello<eos>"
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\) did not occur"):
        tok.encode("zoo")
    with pytest.raises(ValueError, match="Leave vocab_size out"):
        CharTokenizer().train("abc", vocab_size=10)


# ---- files --------------------------------------------------------------------------------------


def test_save_and_load_round_trip_every_kind(tmp_path, small_bpe):
    char = CharTokenizer(special_tokens=["<eos>"], eos_token="<eos>").train("some text")
    for tok in (small_bpe, char):
        path = tok.save(tmp_path / f"{type(tok).__name__}.json")
        for loader in (Tokenizer.load, type(tok).load):
            again = loader(path)
            assert type(again) is type(tok)
            assert again.vocab_size == tok.vocab_size
            assert again.special_tokens == tok.special_tokens
            assert again.eos_id == tok.eos_id
            assert again.encode("some text<eos>") == tok.encode("some text<eos>")


def test_loading_the_wrong_kind_or_a_damaged_file_is_a_clear_error(tmp_path, small_bpe):
    char_file = CharTokenizer().train("abc").save(tmp_path / "char.json")
    with pytest.raises(ValueError, match="holds a 'CharTokenizer' tokenizer, not a BPETokenizer"):
        BPETokenizer.load(char_file)

    good = json.loads(small_bpe.save(tmp_path / "bpe.json").read_text())
    cases = {
        "not json": "{ this is not json",
        "not ours": json.dumps({"hello": 1}),
        "future version": json.dumps({**good, "version": 99}),
        "no merges": json.dumps(
            {**good, "state": {k: v for k, v in good["state"].items() if k != "merges"}}
        ),
        "bad merge": json.dumps({**good, "state": {**good["state"], "merges": [[0, 99999, 256]]}}),
        "misspelt merge": json.dumps({**good, "state": {**good["state"], "merges": [[0, 1, 256]]}}),
        "bad special": json.dumps({**good, "special_tokens": {"<|endoftext|>": 10**6}}),
        "special on a token": json.dumps({**good, "special_tokens": {"<|endoftext|>": 5}}),
        "bad token": json.dumps({**good, "state": {**good["state"], "vocab": ["zz"] * 600}}),
        "bad pattern": json.dumps({**good, "state": {**good["state"], "pattern": "(unclosed"}}),
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(content)
        with pytest.raises(ValueError) as error:
            BPETokenizer.load(path)
        assert str(path) in str(error.value), name
    truncated = tmp_path / "truncated.json"
    truncated.write_text((tmp_path / "bpe.json").read_text()[:1000])
    with pytest.raises(ValueError, match="not valid JSON"):
        Tokenizer.load(truncated)


# ---- bad input ----------------------------------------------------------------------------------


def test_bad_input_gets_clear_errors(small_bpe):
    with pytest.raises(TypeError, match=r"expects a str, got bytes\. Decode bytes first"):
        small_bpe.encode(b"bytes")
    with pytest.raises(TypeError, match="expects a str, got NoneType"):
        small_bpe.encode(None)
    with pytest.raises(
        ValueError,
        match=r"id 600 at position 1 is outside the vocabulary \(valid ids are 0\.\.599\)",
    ):
        small_bpe.decode([1, 600])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        small_bpe.decode([-1])
    with pytest.raises(TypeError, match="integer ids"):
        small_bpe.decode([1.5])
    with pytest.raises(TypeError, match="sequence of int ids, got str"):
        small_bpe.decode("hello")
    with pytest.raises(ValueError, match=r"smaller than the byte alphabet.*vocab_size >= 257"):
        BPETokenizer().train("text", vocab_size=100)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        BPETokenizer().train("text", vocab_size="4096")
    with pytest.raises(TypeError, match="str documents"):
        BPETokenizer().train([b"bytes"], vocab_size=300)
    with pytest.raises(ValueError, match="not trained yet"):
        BPETokenizer().encode("hi")
    with pytest.raises(ValueError, match="has no eos_token"):
        _ = BPETokenizer(special_tokens=[]).train("abc", 260).eos_id
    with pytest.raises(ValueError, match="duplicates"):
        BPETokenizer(special_tokens=["<a>", "<a>"])


def test_decode_accepts_numpy_and_torch_ids(small_bpe):
    import numpy as np
    import torch

    ids = small_bpe.encode("To be, or not to be")
    assert small_bpe.decode(np.array(ids)) == "To be, or not to be"
    assert small_bpe.decode(torch.tensor(ids)) == "To be, or not to be"


def test_a_file_saved_by_an_earlier_version_still_loads(tmp_path):
    """Earlier versions saved the 256 byte values in id order and merges creating the next id,
    with special tokens after the vocabulary; such files keep loading with the same ids."""
    from llmcourse.tokenizers.base import FORMAT, FORMAT_VERSION

    state = {
        "pattern": r"\S+|\s+",
        "bytes": list(range(256)),
        "merges": [[116, 104, 256], [256, 101, 257]],  # "th", then "the"
    }
    document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "type": "BPETokenizer",
        "special_tokens": {"<|endoftext|>": 258},
        "eos_token": "<|endoftext|>",
        "state": state,
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(document))
    tokenizer = BPETokenizer.load(path)
    assert tokenizer.encode("the<|endoftext|>") == [257, 258]
    assert tokenizer.decode([257, 258]) == "the<|endoftext|>"
