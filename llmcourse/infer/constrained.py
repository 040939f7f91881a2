"""Constrained decoding: mask the logits to tokens that keep the output a prefix of a grammar.

A language model picks tokens; a grammar speaks characters. To make a model write only valid
JSON (say), before each step we find every token whose characters the grammar accepts from its
current state, and set the logits of all others to ``-inf`` (Willard & Louf 2023, "Efficient
Guided Generation for Large Language Models", the idea behind Outlines; llama.cpp's GBNF and
vLLM's guided decoding do the same). The model still chooses, but only among legal
continuations, so even an untrained model writes parseable JSON.

Three pieces:

- the **grammar**: a character-level state machine (``json_grammar``: ``step(state, ch)`` gives
  the next state or ``None``; ``distance(state)``, the fewest characters that finish);
- the **token table**: every token's text, in a character trie, so the tokens that share a
  prefix are tested once: walking the trie from the current state and dropping a branch as soon
  as the grammar refuses a character visits a few thousand nodes instead of every character of
  every token. Inside a JSON string (the common case) nearly every token leaves the state as it
  is; those "plain" tokens are handled with one vectorised assignment and only the few hundred
  others are walked;
- the **budget**: a random model would rarely close its braces before ``max_tokens``. Every
  single character is a token in a byte-level vocabulary, so a document ``d`` characters from its
  end can always be finished in ``d`` tokens: a token is allowed only when, after it, the
  distance left is at most the tokens left. The output is then whole when the budget runs out.

The mask for a state is the same every time that state comes back, so it is cached (per
grammar, up to ``cache_size`` states); a step then costs one comparison over the vocabulary.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch

from llmcourse.infer import json_grammar

FAR = 1 << 30  # the distance of a token the grammar refuses


class _TrieNode:
    __slots__ = ("children", "ids")

    def __init__(self) -> None:
        self.children: dict[str, _TrieNode] = {}
        self.ids: list[int] = []


def _trie(texts: dict[int, str]) -> _TrieNode:
    root = _TrieNode()
    for token_id, text in texts.items():
        node = root
        for ch in text:
            node = node.children.setdefault(ch, _TrieNode())
        node.ids.append(token_id)
    return root


def _is_plain(ch: str) -> bool:
    """A character that leaves a JSON string's state unchanged."""
    return ch not in '"\\' and ord(ch) >= 0x20


class TokenTable:
    """What constrained decoding needs to know about a vocabulary.

    ``distances_after(grammar, state)`` works with any grammar object that has ``step``,
    ``distance``, ``is_complete`` and ``in_plain_string`` (``JSONGrammar`` below).

    ``texts[i]`` is token ``i``'s text. Tokens whose text is empty (special tokens) or holds
    ``U+FFFD`` (a piece of a multi-byte character) can never be checked character by character
    and are never allowed, except ``stop_ids``, which are allowed exactly when the document is
    whole. ``vocab_size`` is the width of the model's logits (it may exceed ``len(texts)``).
    """

    def __init__(
        self, texts: Sequence[str], stop_ids: Sequence[int] = (), vocab_size: int | None = None
    ) -> None:
        self.vocab_size = len(texts) if vocab_size is None else vocab_size
        if self.vocab_size < len(texts):
            raise ValueError(f"vocab_size={vocab_size} is smaller than the {len(texts)} texts.")
        self.texts = list(texts)
        self.stop_ids = sorted(set(stop_ids))
        usable = {
            i: t
            for i, t in enumerate(texts)
            if t and "\ufffd" not in t and i not in set(self.stop_ids)
        }
        plain = {i: t for i, t in usable.items() if all(_is_plain(c) for c in t)}
        self.plain_ids = torch.tensor(sorted(plain), dtype=torch.long)
        self._plain_trie = _trie(plain)
        self._other_trie = _trie({i: t for i, t in usable.items() if i not in plain})
        self._caches: dict[Any, OrderedDict[Any, torch.Tensor]] = {}

    @classmethod
    def from_codec(cls, codec: Any, vocab_size: int | None = None) -> TokenTable:
        """The table of a tokenizer with ``decode(ids)`` and ``stop_ids`` (a server's codec)."""
        size = len(codec.tokenizer) if hasattr(codec, "tokenizer") else vocab_size
        if size is None:
            raise ValueError("Give vocab_size for a codec without a .tokenizer.")
        texts = [codec.decode([i]) for i in range(size)]
        return cls(texts, sorted(codec.stop_ids), vocab_size)

    def distances_after(self, grammar: Any, state: Any, cache_size: int = 512) -> torch.Tensor:
        """``(vocab,)`` int64: for each token, the grammar's distance to the end after it
        (``FAR`` when the grammar refuses it). Cached per ``(grammar, state)``."""
        cache = self._caches.setdefault(grammar, OrderedDict())
        found = cache.get(state)
        if found is not None:
            cache.move_to_end(state)
            return found
        after = torch.full((self.vocab_size,), FAR, dtype=torch.long)
        if grammar.is_complete(state):
            after[self.stop_ids] = 0
        else:
            pairs: list[tuple[int, int]] = []
            if grammar.in_plain_string(state):  # every plain token keeps the state: no walk
                after[self.plain_ids] = grammar.distance(state)
            else:
                _walk(self._plain_trie, state, grammar.step, grammar.distance, pairs)
            _walk(self._other_trie, state, grammar.step, grammar.distance, pairs)
            if pairs:
                ids, distances = zip(*pairs, strict=True)
                after[list(ids)] = torch.tensor(distances)
        cache[state] = after
        if len(cache) > cache_size:
            cache.popitem(last=False)
        return after


