"""Byte-level BPE from vocabularies and files of other libraries, checked against those libraries,
and files streamed through ``encode_iterable``.

Each format is read from a real file where one is installed (tiktoken's GPT-2 ranks from
openai-whisper, SmolLM2's Hugging Face tokenizer.json), written by us and read back by the real
library (tiktoken, ``tokenizers``, ``transformers``), and written then read by us again.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import subprocess
import sys
import textwrap
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse import pretrained
from llmcourse.tokenizers import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    gpt2_tokenizer,
    load_gpt2_files,
    load_hf_tokenizer,
    load_tiktoken,
    save_gpt2_files,
    save_hf_tokenizer,
    save_tiktoken,
)
from llmcourse.tokenizers.bpe_files import GPT2_SINGLE_DIGITS_PATTERN

tiktoken = pytest.importorskip("tiktoken")
hf_tokenizers = pytest.importorskip("tokenizers")

VARIED = (
    "Hello world. It's 3.14159, isn't it? I'll've, we'd\n"
    "Ünïcödé: café, naïve, Zürich 日本語のテキスト 中文 한국어 مرحبا بالعالم\n"
    "emoji 🙂👍🏽 family 👨‍👩‍👧 flags 🇬🇧 ✨   spaces   \n\n\n  \t\ttabs \r\n windows\u00a0nbsp\n"
    "def f(x):\n    return {'a': [1, 2, 3]}  # 12345678901234567890 १२३ ١٢٣\n"
)


@functools.cache
def real_text() -> str:
    docs = "\n\n".join(pretrained.python_docs().values())
    return pretrained.shakespeare("val")[:150_000] + docs[:100_000] + VARIED


@functools.cache
def gpt2() -> BPETokenizer:
    return gpt2_tokenizer()


@functools.cache
def tiktoken_gpt2():
    return tiktoken.Encoding(
        name="gpt2-local",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=pretrained.gpt2_bpe_ranks(),
        special_tokens={"<|endoftext|>": 50256},
    )


def gpt2_tiktoken_file():
    return pretrained.package_dir("gpt2_bpe") / "assets" / "gpt2.tiktoken"


def smollm2_json():
    return pretrained.smollm2_dir() / "tokenizer.json"


@functools.cache
def smollm2_ours() -> BPETokenizer:
    return load_hf_tokenizer(smollm2_json())


@functools.cache
def smollm2_theirs():
    return hf_tokenizers.Tokenizer.from_file(str(smollm2_json()))


@functools.cache
def trained(pattern: str = GPT2_SPLIT_PATTERN) -> BPETokenizer:
    return BPETokenizer(pattern).train(pretrained.shakespeare()[:300_000], vocab_size=1000)


# ---- from_vocab_merges: the minbpe / CS336 shape ----------------------------------------------


def gpt2_as_vocab_and_merges() -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    tok = gpt2()
    vocab = {i: token for i, token in enumerate(tok.vocab) if i != tok.eos_id}
    merges = [(tok.vocab[a], tok.vocab[b]) for a, b in tok.merges]
    return vocab, merges


def test_from_vocab_merges_with_gpt2s_vocabulary_equals_tiktoken():
    vocab, merges = gpt2_as_vocab_and_merges()
    tok = BPETokenizer.from_vocab_merges(vocab, merges, ["<|endoftext|>"])
    assert tok.special_tokens == {"<|endoftext|>": 50256} and tok.eos_id == 50256
    text = real_text() + "<|endoftext|>" + VARIED
    assert tok.encode(text) == tiktoken_gpt2().encode(text, allowed_special="all")


@functools.cache
def shuffled_gpt2() -> tuple[BPETokenizer, list[int]]:
    """GPT-2's vocabulary with its ids shuffled, and the map from old ids to new ones."""
    vocab, merges = gpt2_as_vocab_and_merges()
    new_id = list(range(len(vocab) + 1))
    random.Random(0).shuffle(new_id)
    shuffled = {new_id[i]: token for i, token in vocab.items()}
    tok = BPETokenizer.from_vocab_merges(shuffled, merges, {"<|endoftext|>": new_id[50256]})
    return tok, new_id


