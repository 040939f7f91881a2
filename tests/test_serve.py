"""``llmcourse serve`` over real HTTP on loopback, called with the official ``openai`` client.

One server (the tiny random model, so it starts in seconds) runs in a child process for the
whole module and is stopped in the fixture's finalizer, its process group killed if need be.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import openai
import pytest

from llmcourse.serve.process import ServerProcess

KEY = "test-key"
MODEL = "tiny-random"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    process = ServerProcess(
        "--model",
        "tiny",
        "--api-key",
        KEY,
        "--max-batch-size",
        "4",
        "--max-prompt-tokens",
        "64",
        "--max-tokens",
        "32",
        "--max-body-bytes",
        "4096",
        "--max-concurrency",
        "16",
    )
    try:
        yield process
    finally:
        process.stop()
    assert not process.running


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=60)


def post(server, path, content, headers=None):
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": "application/json",
        **(headers or {}),
    }
    return httpx.post(server.url + path, content=content, headers=headers, timeout=60)


def test_binds_loopback_only(server):
    assert server.url.startswith("http://127.0.0.1:")


def test_the_model_is_on_the_chosen_device(server):
    health = httpx.get(server.url + "/health").json()
    assert health["device"] == "cpu"  # utils.device(): no GPU here, LLMCOURSE_DEVICE unset
    assert "device cpu" in server.output()


def test_completion_and_its_stream_agree(client):
    reply = client.completions.create(
        model=MODEL, prompt="To be, or not", max_tokens=8, temperature=0
    )
    choice = reply.choices[0]
    assert reply.object == "text_completion" and reply.model == MODEL
    assert choice.finish_reason in ("stop", "length") and choice.text
    assert reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 0
    stream = client.completions.create(
        model=MODEL, prompt="To be, or not", max_tokens=8, temperature=0, stream=True
    )
    chunks = list(stream)
    assert len(chunks) > 1  # text arrives piece by piece
    assert "".join(c.choices[0].text for c in chunks) == choice.text
    assert chunks[-1].choices[0].finish_reason == choice.finish_reason


def test_chat_completion_and_its_stream_agree(client):
    messages = [{"role": "user", "content": "Name a play by Shakespeare."}]
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=6, temperature=0
    )
    message = reply.choices[0].message
    assert reply.object == "chat.completion" and message.role == "assistant"
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == message.content
    assert chunks[-1].usage.total_tokens == reply.usage.total_tokens


def test_concurrent_requests_share_decode_steps(server, client):
    results, errors = [], []

    def ask(i: int) -> None:
        try:
            reply = client.completions.create(
                model=MODEL, prompt=f"Request {i}:", max_tokens=24, temperature=0
            )
            results.append(reply.usage.completion_tokens)
        except Exception as error:  # collected, asserted below
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 8
    metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert metrics["decode_batch_size_max"] > 1  # requests that overlapped were batched
    assert metrics["decode_batch_size_max"] <= 4  # ...up to --max-batch-size
    assert metrics["latency_seconds"]["p95"] >= metrics["latency_seconds"]["p50"] > 0


def test_wrong_or_missing_api_key_is_401(server):
    bad = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model=MODEL, prompt="hi", max_tokens=2)
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # health needs no key


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"model": "tiny-random", "prompt": "hi"', 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (json.dumps({"model": MODEL, "prompt": "hi", "max_token": 3}).encode(), 400, "max_token"),
        (
            json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 33}).encode(),
            400,
            "limit of 32",
        ),
        (json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 0}).encode(), 400, "max_tokens"),
        (
            json.dumps({"model": MODEL, "prompt": "hi", "temperature": -1}).encode(),
            400,
            "temperature",
        ),
        (json.dumps({"model": MODEL, "prompt": "hi", "n": 17}).encode(), 400, "limit of 16"),
        (json.dumps({"model": MODEL, "prompt": "word " * 100}).encode(), 400, "at most 64"),
        (json.dumps({"model": MODEL, "prompt": ""}).encode(), 400, "empty"),
        (json.dumps({"model": MODEL}).encode(), 400, "prompt"),
        (json.dumps({"model": "gpt-4", "prompt": "hi"}).encode(), 404, "not served"),
        (json.dumps({"model": MODEL, "prompt": "x" * 5000}).encode(), 413, "4096 bytes"),
        (b"[1, 2]", 400, "Invalid request"),
    ],
)
def test_bad_requests_get_4xx_in_openai_shape(server, body, status, says):
    response = post(server, "/v1/completions", body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert says in error["message"]
    assert httpx.get(server.url + "/health").status_code == 200


def test_bad_chat_messages_and_unknown_routes(server, client):
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "robot", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    assert post(server, "/v1/nothing", b"{}").status_code == 404
    assert httpx.get(server.url + "/v1/completions").status_code == 405


def test_chunked_body_over_the_limit_is_413(server):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    response = httpx.post(
        server.url + "/v1/completions", content=chunks(), headers={"Authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == 413


def test_client_that_disconnects_mid_stream_is_dropped_and_the_server_stays_up(server, client):
    request = (
        f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n{body}"
    )
    body = json.dumps({"model": MODEL, "prompt": "Once upon", "max_tokens": 32, "stream": True})
    host, port = server.url.removeprefix("http://").split(":")
    for _ in range(3):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(request.format(n=len(body), body=body).encode())
            assert sock.recv(64).startswith(b"HTTP/1.1 200")  # streaming started; now hang up
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"})
        if metrics.json()["generations_by_finish_reason"].get("cancelled", 0) >= 3:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the engine never dropped the abandoned streams: {metrics.json()}")
    reply = client.completions.create(model=MODEL, prompt="Still there?", max_tokens=4)
    assert reply.choices[0].finish_reason in ("stop", "length")
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
