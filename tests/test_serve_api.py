"""What evaluation tools and structured outputs send, over real HTTP with the ``openai`` client:
batched token-id prompts, ``echo`` with ``max_tokens=0``, ``logprobs``, ``n``, ``stop``, chat
``logprobs``/``top_logprobs`` and ``response_format`` (JSON from the random ``tiny`` model).

One server (the tiny random model with SmolLM2's tokenizer) runs in a child process for the
module; scores are compared with the same model run here, in this process.
"""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
import torch

from llmcourse.serve.process import ServerProcess

MODEL = "tiny-random"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    process = ServerProcess(
        "--model", "tiny", "--max-batch-size", "4", "--max-prompt-tokens", "64",
        "--max-tokens", "64",
    )  # fmt: skip
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def local():
    """The served model and tokenizer, loaded here too (the tiny model is seeded)."""
    from llmcourse.serve.models import load_served_model

    return load_served_model("tiny", device="cpu")


@torch.inference_mode()
def prompt_logprobs(model, ids: list[int]) -> list[float]:
    logits = model(torch.tensor([ids])).logits[0].double().log_softmax(-1)
    return logits[:-1].gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1).tolist()


def test_batched_token_id_prompts_echo_with_max_tokens_0(client, local):
    model, codec = local
    prompts = [codec.encode("To be, or not to be"), codec.encode("All the world's a stage")]
    reply = client.completions.create(
        model=MODEL, prompt=prompts, echo=True, max_tokens=0, logprobs=2
    )
    assert len(reply.choices) == 2 and reply.usage.completion_tokens == 0
    for ids, choice in zip(prompts, reply.choices, strict=True):
        logprobs = choice.logprobs
        assert choice.text == codec.decode(ids)
        assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
        assert logprobs.token_logprobs[1:] == pytest.approx(prompt_logprobs(model, ids), abs=1e-4)
        assert "".join(logprobs.tokens) == choice.text
        assert logprobs.text_offset == [len("".join(logprobs.tokens[:i])) for i in range(len(ids))]
        assert all(len(top) <= 2 for top in logprobs.top_logprobs[1:])


def test_string_prompts_logprobs_and_stop(client):
    reply = client.completions.create(
        model=MODEL, prompt=["Once upon", "In the beginning"], max_tokens=12, logprobs=3,
        temperature=0, stop=["e"],
    )  # fmt: skip
    for choice in reply.choices:
        assert "e" not in choice.text
        tokens = choice.logprobs.tokens
        assert (
            len(tokens) == len(choice.logprobs.token_logprobs) == len(choice.logprobs.top_logprobs)
        )
        assert "".join(tokens).startswith(choice.text)  # the last token may hold the stop string
        for chosen, top in zip(
            choice.logprobs.token_logprobs, choice.logprobs.top_logprobs, strict=True
        ):
            assert chosen == pytest.approx(max(top.values()), abs=1e-5)  # greedy: the best one


def test_n_choices_are_seeded_and_distinct(client):
    kwargs = dict(model=MODEL, prompt="Once upon a time", max_tokens=10, n=3, seed=11)
    first = client.completions.create(**kwargs)
    again = client.completions.create(**kwargs)
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert len({c.text for c in first.choices}) == 3
    assert [c.index for c in first.choices] == [0, 1, 2]


def test_chat_logprobs_top_logprobs_and_n(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=6, n=2,
        logprobs=True, top_logprobs=3, seed=3,
    )  # fmt: skip
    assert len(reply.choices) == 2
    for choice in reply.choices:
        content = choice.logprobs.content
        assert "".join(c.token for c in content) == choice.message.content
        for entry in content:
            assert len(entry.top_logprobs) == 3 and entry.logprob <= 0
            assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob


def test_json_object_and_json_schema_from_the_random_model(client):
    messages = [{"role": "user", "content": "Give me a person as JSON."}]
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=32, n=2, seed=0,
        response_format={"type": "json_object"},
    )  # fmt: skip
    for choice in reply.choices:
        assert isinstance(json.loads(choice.message.content), dict)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                       "languages": {"type": "array", "items": {"enum": ["en", "ar", "fr"]}}},
        "required": ["name", "age", "languages"],
    }  # fmt: skip
    form = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=64, seed=1, response_format=form
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"prompt": "hi", "logprobs": 21}, "limit of 20"),
        ({"prompt": "hi", "n": 17}, "limit of 16"),
        ({"prompt": [[1, 2]] * 65}, "at most 64"),
        ({"prompt": "hi", "max_tokens": 0}, "echo"),
        ({"prompt": [[1, 2, 10**9]]}, "outside the vocabulary"),
    ],
)
def test_limits_are_400s(client, kwargs, says):
    with pytest.raises(openai.BadRequestError, match=says):
        client.completions.create(model=MODEL, **kwargs)
