"""Batched prompts, ``n``, ``echo``, ``logprobs`` and JSON mode, in-process (FastAPI's client).

Scores are checked against the model's logits computed here, one prompt at a time; the real
server with the ``openai`` client is ``test_serve_api.py``.
"""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from test_serve_app import IdCodec

from llmcourse.config import ModelConfig
from llmcourse.models import DecoderLM
from llmcourse.serve.app import create_app
from llmcourse.serve.choices import choice_seed
from llmcourse.serve.engine import BatchingEngine
from llmcourse.serve.glue import ServerSettings


@pytest.fixture(scope="module")
def model() -> DecoderLM:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=97, context_length=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2,
        position="rope", norm="rmsnorm", mlp="swiglu", bias=False,
    )  # fmt: skip
    return DecoderLM(config).eval()


@pytest.fixture(scope="module")
def client(model):
    settings = ServerSettings(
        model_name="tiny", max_prompt_tokens=16, max_tokens_limit=8, max_n=4, max_choices=8,
        max_logprobs=5,
    )  # fmt: skip
    engine = BatchingEngine(model, IdCodec(), max_batch_size=4)
    with TestClient(create_app(engine, IdCodec(), settings)) as client:
        yield client


@torch.inference_mode()
def reference_logprobs(model, ids: list[int]) -> torch.Tensor:
    """``log P(ids[t] | ids[:t])`` for t >= 1, from one unbatched forward."""
    logits = model(torch.tensor([ids])).logits[0].double().log_softmax(-1)
    return logits[:-1].gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)


def test_batched_token_id_prompts_with_echo_and_no_new_tokens_score_each_prompt(client, model):
    prompts = [[5, 6, 7, 8, 9, 10], [42, 17], [3, 1, 4, 1, 5]]  # different lengths: left padding
    body = {"model": "tiny", "prompt": prompts, "echo": True, "max_tokens": 0, "logprobs": 3}
    reply = client.post("/v1/completions", json=body)
    assert reply.status_code == 200, reply.text
    choices = reply.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    for prompt, choice in zip(prompts, choices, strict=True):
        logprobs = choice["logprobs"]
        assert choice["text"] == IdCodec().decode(prompt) and choice["finish_reason"] == "length"
        assert logprobs["tokens"] == [f" {t}" for t in prompt]
        assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
        expected = reference_logprobs(model, prompt)
        assert logprobs["token_logprobs"][1:] == pytest.approx(expected.tolist(), abs=1e-4)
        offsets = [len(IdCodec().decode(prompt[:i])) for i in range(len(prompt))]
        assert logprobs["text_offset"] == offsets
        for chosen, top in zip(
            logprobs["token_logprobs"][1:], logprobs["top_logprobs"][1:], strict=True
        ):
            assert len(top) == 3 and max(top.values()) >= chosen - 1e-6
    usage = reply.json()["usage"]
    assert usage == {"prompt_tokens": 13, "completion_tokens": 0, "total_tokens": 13}


def test_echo_with_one_new_token_as_lm_eval_asks(client, model):
    body = {"model": "tiny", "prompt": [[5, 6, 7]], "echo": True, "max_tokens": 1,
            "logprobs": 1, "temperature": 0, "seed": 1234}  # fmt: skip
    choice = client.post("/v1/completions", json=body).json()["choices"][0]
    logprobs = choice["logprobs"]
    assert len(logprobs["tokens"]) == 4  # the prompt's three and the new one
    with torch.inference_mode():
        last = model(torch.tensor([[5, 6, 7]])).logits[0, -1].double().log_softmax(-1)
    assert logprobs["tokens"][-1] == f" {int(last.argmax())}"
    assert logprobs["token_logprobs"][-1] == pytest.approx(float(last.max()), abs=1e-4)
    assert list(logprobs["top_logprobs"][-1].values()) == [logprobs["token_logprobs"][-1]]


def test_n_choices_have_their_own_seeded_streams(client):
    body = {"model": "tiny", "prompt": "5 6 7", "max_tokens": 8, "n": 4, "seed": 7}
    first = client.post("/v1/completions", json=body).json()["choices"]
    again = client.post("/v1/completions", json=body).json()["choices"]
    assert [c["text"] for c in first] == [c["text"] for c in again]  # reproducible
    assert len({c["text"] for c in first}) > 1  # and not four copies of one sample
    one = client.post("/v1/completions", json={**body, "n": 1}).json()["choices"]
    assert one[0]["text"] == first[0]["text"]  # choice 0 keeps the request's own seed
    later = {**body, "n": 1, "seed": choice_seed(7, 2)}
    assert (
        client.post("/v1/completions", json=later).json()["choices"][0]["text"] == first[2]["text"]
    )