def test_from_vocab_merges_keeps_any_numbering_of_the_ids():
    """Ids need not follow merge order: shuffle GPT-2's, and the tokens stay tiktoken's."""
    tok, new_id = shuffled_gpt2()
    text = real_text()[:60_000] + "<|endoftext|>"
    expected = [new_id[i] for i in tiktoken_gpt2().encode(text, allowed_special="all")]
    assert tok.encode(text) == expected
    assert tok.decode(tok.encode(text)) == text


def test_from_vocab_merges_places_special_tokens_as_cs336_does():
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"<|endoftext|>", 257: b"ab"}
    tok = BPETokenizer.from_vocab_merges(
        vocab, [(b"a", b"b")], ["<|endoftext|>", "<|endoftext|><|endoftext|>"]
    )
    # Found in vocab by its bytes; a new one gets the next id.
    assert tok.special_tokens == {"<|endoftext|>": 256, "<|endoftext|><|endoftext|>": 258}
    assert tok.vocab_size == 259
    assert tok.encode("ab<|endoftext|><|endoftext|>ab<|endoftext|>") == [257, 258, 257, 256]
    assert tok.decode([257, 258, 256]) == "ab<|endoftext|><|endoftext|><|endoftext|>"


def test_unused_ids_are_allowed_and_refused_when_decoded():
    vocab = {i: bytes([i]) for i in range(256)}
    tok = BPETokenizer.from_vocab_merges(vocab, [], {"<|endoftext|>": 300})
    assert tok.vocab_size == 301 and tok.encode("hi<|endoftext|>") == [104, 105, 300]
    with pytest.raises(ValueError, match="id 280 is not used by this vocabulary"):
        tok.decode([104, 280])
    with pytest.raises(ValueError, match="id 280 is not used"):
        tok.token_bytes(280)


def test_a_vocabulary_without_some_bytes_refuses_text_that_needs_them():
    """SmolLM2 lacks 21 bytes; Hugging Face drops such characters, we say which one."""
    tok = smollm2_ours()
    assert sum(i < 0 for i in tok._byte_ids) == 21
    assert smollm2_theirs().decode(smollm2_theirs().encode("a\x04b").ids) == "ab"
    with pytest.raises(ValueError, match=r"'\\x04' \(U\+0004\) cannot be encoded"):
        tok.encode("a\x04b")


def test_from_vocab_merges_rejects_bad_input_clearly():
    vocab = {i: bytes([i]) for i in range(256)}
    with pytest.raises(ValueError, match=r"needs the token b'ab', which vocab lacks"):
        BPETokenizer.from_vocab_merges(vocab, [(b"a", b"b")])
    with pytest.raises(ValueError, match="repeats a merge"):
        BPETokenizer.from_vocab_merges(vocab | {256: b"ab"}, [(b"a", b"b"), (b"a", b"b")])
    with pytest.raises(ValueError, match=r"holds b'a' twice \(ids 97 and 256\)"):
        BPETokenizer.from_vocab_merges(vocab | {256: b"a"}, [])
    with pytest.raises(TypeError, match="must be non-empty bytes"):
        BPETokenizer.from_vocab_merges(vocab | {256: "ab"}, [])
    with pytest.raises(ValueError, match="non-negative ints"):
        BPETokenizer.from_vocab_merges(vocab | {-1: b"ab"}, [])
    with pytest.raises(TypeError, match="a pair"):
        BPETokenizer.from_vocab_merges(vocab, [b"ab"])
    with pytest.raises(TypeError, match=r"write \['<\|endoftext\|>'\]"):
        BPETokenizer.from_vocab_merges(vocab, [], "<|endoftext|>")
    with pytest.raises(ValueError, match="which vocab gives to b'a'"):
        BPETokenizer.from_vocab_merges(vocab, [], {"<|endoftext|>": 97})
    with pytest.raises(ValueError, match="share ids"):
        BPETokenizer.from_vocab_merges(vocab, [], {"<a>": 300, "<b>": 300})
    with pytest.raises(TypeError, match="dict"):
        BPETokenizer.from_vocab_merges(list(vocab.values()), [])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        BPETokenizer.from_vocab_merges(vocab, [], pattern="(unclosed")


