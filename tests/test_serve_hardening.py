"""``llmcourse serve`` under hostile and careless clients (issue 21): no 5xx for bad input,
stalled bodies do not starve real requests, abandoned streams free their batch slot.

Two kinds of server: the app in-process (FastAPI's test client) for the body checks and the
property tests, and the app under a real uvicorn on loopback, in a thread of this process,
for what only sockets show (stalled bodies, keep-alive after a 500, disconnects). Both serve
the tiny random model with SmolLM2's real tokenizer, so every prompt reaches a real encoder.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from llmcourse.infer.config import GenerationConfig
from llmcourse.serve.app import create_app
from llmcourse.serve.engine import BatchingEngine, GenerationRequest, SamplingParams
from llmcourse.serve.glue import ServerSettings
from llmcourse.serve.guard import RequestGuard, on_close
from llmcourse.serve.metrics import Metrics
from llmcourse.serve.models import HFTextCodec, tiny_model
from llmcourse.serve.schemas import ChatCompletionRequest, CompletionRequest

MODEL = "tiny-random"


class FaultyCodec(HFTextCodec):
    """SmolLM2's tokenizer, with a planted bug: the prompt "boom" raises, as an unforeseen
    failure inside a route would."""

    def encode(self, text: str) -> list[int]:
        if text == "boom":
            raise RuntimeError("planted bug")
        return super().encode(text)


@pytest.fixture(scope="module")
def codec():
    from llmcourse.pretrained import smollm2_tokenizer

    return FaultyCodec(smollm2_tokenizer())


@pytest.fixture(scope="module")
def model(codec):
    return tiny_model(len(codec.tokenizer))


@pytest.fixture(scope="module")
def client(model, codec):
    server = ServerSettings(model_name=MODEL, max_prompt_tokens=64, max_tokens_limit=4)
    app = create_app(BatchingEngine(model, codec, max_batch_size=4), codec, server)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def error_of(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


DEEP = b'{"model": "tiny-random", "prompt": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"model": MODEL, "prompt": "hi", "seed": 2**64}, "seed"),
        ({"model": MODEL, "prompt": "hi", "seed": -(2**63) - 1}, "seed"),
        ({"model": MODEL, "prompt": "\ud800 hi"}, "surrogate"),
        ({"model": MODEL, "prompt": "hi", "stop": ["\udfff"]}, "surrogate"),
        ({"model": MODEL, "prompt": "hi", "temperature": float("nan")}, "NaN"),
        ({"model": MODEL, "prompt": "hi", "max_tokens": float("inf")}, "Infinity"),
        (b'{"model": "tiny-random", "prompt": "hi", "max_tokens": ' + b"9" * 5000 + b"}", "JSON"),
        (DEEP, "deeper than 32"),
        (b'{"model": "tiny-random", "prompt": "hi", "stop": ' + b"[" * 40 + b"]" * 40 + b"}", "32"),
    ],
)
def test_out_of_range_and_malformed_bodies_are_400(client, body, says):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/v1/completions", content=content)
    assert response.status_code == 400, response.text
    assert says in error_of(response)["message"]


def test_a_lone_surrogate_in_a_chat_message_is_400(client):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "a\udc80b"}]}
    response = client.post("/v1/chat/completions", content=json.dumps(body))
    assert response.status_code == 400 and "surrogate" in error_of(response)["message"]


def test_the_largest_and_smallest_seeds_are_served(client):
    for seed in (2**64 - 1, -(2**63)):
        body = {"model": MODEL, "prompt": "hi", "seed": seed, "max_tokens": 2}
        assert client.post("/v1/completions", json=body).status_code == 200


def test_an_unexpected_exception_is_a_logged_500_in_openai_shape(client, caplog):
    response = client.post("/v1/completions", json={"model": MODEL, "prompt": "boom"})
    assert response.status_code == 500
    assert error_of(response)["type"] == "server_error"
    assert "planted bug" not in response.text  # internals stay in the log
    assert any("planted bug" in r.getMessage() or r.exc_info for r in caplog.records)
    assert client.post("/v1/completions", json={"model": MODEL, "prompt": "hi"}).status_code == 200


# --------------------------------------------------------------------- property tests


class _LegacyMany:
    """``hypothesis.internal.conjecture.utils.many`` as it was before Hypothesis 6.150
    (``while elements.more(): ...``), which hypothesis-jsonschema 0.23.1, its latest release,
    still calls; the installed Hypothesis has a context-manager form instead. Same choices:
    one boolean "one more?" per element, inside a span per element."""

    def __init__(self, data, min_size, max_size, average_size, *, forced=None) -> None:
        from hypothesis.internal.conjecture.utils import _calc_p_continue

        self.data, self.min_size, self.max_size = data, min_size, max_size
        self.p_continue = _calc_p_continue(average_size - min_size, max_size - min_size)
        self.count = self.rejections = 0
        self.drawn = self.rejected = self.force_stop = False

    def more(self) -> bool:
        from hypothesis.internal.conjecture.utils import ONE_FROM_MANY_LABEL

        if self.drawn:
            self.data.stop_span(discard=self.rejected)
        self.drawn, self.rejected = True, False
        self.data.start_span(ONE_FROM_MANY_LABEL)
        if self.min_size == self.max_size:
            go_on = self.count < self.min_size
        else:
            forced = (
                False
                if self.force_stop or self.count >= self.max_size
                else True
                if self.count < self.min_size
                else None
            )
            go_on = self.data.draw_boolean(self.p_continue, forced=forced)
        if go_on:
            self.count += 1
            return True
        self.data.stop_span()
        return False

    def reject(self, why: str | None = None) -> None:
        self.count -= 1
        self.rejections += 1
        self.rejected = True
        if self.rejections > max(3, 2 * self.count):
            if self.count < self.min_size:
                self.data.mark_invalid(why)
            self.force_stop = True


@pytest.fixture()
def jsonschema_compatible(monkeypatch):
    """Lets hypothesis-jsonschema 0.23.1 generate objects under a newer Hypothesis."""
    import types

    from hypothesis_jsonschema import _from_schema

    if not hasattr(_from_schema.cu.many, "more"):
        patched = types.SimpleNamespace(**vars(_from_schema.cu))
        patched.many = _LegacyMany
        monkeypatch.setattr(_from_schema, "cu", patched)


def _schema(request_type: type) -> dict:
    schema = request_type.model_json_schema()
    schema["properties"]["model"] = {"const": MODEL}  # else nearly every body is a 404
    return schema


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12,
    )


# Any code point, surrogates included: json.dumps writes them as \ud800-style escapes.
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=12)


def _post_all(client, path: str, bodies: st.SearchStrategy, n: int, statuses: list) -> None:
    @settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(bodies)
    def check(body) -> None:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = client.post(path, content=content)
        statuses.append(response.status_code)
        assert response.status_code < 500, (body, response.text)
        if response.status_code >= 400:
            error_of(response)

    check()


@pytest.mark.parametrize(
    ("path", "request_type"),
    [("/v1/completions", CompletionRequest), ("/v1/chat/completions", ChatCompletionRequest)],
)
def test_bodies_from_the_api_schema_never_get_a_5xx(
    client, path, request_type, jsonschema_compatible
):
    """300 bodies per route from the routes' own JSON schema (hypothesis-jsonschema), each
    then also with one field replaced by arbitrary JSON: 600 bodies in all, no 5xx."""
    schema_bodies = from_schema(_schema(request_type))
    mutated = st.tuples(schema_bodies, ANY_TEXT, json_values(ANY_TEXT)).map(
        lambda t: {**t[0], (list(t[0])[len(t[1]) % len(t[0])] if t[0] else t[1]): t[2]}
    )
    statuses: list[int] = []
    _post_all(client, path, st.one_of(schema_bodies, mutated), 300, statuses)
    assert len(statuses) >= 300
    assert statuses.count(200) >= 20, statuses  # many reached the engine, not only 4xx


def test_arbitrary_json_and_bytes_never_get_a_5xx(client):
    statuses: list[int] = []
    arbitrary = json_values(ANY_TEXT) | st.binary(max_size=64)
    for path in ("/v1/completions", "/v1/chat/completions"):
        _post_all(client, path, arbitrary, 100, statuses)
    assert len(statuses) >= 200 and set(statuses) <= {400, 404}


# --------------------------------------------------------------------- a real server


class SlowModel:
    """Wraps a model's forward to take ``delay`` seconds more: a request then lasts long
    enough for a test to abandon it midway."""

    def __init__(self, model, delay: float) -> None:
        self.handle = model.register_forward_pre_hook(lambda *_: time.sleep(delay))

    def remove(self) -> None:
        self.handle.remove()


@pytest.fixture(scope="module")
def live(model, codec):
    """The app under uvicorn on 127.0.0.1 (a free port), in a thread; batch size 1, so one
    abandoned request that kept its slot would block every other."""
    server_settings = ServerSettings(
        model_name=MODEL,
        max_prompt_tokens=64,
        max_tokens_limit=256,
        max_concurrency=8,
        body_timeout_seconds=3.0,
    )
    engine = BatchingEngine(model, codec, max_batch_size=1)
    app = create_app(engine, codec, server_settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield url, engine
    finally:
        server.should_exit = True
        thread.join(15)


def ask(url: str, prompt: str = "Hello", max_tokens: int = 3, timeout: float = 30) -> dict:
    body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    response = httpx.post(url + "/v1/completions", json=body, timeout=timeout)
    assert response.status_code == 200, response.text
    return response.json()


def test_real_requests_are_served_while_100_clients_stall_halfway_through_a_body(live):
    url, _ = live
    port = int(url.rsplit(":", 1)[1])
    head = (
        "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 200\r\n\r\n"
    )
    stalled = []
    try:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(head.encode() + b'{"model": "tiny-random", "prompt": "' + b"x" * 60)
            stalled.append(sock)
        time.sleep(0.2)  # all 100 are connected and waiting for the rest of their bodies
        for i in range(3):  # more than max_concurrency would allow if the stalled counted
            assert ask(url, f"Request {i}")["choices"][0]["finish_reason"] in ("stop", "length")
        metrics = httpx.get(url + "/metrics").json()
        assert metrics["requests_in_flight"] == 0
        # The body deadline (3 s) answers each stalled client 408 and closes its connection.
        reply = b""
        while chunk := stalled[0].recv(4096):  # headers and body may come apart; then it closes
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 3 s" in reply
    finally:
        for sock in stalled:
            sock.close()


def test_a_500_keeps_the_connection_alive(live):
    url, _ = live
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    headers = {"Content-Type": "application/json"}
    connection.request(
        "POST", "/v1/completions", json.dumps({"model": MODEL, "prompt": "boom"}), headers
    )
    first = connection.getresponse()
    assert first.status == 500 and json.loads(first.read())["error"]["type"] == "server_error"
    assert not first.will_close
    sock = connection.sock
    connection.request(
        "POST",
        "/v1/completions",
        json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 2}),
        headers,
    )
    second = connection.getresponse()
    assert second.status == 200 and json.loads(second.read())["usage"]["completion_tokens"] >= 1
    assert connection.sock is sock  # the same TCP connection answered both
    connection.close()


def test_a_disconnected_streams_slot_is_reused(live, model):
    """Batch size 1 and a slow model: the abandoned stream would hold the only slot for
    256 × 50 ms ≈ 13 s; a request after the disconnect must be answered well before."""
    url, engine = live
    port = int(url.rsplit(":", 1)[1])
    before = engine.metrics.snapshot()["generations_by_finish_reason"].get("cancelled", 0)
    slow = SlowModel(model, 0.05)
    try:
        body = json.dumps(
            {"model": MODEL, "prompt": "Once upon", "max_tokens": 256, "stream": True}
        )
        request = (
            "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(request.encode())
            assert sock.recv(64).startswith(b"HTTP/1.1 200")  # streaming; now hang up
        start = time.monotonic()
        reply = ask(url, "Next", max_tokens=2, timeout=8)
        assert reply["usage"]["completion_tokens"] >= 1 and time.monotonic() - start < 8
    finally:
        slow.remove()
    after = engine.metrics.snapshot()["generations_by_finish_reason"].get("cancelled", 0)
    assert after == before + 1


# --------------------------------------------------------------------- units


def test_generation_stops_at_its_time_limit(model, codec):
    engine = BatchingEngine(model, codec, max_batch_size=2).start()
    slow = SlowModel(model, 0.02)
    events, done = [], threading.Event()

    def note(event) -> None:
        events.append(event)
        if event.finish_reason:
            done.set()

    try:
        params = SamplingParams(GenerationConfig(max_new_tokens=500, temperature=0))
        job = GenerationRequest(codec.encode("Hello"), params, note, time_limit=0.3)
        engine.submit(job)
        assert done.wait(30)
    finally:
        slow.remove()
        engine.stop()
    last = events[-1]
    assert last.finish_reason == "time_limit" and 1 <= last.completion_tokens < 500
    assert "".join(e.text for e in events) == codec.decode(job.generated)  # nothing held back


def test_a_stream_whose_client_stops_reading_is_dropped_and_its_job_cancelled():
    """A write that waits longer than the write deadline abandons the response and runs the
    route's clean-ups (the glue cancels its engine job there)."""
    cancelled = threading.Event()

    async def app(scope, receive, send):
        on_close(scope, cancelled.set)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(100):
            await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})

    writes = 0

    async def send(message):
        nonlocal writes
        writes += 1
        if writes > 3:  # the client's buffers are full: this write never completes
            await asyncio.Event().wait()

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    metrics = Metrics()
    guard = RequestGuard(app, metrics, 1024, body_timeout_seconds=1, write_timeout_seconds=0.2)
    scope = {"type": "http", "path": "/v1/completions", "method": "POST", "headers": []}
    asyncio.run(asyncio.wait_for(guard(scope, receive, send), 10))
    assert cancelled.is_set() and writes == 4
    snapshot = metrics.snapshot()
    assert snapshot["requests_by_status"] == {"499": 1} and snapshot["requests_in_flight"] == 0


def test_a_row_whose_sampling_fails_fails_alone(model, codec):
    """temperature=1e-300 overflows logits / T to inf (NaN probabilities) in the sampler: that
    request ends with an error, the one batched with it is served to the end."""
    engine = BatchingEngine(model, codec, max_batch_size=2)
    outcomes: dict[str, list] = {"bad": [], "good": []}
    done = threading.Barrier(3)

    def collect(name: str):
        def note(event) -> None:
            outcomes[name].append(event)
            if event.finish_reason:
                threading.Thread(target=done.wait).start()

        return note

    bad = SamplingParams(GenerationConfig(max_new_tokens=8, temperature=1e-300))
    good = SamplingParams(GenerationConfig(max_new_tokens=8, temperature=0))
    engine.submit(GenerationRequest(codec.encode("Hello there"), bad, collect("bad")))
    engine.submit(GenerationRequest(codec.encode("Hello there"), good, collect("good")))
    engine.start()
    try:
        done.wait(30)
    finally:
        engine.stop()
    assert outcomes["bad"][-1].finish_reason == "error" and outcomes["bad"][-1].error
    assert outcomes["good"][-1].finish_reason in ("stop", "length")
    assert engine.metrics.snapshot()["prefill_batches_total"] == 1  # they shared a batch