def test_prompts_times_n_are_indexed_prompt_major(client):
    body = {"model": "tiny", "prompt": ["5 6", "7 8 9"], "max_tokens": 2, "n": 2,
            "temperature": 0}  # fmt: skip
    reply = client.post("/v1/completions", json=body).json()
    texts = [c["text"] for c in reply["choices"]]
    assert [c["index"] for c in reply["choices"]] == [0, 1, 2, 3]
    assert texts[0] == texts[1] and texts[2] == texts[3]  # greedy: both choices agree
    single = client.post("/v1/completions", json={**body, "prompt": "7 8 9", "n": 1}).json()
    assert texts[2] == single["choices"][0]["text"]
    assert reply["usage"]["prompt_tokens"] == 5


def test_chat_logprobs_are_the_models_scores_of_what_it_wrote(client, model):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "5 6 7"}],
            "max_tokens": 3, "temperature": 0, "logprobs": True, "top_logprobs": 2}  # fmt: skip
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    content = choice["logprobs"]["content"]
    tokens = [int(c["token"]) for c in content]
    assert "".join(c["token"] for c in content) == choice["message"]["content"]
    scores = reference_logprobs(model, [5, 6, 7, *tokens])[-len(tokens) :]
    assert [c["logprob"] for c in content] == pytest.approx(scores.tolist(), abs=1e-4)
    for c in content:
        assert len(c["top_logprobs"]) == 2 and c["top_logprobs"][0]["token"] == c["token"]
        assert c["bytes"] == list(c["token"].encode())


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"prompt": "1 2", "n": 5}, "limit of 4"),
        ({"prompt": ["1 2"] * 5, "n": 2}, "at most 8"),
        ({"prompt": "1 2", "logprobs": 6}, "limit of 5"),
        ({"prompt": "1 2", "max_tokens": 0}, "echo=true"),
        ({"prompt": [[1, 2], [300]]}, "outside the vocabulary"),
        ({"prompt": []}, "empty list"),
        ({"prompt": [[1], []]}, "empty list"),
        ({"prompt": "1 2", "n": 2, "stream": True}, "stream"),
        ({"prompt": "1 2", "echo": True, "max_tokens": 0, "logprobs": -1}, "logprobs"),
    ],
)
def test_limits_on_choices_and_scores_are_clear_400s(client, body, says):
    response = client.post("/v1/completions", json={"model": "tiny", **body})
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"top_logprobs": 2}, "logprobs=true"),
        ({"logprobs": True, "top_logprobs": 9}, "limit of 5"),
        ({"response_format": {"type": "json_schema"}}, "json_schema"),
        ({"response_format": {"type": "xml"}}, "response_format"),
    ],
)
def test_chat_limits_are_clear_400s(client, extra, says):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "1 2"}], **extra}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def tiny_client():
    from llmcourse.serve.models import load_served_model

    model, codec = load_served_model("tiny", device="cpu")
    settings = ServerSettings(model_name="tiny-random", max_tokens_limit=64)
    with TestClient(create_app(BatchingEngine(model, codec), codec, settings)) as client:
        yield client


def test_json_modes_make_the_random_model_write_valid_json(tiny_client):
    import jsonschema

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"},
                       "coastal": {"type": "boolean"}},
        "required": ["city", "population", "coastal"],
    }  # fmt: skip
    messages = [{"role": "user", "content": "Describe a city as JSON."}]
    formats = [
        ({"type": "json_object"}, {"type": "object"}),
        ({"type": "json_schema", "json_schema": {"name": "city", "schema": schema}}, schema),
    ]
    for response_format, check in formats:
        body = {"model": "tiny-random", "messages": messages, "max_tokens": 64, "n": 3,
                "seed": 0, "response_format": response_format}  # fmt: skip
        reply = tiny_client.post("/v1/chat/completions", json=body)
        assert reply.status_code == 200, reply.text
        for choice in reply.json()["choices"]:
            jsonschema.validate(json.loads(choice["message"]["content"]), check)
    too_short = {**body, "max_tokens": 40}  # the schema's shortest document is 41 characters
    response = tiny_client.post("/v1/chat/completions", json=too_short)
    assert response.status_code == 400 and "too small" in response.json()["error"]["message"]
    bad = {**body, "response_format": {"type": "json_schema",
           "json_schema": {"name": "x", "schema": {"type": "object", "anyOf": []}}}}  # fmt: skip
    response = tiny_client.post("/v1/chat/completions", json=bad)
    assert response.status_code == 400 and "'anyOf'" in response.json()["error"]["message"]


def test_a_list_of_one_string_is_that_string(client):
    """``["5 6 7"]`` is one prompt, as ``"5 6 7"`` is; it once reached the tokenizer as a list
    and hung the request (found by the schema-based property test)."""
    body = {"model": "tiny", "max_tokens": 6, "temperature": 0}
    listed = client.post("/v1/completions", json={**body, "prompt": ["5 6 7"]})
    plain = client.post("/v1/completions", json={**body, "prompt": "5 6 7"})
    assert listed.status_code == plain.status_code == 200
    assert listed.json()["choices"][0]["text"] == plain.json()["choices"][0]["text"]