# ---- GPT-2's encoder.json + vocab.bpe ---------------------------------------------------------


def test_gpt2_files_we_write_are_read_by_tiktoken_and_transformers(tmp_path):
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from transformers import GPT2Tokenizer

    # transformers names GPT-2's encoder.json and vocab.bpe vocab.json and merges.txt.
    encoder, merges = save_gpt2_files(gpt2(), tmp_path / "vocab.json", tmp_path / "merges.txt")
    # tiktoken's own reader of GPT-2's files (it asserts that the two files agree).
    ranks = data_gym_to_mergeable_bpe_ranks(str(merges), str(encoder))
    assert ranks == pretrained.gpt2_bpe_ranks()
    theirs = GPT2Tokenizer.from_pretrained(tmp_path)
    text = real_text() + "<|endoftext|>"
    assert theirs.encode(text) == gpt2().encode(text)


def test_gpt2_files_round_trip(tmp_path):
    paths = save_gpt2_files(gpt2(), tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    again = load_gpt2_files(*paths)
    assert again.vocab == gpt2().vocab and again.merges == gpt2().merges
    assert again.special_tokens == {"<|endoftext|>": 50256} and again.eos_id == 50256
    text = real_text() + "<|endoftext|>"
    assert again.encode(text) == tiktoken_gpt2().encode(text, allowed_special="all")
    encoder = json.loads(paths[0].read_text(encoding="utf-8"))
    assert encoder["Ġthe"] == 262 and encoder["<|endoftext|>"] == 50256
    assert paths[1].read_text(encoding="utf-8").splitlines()[:2] == ["#version: 0.2", "Ġ t"]


def test_gpt2_files_round_trip_a_trained_tokenizer(tmp_path):
    ours = trained()
    again = load_gpt2_files(*save_gpt2_files(ours, tmp_path / "e.json", tmp_path / "v.bpe"))
    assert again.vocab == ours.vocab and again.encode(real_text()) == ours.encode(real_text())


def test_gpt2_files_with_a_malformed_merge_line_name_the_line(tmp_path):
    encoder, merges = save_gpt2_files(trained(), tmp_path / "e.json", tmp_path / "v.bpe")
    merges.write_text("#version: 0.2\nĠ t\nĠ a b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"v\.bpe:3: expected 'first second'"):
        load_gpt2_files(encoder, merges)


# ---- tiktoken ---------------------------------------------------------------------------------


def test_tiktoken_file_read_by_us_equals_tiktoken_on_real_text():
    ours = load_tiktoken(gpt2_tiktoken_file(), {"<|endoftext|>": 50256})
    text = real_text() + "<|endoftext|>"
    assert ours.encode(text) == tiktoken_gpt2().encode(text, allowed_special="all")
    assert ours.vocab == gpt2().vocab and ours.merges == gpt2().merges


def test_tiktoken_file_we_write_is_read_by_tiktoken(tmp_path):
    from tiktoken.load import load_tiktoken_bpe

    path = save_tiktoken(gpt2(), tmp_path / "gpt2.tiktoken")
    assert load_tiktoken_bpe(str(path)) == pretrained.gpt2_bpe_ranks()
    assert path.read_bytes() == gpt2_tiktoken_file().read_bytes()


def test_a_trained_tokenizer_as_tiktoken_ranks_encodes_the_same_in_tiktoken(tmp_path):
    """tiktoken merges by the rank of the merged token, we by merge order: equal for BPE."""
    from tiktoken.load import load_tiktoken_bpe

    ours = trained()
    path = save_tiktoken(ours, tmp_path / "shakespeare.tiktoken")
    theirs = tiktoken.Encoding(
        name="shakespeare",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=load_tiktoken_bpe(str(path)),
        special_tokens=ours.special_tokens,
    )
    text = real_text() + "<|endoftext|>"
    assert ours.encode(text) == theirs.encode(text, allowed_special="all")
    again = load_tiktoken(path, ours.special_tokens)
    assert again.vocab == ours.vocab and again.encode(text) == ours.encode(text)


def test_save_tiktoken_refuses_ids_out_of_merge_order(tmp_path):
    with pytest.raises(ValueError, match="cannot be written as tiktoken ranks"):
        save_tiktoken(shuffled_gpt2()[0], tmp_path / "shuffled.tiktoken")


def test_smollm2_as_tiktoken_ranks_encodes_like_hugging_face(tmp_path):
    """Its ids do follow its merges, so tiktoken can run SmolLM2's vocabulary too."""
    from tiktoken.load import load_tiktoken_bpe

    path = save_tiktoken(smollm2_ours(), tmp_path / "smollm2.tiktoken")
    theirs = tiktoken.Encoding(
        name="smollm2",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=load_tiktoken_bpe(str(path)),
        special_tokens=smollm2_ours().special_tokens,
    )
    text = f"<|im_start|>{real_text()}<|im_end|>"
    expected = smollm2_theirs().encode(text, add_special_tokens=False).ids
    assert theirs.encode(text, allowed_special="all") == expected


def test_damaged_tiktoken_file_names_the_line(tmp_path):
    path = tmp_path / "bad.tiktoken"
    path.write_text("IQ== 0\nnot-base64! 1\n", encoding="ascii")
    with pytest.raises(ValueError, match=r"bad\.tiktoken:2: expected 'base64-token rank'"):
        load_tiktoken(path)


# ---- Hugging Face tokenizer.json --------------------------------------------------------------


def test_smollm2_tokenizer_json_read_by_us_equals_hugging_face_on_real_text():
    ours = smollm2_ours()
    assert ours.vocab_size == smollm2_theirs().get_vocab_size()
    assert ours.special_tokens["<|im_start|>"] == 1 and ours.eos_id == 0
    text = f"<|im_start|>user\n{real_text()}<|im_end|>\n<|endoftext|>"
    ids = ours.encode(text)
    assert ids == smollm2_theirs().encode(text, add_special_tokens=False).ids
    assert ours.decode(ids) == smollm2_theirs().decode(ids, skip_special_tokens=False) == text


def test_tokenizer_json_we_write_is_read_by_hugging_face(tmp_path):
    path = save_hf_tokenizer(gpt2(), tmp_path / "tokenizer.json")
    theirs = hf_tokenizers.Tokenizer.from_file(str(path))
    text = real_text() + "<|endoftext|>"
    assert theirs.encode(text).ids == tiktoken_gpt2().encode(text, allowed_special="all")
    assert theirs.decode(theirs.encode(VARIED).ids) == VARIED


def test_tokenizer_json_round_trips(tmp_path):
    for name, tok in {"gpt2": gpt2(), "smollm2": smollm2_ours()}.items():
        again = load_hf_tokenizer(save_hf_tokenizer(tok, tmp_path / f"{name}.json"))
        assert again.vocab == tok.vocab and again.merges == tok.merges
        assert again.special_tokens == tok.special_tokens
        assert again.encode(real_text()) == tok.encode(real_text())


@functools.cache
def tiktoken_pattern(name: str) -> str:
    """The regex of one of tiktoken's encodings, from its source (its ranks are not needed)."""
    from tiktoken_ext import openai_public

    with mock.patch.object(openai_public, "load_tiktoken_bpe", lambda *args, **kwargs: {}):
        return getattr(openai_public, name)()["pat_str"]


@pytest.mark.parametrize("pattern", ["cl100k_base", r"\p{L}+"])
def test_a_custom_pattern_travels_as_a_split_pre_tokenizer(tmp_path, pattern):
    """cl100k's regex (possessive quantifiers and all), and one that leaves text between its
    matches (kept as chunks by both): Hugging Face cuts text as we do."""
    pattern = tiktoken_pattern(pattern) if pattern == "cl100k_base" else pattern
    ours = trained(pattern)
    path = save_hf_tokenizer(ours, tmp_path / "tokenizer.json")
    assert json.loads(path.read_text())["pre_tokenizer"]["pretokenizers"][0]["type"] == "Split"
    theirs = hf_tokenizers.Tokenizer.from_file(str(path))
    assert theirs.encode(real_text()).ids == ours.encode(real_text())
    assert load_hf_tokenizer(path).pattern == pattern


def with_pre_tokenizer(tmp_path, pre_tokenizer: dict, **model_changes):
    document = json.loads(smollm2_json().read_text(encoding="utf-8"))
    document["pre_tokenizer"] = pre_tokenizer
    document["model"].update(model_changes)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


DIGITS_THEN_BYTE_LEVEL = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
}


def test_digits_then_byte_level_reads_as_one_regex_that_cuts_like_hugging_face(tmp_path):
    path = with_pre_tokenizer(tmp_path, DIGITS_THEN_BYTE_LEVEL)
    ours, theirs = load_hf_tokenizer(path), hf_tokenizers.Tokenizer.from_file(str(path))
    assert ours.pattern == GPT2_SINGLE_DIGITS_PATTERN
    for text in (real_text(), "a 1  22   333\n 4\t5 x1y 2.5 '9 ١٢ ²³ Ⅻ 1's"):
        assert ours.encode(text) == theirs.encode(text, add_special_tokens=False).ids


@pytest.fixture(scope="module")
def digits_pair(tmp_path_factory):
    path = with_pre_tokenizer(tmp_path_factory.mktemp("digits"), DIGITS_THEN_BYTE_LEVEL)
    return load_hf_tokenizer(path), hf_tokenizers.Tokenizer.from_file(str(path))


PIECES = [" ", "  ", "\n", "\t", "a", "Ab", "1", "23", "٣", "²", "!", "'s", "é", "\u00a0"]


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_digits_then_byte_level_on_runs_of_digits_and_whitespace(digits_pair, text):
    ours, theirs = digits_pair
    assert ours.encode(text) == theirs.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True}}, "add_prefix_space"),
        ({"pre_tokenizer": {"type": "Whitespace"}}, "unsupported pre-tokenizer"),
        ({"ignore_merges": True}, "ignore_merges"),
        ({"type": "WordPiece"}, "only BPE"),
    ],
)
def test_tokenizer_json_features_we_do_not_implement_are_refused(tmp_path, change, message):
    pre_tokenizer = change.pop("pre_tokenizer", {"type": "ByteLevel", "add_prefix_space": False})
    with pytest.raises(ValueError, match=message):
        load_hf_tokenizer(with_pre_tokenizer(tmp_path, pre_tokenizer, **change))


