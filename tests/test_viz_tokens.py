"""TokenExplorer without a browser: spans of whole characters, escaped HTML, live updates."""

from __future__ import annotations

import functools

import pytest

from llmcourse.tokenizers import CharTokenizer, gpt2_tokenizer, minilm_wordpiece
from llmcourse.viz.tokens import TokenExplorer, token_spans, tokens_html

TEXT = "Hello, world!  日本語 🙂👍🏽\n\tdone <|endoftext|>"


@functools.cache
def gpt2():
    return gpt2_tokenizer()


def test_spans_cover_the_text_and_the_ids_in_order():
    spans = token_spans(gpt2(), TEXT)
    assert "".join(span.text for span in spans) == TEXT
    assert [i for span in spans for i in span.ids] == gpt2().encode(TEXT)


def test_a_character_split_across_tokens_is_one_span():
    (span,) = token_spans(gpt2(), "🙂")
    assert span.text == "🙂" and len(span.ids) > 1  # GPT-2 needs several byte tokens for it
    assert token_spans(gpt2(), " the") == [type(span)(" the", (262,))]


def test_html_shows_tokens_counts_and_escapes_text():
    page = tokens_html(gpt2(), "<script>alert(1)</script> x")
    assert "<script>" not in page and "&lt;" in page and "&gt;" in page
    assert f"<b>{len(gpt2().encode('<script>alert(1)</script> x'))} tokens</b>" in page
    assert "·x" in page  # the leading space of " x" is visible
    assert "tokens per word" in page and 'title="ids ' in page


def test_explorer_updates_when_text_or_tokenizer_changes():
    explorer = TokenExplorer({"GPT-2": gpt2(), "BERT WordPiece": minilm_wordpiece()}, text="Hi")
    first = explorer.output.value
    explorer.text.value = "Tokenization is unaffable"
    assert explorer.output.value != first and "unaffable" not in explorer.output.value
    gpt2_view = explorer.output.value
    explorer.choice.value = "BERT WordPiece"
    assert explorer.output.value != gpt2_view
    assert "un" in explorer.output.value


def test_explorer_reports_a_tokenizer_error_instead_of_crashing():
    explorer = TokenExplorer({"chars": CharTokenizer().train("abc ")}, text="abc")
    explorer.text.value = "abz"
    assert "did not occur in the training text" in explorer.output.value


def test_explorer_bad_input():
    with pytest.raises(ValueError, match="at least one tokenizer"):
        TokenExplorer({})
    with pytest.raises(TypeError, match="lacks encode"):
        TokenExplorer({"nope": object()})
