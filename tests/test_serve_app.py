"""The app in-process (FastAPI's test client): routes, schemas and engine glue fit together.

The slow ``test_serve.py`` checks the real server over HTTP with the ``openai`` client; these
run in a second, on the tiny model and a codec whose text is token ids.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from fastapi.testclient import TestClient

from llmcourse.config import ModelConfig
from llmcourse.infer import generate
from llmcourse.models import DecoderLM
from llmcourse.serve.app import create_app
from llmcourse.serve.engine import BatchingEngine
from llmcourse.serve.glue import ServerSettings
from llmcourse.serve.server import add_serve_arguments, run_server


class IdCodec:
    """Text is space-separated token ids; a chat prompt is the messages' ids in a row."""

    stop_ids = frozenset({0})

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in text.split()]

    def decode(self, ids) -> str:
        return "".join(f" {i}" for i in ids)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return " ".join(m["content"] for m in messages)


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
    settings = ServerSettings(model_name="tiny", max_prompt_tokens=16, max_tokens_limit=8)
    with TestClient(create_app(BatchingEngine(model, IdCodec()), IdCodec(), settings)) as client:
        yield client


def greedy_text(model, prompt: str, n: int) -> str:
    ids = torch.tensor([IdCodec().encode(prompt)])
    new = generate(model, ids, n, temperature=0, stop_tokens=[0])[0, ids.shape[1] :].tolist()
    return IdCodec().decode(new[: new.index(0)] if 0 in new else new)


def test_completion_chat_and_stream_give_the_greedy_text(client, model):
    body = {"model": "tiny", "prompt": "5 6 7", "max_tokens": 6, "temperature": 0}
    reply = client.post("/v1/completions", json=body).json()
    assert reply["object"] == "text_completion"
    assert reply["choices"][0]["text"] == greedy_text(model, "5 6 7", 6)
    assert reply["usage"] == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "5 6 7"}], "temperature": 0}
    answer = client.post("/v1/chat/completions", json={**chat, "max_tokens": 6}).json()
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": reply["choices"][0]["text"],
    }
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as events:
        lines = [line for line in events.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == reply["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == reply["choices"][0]["finish_reason"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": "other", "prompt": "1 2"}, 404, "not served here"),
        ({"model": "tiny", "prompt": "1 2", "max_tokens": 9}, 400, "over this server's limit"),
        ({"model": "tiny", "prompt": " ".join(["1"] * 17)}, 400, "at most 16"),
        ({"model": "tiny", "prompt": "1 2", "max_token": 3}, 400, "Unknown field 'max_token'"),
        ({"model": "tiny", "prompt": "1 2", "top_p": 0}, 400, "top_p"),
    ],
)
def test_bad_requests_are_answered_in_openai_shape(client, body, status, says):
    response = client.post("/v1/completions", json=body)
    assert response.status_code == status
    assert says in response.json()["error"]["message"]


def test_health_names_the_models_device(client):
    assert client.get("/health").json() == {
        "status": "ok", "model": "tiny", "batch_size": 8, "device": "cpu",
    }  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_serve_refuses_a_device_it_does_not_have(capsys):
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    assert run_server(parser.parse_args(["--model", "tiny", "--device", "cuda"])) == 2
    assert "CUDA is not available" in capsys.readouterr().err