# ---- any string survives every reader ---------------------------------------------------------


@functools.cache
def read_back(kind: str) -> BPETokenizer:
    if kind == "tiktoken":
        return load_tiktoken(gpt2_tiktoken_file(), {"<|endoftext|>": 50256})
    return smollm2_ours()


def smollm2_can_spell(char: str) -> bool:
    return all(smollm2_ours()._byte_ids[b] >= 0 for b in char.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_tiktoken_file_round_trips_any_unicode_as_tiktoken_encodes_it(text):
    tok = read_back("tiktoken")
    assert tok.encode(text) == tiktoken_gpt2().encode(text, allowed_special="all")
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(codec="utf-8").filter(smollm2_can_spell)))
def test_tokenizer_json_round_trips_any_unicode_as_hugging_face_encodes_it(text):
    tok = read_back("tokenizer.json")
    assert tok.encode(text) == smollm2_theirs().encode(text, add_special_tokens=False).ids
    assert tok.decode(tok.encode(text)) == text


# ---- streaming: encode_iterable ---------------------------------------------------------------

STREAM_PIECES = [
    *("word", " word", "Word", "it", "'s", "'ll", "don't"),
    *(" ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", " \n", "\u00a0", "\u3000"),
    *("1", "123", " 45", "!", "?!", "...", " -", ".\n", "日本", "🙂", "é", "e\u0301"),
    *("<|endoftext|>", "<|", "endoftext", "|>", "end", " of", " text", "end of text"),
]


