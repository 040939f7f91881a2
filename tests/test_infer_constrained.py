"""Constrained decoding and token log-probabilities (``llmcourse.infer``).

The grammar is checked against Python's own JSON parser and ``jsonschema`` (independent
implementations), its distance against a breadth-first search, and the masked sampler against
``jsonschema`` on the real SmolLM2 vocabulary with random logits.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcourse.infer import json_grammar as jg
from llmcourse.infer.constrained import (
    ConstrainedDecoder,
    JSONGrammar,
    TokenTable,
    constrain_logits,
)
from llmcourse.infer.logprobs import prefill_with_logprobs, sequence_logprobs

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "score": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "ok": {"type": "boolean"},
        "color": {"enum": ["red", "green", "blue"]},
        "nested": {"type": "object", "properties": {"x": {"type": "null"}}},
    },
    "required": ["name", "age", "nested"],
}


def accepts(node, text: str) -> bool:
    state = jg.initial_state(node)
    for ch in text:
        state = jg.step(state, ch)
        if state is None:
            return False
    return jg.is_complete(state)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=4), st.booleans())
def test_every_json_object_is_accepted_and_nothing_after_it(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert accepts(jg.JSON_OBJECT, text)
    assert not accepts(jg.JSON_OBJECT, text + "}")
    assert not accepts(jg.JSON_OBJECT, text[:-1])  # a prefix is not a whole document


@pytest.mark.parametrize(
    "text",
    ['{"a":01}', '{"a":1.}', '{"a":-}', "{'a':1}", '{"a":1,}', '{"a" 1}', "[1]", '{"a":tru}',
     '{"a":"\\x"}', '{"a":"\n"}', '{"a":1}}', '{"a":[1,]}'],
)  # fmt: skip
def test_invalid_json_is_refused(text):
    if text == "[1]":
        assert json.loads(text) == [1]  # JSON, but not an object
    else:
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    assert not accepts(jg.JSON_OBJECT, text)


def test_schema_documents_are_exactly_the_valid_ones():
    node = jg.compile_schema(SCHEMA)
    good = [
        {"name": "a", "age": 3, "nested": {}},
        {"name": "", "age": -10, "score": 1.5e3, "tags": ["x", "y"], "ok": True,
         "color": "blue", "nested": {"x": None}},
    ]  # fmt: skip
    for value in good:
        jsonschema.validate(value, SCHEMA)
        assert accepts(node, json.dumps(value))
    bad = [
        {"age": 3, "name": "a", "nested": {}},  # out of order
        {"name": "a", "nested": {}},  # required age missing
        {"name": "a", "age": 1.5, "nested": {}},  # not an integer
        {"name": "a", "age": 3, "tags": ["1", "2", "3", "4"], "nested": {}},  # maxItems
        {"name": "a", "age": 3, "color": "pink", "nested": {}},  # not in the enum
        {"name": "a", "age": 3, "nested": {}, "extra": 1},  # no other properties
    ]
    for value in bad:
        assert not accepts(node, json.dumps(value)), value


def test_unsupported_schema_keywords_are_named():
    with pytest.raises(ValueError, match="'pattern'"):
        jg.compile_schema({"type": "string", "pattern": "a+"})
    with pytest.raises(ValueError, match="top level must be an object"):
        JSONGrammar.from_schema({"type": "string"})


def shortest_completion(state, alphabet: str, limit: int) -> int | None:
    """Breadth-first search over characters: the fewest that make the document whole."""
    frontier, depth, seen = [state], 0, {state}
    while frontier and depth <= limit:
        if any(jg.is_complete(s) for s in frontier):
            return depth
        following = []
        for s in frontier:
            for ch in alphabet:
                nxt = jg.step(s, ch)
                if nxt is not None and nxt not in seen:
                    seen.add(nxt)
                    following.append(nxt)
        frontier, depth = following, depth + 1
    return None


@pytest.mark.parametrize(
    "prefix",
    ["", "{", '{"na', '{"name":"x', '{"name":"x","age":-', '{"name":"x","age":1,',
     '{"name":"x","age":1,"tags":["a",', '{"name":"x","age":1,"co',
     '{"name":"x","age":1,"score":1e',
     '{"name":"x","age":1,"nested":{"x":nu'],
)  # fmt: skip
def test_distance_is_the_shortest_completion(prefix):
    node = jg.compile_schema(SCHEMA)
    state = jg.initial_state(node)
    for ch in prefix:
        state = jg.step(state, ch)
        assert state is not None, prefix
    # Every character a shortest completion can need: structure, digits, and the keys' letters.
    alphabet = '{}[],:"0-.e' + "".join(sorted(set("nameagescoretagsokcolorrednestedxnull")))
    assert jg.distance(state) == shortest_completion(state, alphabet, 40)


@pytest.fixture(scope="module")
def table():
    from llmcourse.pretrained import smollm2_tokenizer
    from llmcourse.serve.models import HFTextCodec

    return TokenTable.from_codec(HFTextCodec(smollm2_tokenizer()))


@pytest.mark.parametrize(("schema", "max_tokens"), [(None, 24), (SCHEMA, 60), (SCHEMA, 40)])
def test_random_logits_under_the_mask_give_valid_json_within_the_budget(table, schema, max_tokens):
    grammar = JSONGrammar() if schema is None else JSONGrammar.from_schema(schema)
    for seed in range(6):
        gen = torch.Generator().manual_seed(seed)
        decoder = ConstrainedDecoder(grammar, table)
        out: list[int] = []
        for step in range(max_tokens):
            logits = torch.randn(1, table.vocab_size, generator=gen) * 4
            masked = constrain_logits(logits, decoder, max_tokens - step)
            token = int(torch.multinomial(masked.softmax(-1), 1, generator=gen))
            if token in table.stop_ids:
                break
            decoder.advance(token)
            out.append(token)
        assert decoder.complete, (seed, "".join(table.texts[t] for t in out))
        value = json.loads("".join(table.texts[t] for t in out))
        jsonschema.validate(value, schema or {"type": "object"})


def test_a_mask_refuses_what_breaks_the_grammar(table):
    decoder = ConstrainedDecoder(JSONGrammar(), table)
    allowed = decoder.mask(tokens_left=50)
    texts = [t for i, t in enumerate(table.texts) if allowed[i]]
    assert texts and all(t.startswith("{") for t in texts)
    assert not allowed[table.stop_ids].any()  # an empty document cannot stop
    for token in table.texts.index("{"), table.texts.index("}"):
        decoder.advance(token)
    assert decoder.complete
    allowed = decoder.mask(tokens_left=5)
    assert sorted(torch.nonzero(allowed).flatten().tolist()) == table.stop_ids


def test_sequence_logprobs_score_each_token_by_the_position_before():
    torch.manual_seed(0)
    logits, tokens = torch.randn(5, 11), torch.tensor([3, 1, 4, 1, 5])
    scores = sequence_logprobs(logits, tokens, k=2)
    assert scores[0].logprob is None and [s.token for s in scores] == tokens.tolist()
    reference = torch.log_softmax(logits.double(), -1)
    for t in range(1, 5):
        assert scores[t].logprob == pytest.approx(float(reference[t - 1, tokens[t]]), abs=1e-5)
        best = reference[t - 1].topk(2)
        assert [i for i, _ in scores[t].top] == best.indices.tolist()


@torch.inference_mode()
def test_prefill_with_logprobs_matches_each_prompt_alone():
    from llmcourse.serve.models import tiny_model

    model = tiny_model(vocab_size=101)
    prompts = [[5, 6, 7, 8, 9], [42, 17]]
    ids = torch.tensor([prompts[0], [0, 0, 0, *prompts[1]]])
    mask = torch.tensor([[1] * 5, [0, 0, 0, 1, 1]])
    state, scores = prefill_with_logprobs(model, ids, mask, top_k=3)
    for prompt, row in zip(prompts, scores, strict=True):
        alone = model(torch.tensor([prompt])).logits[0].log_softmax(-1)
        assert [s.token for s in row] == prompt and row[0].logprob is None
        for t in range(1, len(prompt)):
            assert row[t].logprob == pytest.approx(float(alone[t - 1, prompt[t]]), abs=1e-4)
    assert state.logits.shape == (2, 101)
