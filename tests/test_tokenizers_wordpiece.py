"""WordPiece with MiniLM's vocabulary gives the ids of the Hugging Face BERT tokenizer."""

from __future__ import annotations

import functools
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse import pretrained
from llmcourse.tokenizers import Tokenizer, WordPieceTokenizer, minilm_wordpiece
from llmcourse.tokenizers.wordpiece import bert_pretokenize, greedy_longest_match

VARIED = [
    "Héllo, wörld! 日本語のテキスト 中文 한국어 🙂👍🏽 naïve café résumé",
    "It's a dog's life -- isn't it?  $100 + 5% = <x> ^_^ ~~ `code` |pipe|",
    "[CLS] hello [SEP] world[MASK]x [UNK] [unk]",
    "Ελληνικά Русский текст العربية اردو हिन्दी ไทย",
    "tab\there\nnew\r\nline\u00a0nbsp\u2028ls \u200bzwsp \x1c fs \u0085nel İstanbul ß ﬁ ǅ",
    "a" * 150 + " supercalifragilisticexpialidocious antidisestablishmentarianism",
    "\x00\ufffd control\x07 chars \u00ad soft hyphen",
    "豈 compatibility ideograph, ｆｕｌｌｗｉｄｔｈ",
    "",
]


# Characters already assigned in Unicode 3.2 (2002): for newer ones the answer depends on the
# Unicode version of each library's tables (Python's and the Rust crate's differ), not on us.
STABLE_CHARACTERS = st.characters(exclude_categories=("Cs",)).filter(
    lambda c: unicodedata.ucd_3_2_0.category(c) != "Cn"
)


@functools.cache
def reference():
    """The fast (Rust) BERT tokenizer that ships with MiniLM, without padding or truncation."""
    from tokenizers import Tokenizer as HFTokenizer

    tokenizer = HFTokenizer.from_file(str(pretrained.minilm_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


@functools.cache
def ours() -> WordPieceTokenizer:
    return minilm_wordpiece()


@pytest.mark.parametrize("text", VARIED)
def test_ids_equal_the_hugging_face_bert_tokenizer(text):
    assert ours().encode(text) == reference().encode(text, add_special_tokens=False).ids


def test_ids_equal_transformers_on_real_text():
    from transformers import AutoTokenizer

    slow_path_peer = AutoTokenizer.from_pretrained(pretrained.minilm_dir(), local_files_only=True)
    for text in (
        pretrained.shakespeare()[:100_000],
        "\n\n".join(pretrained.python_docs().values())[:100_000],
    ):
        expected = slow_path_peer(text, add_special_tokens=False, verbose=False)["input_ids"]
        assert ours().encode(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=STABLE_CHARACTERS, max_size=60))
def test_ids_equal_the_reference_on_generated_text(text):
    assert ours().encode(text) == reference().encode(text, add_special_tokens=False).ids


def test_vocabulary_and_special_tokens():
    tok = ours()
    assert tok.vocab_size == 30522
    assert tok.special_tokens == {
        "[PAD]": 0,
        "[UNK]": 100,
        "[CLS]": 101,
        "[SEP]": 102,
        "[MASK]": 103,
    }
    assert tok.eos_id == 102
    assert tok.decode(tok.encode("Tokenizers split unaffable words")) == (
        "tokenizers split unaffable words"
    )
    assert tok.decode([101, *tok.encode("Hello, world"), 102]) == "[CLS] hello , world [SEP]"


def test_greedy_longest_match_examples():
    vocab = {"un", "##aff", "##able", "##a", "a", "##ff"}
    assert greedy_longest_match("unaffable", vocab) == ["un", "##aff", "##able"]
    assert greedy_longest_match("unx", vocab) == ["[UNK]"]  # one gap spoils the whole word
    assert greedy_longest_match("a", vocab) == ["a"]
    assert greedy_longest_match("", vocab) == []
    assert greedy_longest_match("a" * 101, vocab) == ["[UNK]"]
    assert greedy_longest_match("aa", vocab, max_chars=1) == ["[UNK]"]


def test_bert_pretokenize_cleans_splits_and_lowercases():
    assert bert_pretokenize("Héllo, WÖRLD!") == ["hello", ",", "world", "!"]
    assert bert_pretokenize("Héllo", lowercase=False) == ["Héllo"]
    assert bert_pretokenize("日本\tgo\x00od") == ["日", "本", "good"]


def test_training_makes_the_likelihood_scored_merge_first():
    """The Hugging Face course's WordPiece example (LLM course, ch. 6.6): with words hug x10,
    pug x5, pun x12, bun x4, hugs x5 the best first merge is ##g + ##s, score 5 / (20 * 5)."""
    text = " ".join(["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5)
    tok = WordPieceTokenizer(special_tokens=["[UNK]"]).train(text, vocab_size=9)
    assert tok.pieces == ["[UNK]", "##g", "##n", "##s", "##u", "b", "h", "p", "##gs"]


def test_training_on_shakespeare_covers_its_own_words(tmp_path):
    text = pretrained.shakespeare()[:100_000]
    tok = WordPieceTokenizer().train(text, vocab_size=800)
    assert tok.vocab_size == 800
    assert tok.special_tokens["[PAD]"] == 0
    ids = tok.encode(text[:5000])
    assert tok.special_tokens["[UNK]"] not in ids  # every character was seen in training
    again = Tokenizer.load(tok.save(tmp_path / "wp.json"))
    assert isinstance(again, WordPieceTokenizer)
    assert again.encode(text[:5000]) == ids
    assert again.eos_id == tok.eos_id


def test_bad_input():
    with pytest.raises(ValueError, match="smaller than the special tokens"):
        WordPieceTokenizer().train("hello world", vocab_size=5)
    with pytest.raises(ValueError, match="unk_token"):
        WordPieceTokenizer(special_tokens=["[PAD]"])
    with pytest.raises(ValueError, match="must not repeat"):
        WordPieceTokenizer.from_vocab(["[UNK]", "a", "a"])
    with pytest.raises(TypeError, match="expects a str"):
        ours().encode(["not", "a", "string"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ours().decode([30522])