@functools.cache
def stream_tokenizers() -> list[BPETokenizer]:
    """GPT-2's, and small BPEs with tiktoken's cl100k and o200k regexes; one has a special token
    with spaces inside, which a cut must not split either."""
    text = pretrained.shakespeare()[:40_000]
    specials = ["<|endoftext|>", "end of text"]
    return [
        gpt2(),
        *(
            BPETokenizer(tiktoken_pattern(name), special_tokens=specials).train(text, 400)
            for name in ("cl100k_base", "o200k_base")
        ),
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(STREAM_PIECES), max_size=8).map("".join), max_size=12))
def test_encode_iterable_equals_encode_of_the_whole_text(parts):
    for tok in stream_tokenizers():
        for allowed_special in (True, False):
            whole = tok.encode("".join(parts), allowed_special)
            assert list(tok.encode_iterable(parts, allowed_special)) == whole


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=10))
def test_encode_iterable_equals_encode_on_any_unicode(parts):
    for tok in stream_tokenizers():
        assert list(tok.encode_iterable(parts)) == tok.encode("".join(parts))


def test_encode_iterable_streams_a_file_lazily(tmp_path):
    path = tmp_path / "text.txt"
    text = real_text() + "<|endoftext|>"
    path.write_text(text, encoding="utf-8")
    with path.open(encoding="utf-8", newline="") as lines:  # newline="": keep "\r\n" as is
        assert list(gpt2().encode_iterable(lines)) == gpt2().encode(text)
    endless = itertools.repeat("To be, or not to be, that is the question.\n")
    first = list(itertools.islice(gpt2().encode_iterable(endless), 30))  # returns: it is lazy
    assert first == gpt2().encode("To be, or not to be, that is the question.\n" * 3)[:30]
    with pytest.raises(TypeError, match="expects strings, got bytes"):
        list(gpt2().encode_iterable([b"bytes"]))