def _walk(
    node: _TrieNode,
    state: Any,
    step: Callable[[Any, str], Any],
    distance: Callable[[Any], int],
    out: list[tuple[int, int]],
) -> None:
    """Depth-first over the trie: a branch ends where the grammar refuses its character."""
    for ch, child in node.children.items():
        nxt = step(state, ch)
        if nxt is None:
            continue
        if child.ids:
            d = distance(nxt)
            out.extend((i, d) for i in child.ids)
        if child.children:
            _walk(child, nxt, step, distance, out)


class JSONGrammar:
    """A JSON document of ``node`` (``json_grammar.JSON_OBJECT`` or ``compile_schema(...)``)
    as the grammar ``TokenTable`` walks. Hashable: equal schemas share a mask cache."""

    def __init__(self, node: json_grammar.Node = json_grammar.JSON_OBJECT) -> None:
        self.node = node
        self.step = json_grammar.step
        self.distance = json_grammar.distance

    @classmethod
    def from_schema(cls, schema: dict[str, Any]) -> JSONGrammar:
        node = json_grammar.compile_schema(schema)
        if not isinstance(node, json_grammar.ObjectNode):
            raise ValueError("The schema's top level must be an object ('type': 'object').")
        return cls(node)

    def initial_state(self) -> Any:
        return json_grammar.initial_state(self.node)

    @staticmethod
    def is_complete(state: Any) -> bool:
        return json_grammar.is_complete(state)

    @staticmethod
    def in_plain_string(state: Any) -> bool:
        """Inside a string, not after a backslash: a plain character leaves the state as is."""
        return state[-1][0] == "str" and state[-1][1] == 0

    @property
    def min_tokens(self) -> int:
        """The fewest tokens any document of this grammar takes (one per character)."""
        return json_grammar.min_length(self.node)

    def __hash__(self) -> int:
        return hash(self.node)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSONGrammar) and other.node == self.node


class ConstrainedDecoder:
    """One generation under a grammar: ``mask(tokens_left)`` before a step, ``advance(token)``
    after it.

    ``mask`` allows a token when the grammar accepts its text and, after it, the document can
    still be finished in the tokens left (see the module docstring); stop tokens only once the
    document is whole. ``tokens_left`` counts this step's token.
    """

    def __init__(self, grammar: JSONGrammar, table: TokenTable) -> None:
        self.grammar, self.table = grammar, table
        self.state = grammar.initial_state()

    @property
    def complete(self) -> bool:
        return self.grammar.is_complete(self.state)

    def mask(self, tokens_left: int) -> torch.Tensor:
        """``(vocab,)`` bool: True for the tokens that may come next."""
        return self.table.distances_after(self.grammar, self.state) <= tokens_left - 1

    def advance(self, token_id: int) -> None:
        """Move the grammar over the chosen token's text (a stop token leaves it as it is)."""
        if token_id in self.table.stop_ids:
            return
        for ch in self.table.texts[token_id]:
            nxt = self.grammar.step(self.state, ch)
            if nxt is None:
                text = self.table.texts[token_id]
                raise ValueError(f"Token {token_id} ({text!r}) breaks the grammar.")
            self.state = nxt


def constrain_logits(
    logits: torch.Tensor, decoder: ConstrainedDecoder, tokens_left: int
) -> torch.Tensor:
    """``logits`` ``(1, vocab)`` with every token the grammar or the budget refuses at ``-inf``."""
    allowed = decoder.mask(tokens_left).to(logits.device)
    if not bool(allowed.any()):
        raise ValueError(
            f"No token can continue the document within {tokens_left} tokens; give a larger "
            "max_tokens."
        )
    return logits.masked_fill(~allowed[: logits.shape[-1]], float("-inf"))
