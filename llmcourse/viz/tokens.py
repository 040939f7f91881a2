"""TokenExplorer: type text, pick a tokenizer, see its tokens as coloured spans with their ids.

Byte-level BPE can cut a character in the middle (an emoji is 4 bytes, often 2-3 tokens), so a
span here is the shortest run of tokens whose bytes decode to whole characters; hovering over
a span shows its ids. Spaces are drawn as ``·``, tabs as ``→`` and newlines as ``↵`` so that
the leading space GPT-2 folds into its word tokens (" the") is visible.

``token_spans`` and ``tokens_html`` do the work and can be used without widgets;
``TokenExplorer`` wraps them in ipywidgets (a text box, a dropdown, the coloured output).
"""

from __future__ import annotations

import codecs
import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import ipywidgets as widgets

# Pastel backgrounds that keep black text readable; neighbours always differ.
_COLOURS = ("#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff")
_VISIBLE = {" ": "·", "\t": "→", "\n": "↵<br>"}


class _TokenizerLike(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def token_bytes(self, token_id: int) -> bytes: ...


@dataclass(frozen=True)
class TokenSpan:
    text: str  # whole characters
    ids: tuple[int, ...]  # the token ids that spell them (several when a character is split)


def token_spans(tokenizer: _TokenizerLike, text: str) -> list[TokenSpan]:
    """``text`` tokenised and grouped into spans of whole characters, in order."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    spans: list[TokenSpan] = []
    pieces: list[str] = []
    ids: list[int] = []
    for token_id in tokenizer.encode(text):
        pieces.append(decoder.decode(tokenizer.token_bytes(token_id)))
        ids.append(token_id)
        if not decoder.getstate()[0]:  # no half-finished character waiting for more bytes
            spans.append(TokenSpan("".join(pieces), tuple(ids)))
            pieces, ids = [], []
    if ids:
        spans.append(TokenSpan("".join(pieces) + decoder.decode(b"", final=True), tuple(ids)))
    return spans


def tokens_html(tokenizer: _TokenizerLike, text: str) -> str:
    """HTML: a summary line, then one coloured box per span (ids in the tooltip), then the ids."""
    spans = token_spans(tokenizer, text)
    n_tokens = sum(len(span.ids) for span in spans)
    words = len(text.split())
    boxes = []
    for i, span in enumerate(spans):
        shown = "".join(_VISIBLE.get(c, html.escape(c)) for c in span.text)
        title = "ids " + ", ".join(map(str, span.ids))
        boxes.append(
            f'<span title="{title}" style="background:{_COLOURS[i % len(_COLOURS)]};'
            f'padding:1px 0;margin-right:1px;border-radius:3px">{shown}</span>'
        )
    per_word = f" · {n_tokens / words:.2f} tokens per word" if words else ""
    chars = f" · {len(text) / n_tokens:.2f} characters per token" if n_tokens else ""
    ids = ", ".join(str(i) for span in spans for i in span.ids)
    return (
        f"<div style='font-family:sans-serif'><b>{n_tokens} tokens</b> for {len(text)} "
        f"characters, {words} words{chars}{per_word}</div>"
        f"<div style='font-family:monospace;line-height:1.9;margin:6px 0'>{''.join(boxes)}</div>"
        f"<div style='font-family:monospace;color:#555;font-size:11px'>[{ids}]</div>"
    )


class TokenExplorer:
    """A text box and a tokenizer dropdown; the output redraws as you type or choose.

    ``tokenizers`` maps a display name to a tokenizer (anything with ``encode`` and
    ``token_bytes``, e.g. every ``llmcourse.tokenizers`` class). Without a browser, set
    ``explorer.text.value`` or ``explorer.choice.value`` and read ``explorer.output.value``.
    """

    def __init__(
        self, tokenizers: Mapping[str, _TokenizerLike], text: str = "Hello, world! 你好 🙂"
    ) -> None:
        if not tokenizers:
            raise ValueError("TokenExplorer needs at least one tokenizer: {'name': tokenizer}.")
        for name, tokenizer in tokenizers.items():
            if not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "token_bytes")):
                raise TypeError(
                    f"{name!r} is a {type(tokenizer).__name__}, which lacks encode() or "
                    "token_bytes(); pass llmcourse.tokenizers objects."
                )
        self.tokenizers = dict(tokenizers)
        self.text = widgets.Textarea(
            value=text, description="Text", layout=widgets.Layout(width="95%", height="90px")
        )
        self.choice = widgets.Dropdown(options=list(self.tokenizers), description="Tokenizer")
        self.output = widgets.HTML()
        self.text.observe(self._refresh, names="value")
        self.choice.observe(self._refresh, names="value")
        self.widget = widgets.VBox([self.choice, self.text, self.output])
        self._refresh()

    def _refresh(self, _change: dict | None = None) -> None:
        tokenizer = self.tokenizers[self.choice.value]
        try:
            self.output.value = tokens_html(tokenizer, self.text.value)
        except ValueError as error:  # e.g. a character the CharTokenizer never saw
            self.output.value = f"<span style='color:#cf222e'>{html.escape(str(error))}</span>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