STREAM_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from llmcourse.tokenizers import BPETokenizer

    tokenizer = BPETokenizer.load(sys.argv[1])
    count = 0
    with open(sys.argv[2], encoding="utf-8", newline="") as lines:
        for _ in tokenizer.encode_iterable(lines):
            count += 1
    print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


#: Linux carries the peak memory of the process that spawns a child into the child's ru_maxrss
#: (through the address space it copies or borrows until exec), so a child of this test process
#: would report this process's peak. A small Python in between spawns the measured one.
LEAN_PARENT = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _stream(tokenizer_file, text_file) -> tuple[int, int]:
    """``(number of ids, peak resident memory in KiB)`` of a fresh process streaming the file."""
    script = [sys.executable, "-c", STREAM_SCRIPT, str(tokenizer_file), str(text_file)]
    command = [sys.executable, "-c", LEAN_PARENT, *script]
    count, peak = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return int(count), int(peak)


@pytest.mark.slow
def test_streaming_50_mb_takes_no_more_memory_than_5_mb(tmp_path):
    """Peak memory must not grow with the input: 10x the text, < 4 MiB more. Holding the 50 MB
    text would add ~50 MiB, its ids hundreds. A small tokenizer keeps the fixed costs below
    what streaming itself uses, so growth cannot hide under them."""
    tokenizer_file = trained().save(tmp_path / "tokenizer.json")
    rng = random.Random(0)
    words = pretrained.shakespeare()[:200_000].split()
    results = {}
    for size in (5_000_000, 50_000_000):
        path = tmp_path / f"{size}.txt"
        written = 0
        with path.open("w", encoding="utf-8") as out:
            while written < size:
                line = " ".join(rng.choices(words, k=rng.randint(0, 40))) + "\n"
                out.write(line)
                written += len(line)
        results[size] = _stream(tokenizer_file, path)
    (small_count, small_peak), (large_count, large_peak) = results.values()
    assert large_count > 9 * small_count  # it did read all of the large file
    assert large_peak - small_peak < 4 * 1024, results
