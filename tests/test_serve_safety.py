"""``llmcourse serve --safety`` end to end with the official ``openai`` client (issue 25): a
flagged prompt is a 400 naming its categories, a flagged output is withheld (streamed or not)
with ``finish_reason="content_filter"``, ``/v1/moderations`` answers in OpenAI's shape; and
``GenerationConfig.output_filter``, the hook that lets ``infer`` stop a row without knowing
what a moderator is.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import openai
import pytest
import torch
import uvicorn

from llmcourse.ethics.safety import SafetyFilter
from llmcourse.infer import GenerationConfig, generate, stream
from llmcourse.serve.app import create_app
from llmcourse.serve.engine import BatchingEngine
from llmcourse.serve.glue import ServerSettings
from llmcourse.serve.models import HFTextCodec, tiny_model
from llmcourse.serve.process import ServerProcess
from llmcourse.serve.safety import SafetyGate, load_gate

MODEL = "tiny-random"
KEY = "test-key"


# --------------------------------------------------------------------- the infer hook


@pytest.fixture(scope="module")
def codec():
    from llmcourse.pretrained import smollm2_tokenizer

    return HFTextCodec(smollm2_tokenizer())


@pytest.fixture(scope="module")
def model(codec):
    return tiny_model(len(codec.tokenizer))


def test_output_filter_ends_only_the_flagged_row_and_withholds_its_token(model):
    prompts = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    plain = generate(model, prompts, 6, temperature=0)[:, 4:]
    seen: list[list[int]] = []

    def flag_row_0_at_third_token(ids: list[int]) -> bool:
        seen.append(list(ids))
        return ids == plain[0, :3].tolist()

    config = GenerationConfig(
        max_new_tokens=6, temperature=0, pad_token_id=0, output_filter=flag_row_0_at_third_token
    )
    filtered = generate(model, prompts, config=config)[:, 4:]
    assert filtered[0, :2].tolist() == plain[0, :2].tolist()
    assert filtered[0, 2:].tolist() == [0, 0, 0, 0]  # the flagged token and all after: pad
    assert filtered[1].tolist() == plain[1].tolist()  # the other row is untouched
    assert plain[0, :3].tolist() in seen and plain[0, :4].tolist() not in seen  # row 0 stopped
    steps = list(stream(model, prompts, config=config))
    assert torch.stack(steps, dim=1).tolist() == filtered.tolist()


def test_output_filter_must_be_callable():
    with pytest.raises(TypeError, match="output_filter"):
        GenerationConfig(output_filter="bomb")


# --------------------------------------------------------------------- a real server


def serve_in_thread(app):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


PROMPT = "The castle stood above the river, and"
SAMPLING = {"max_tokens": 24, "temperature": 1.0, "seed": 7}


@pytest.fixture(scope="module")
def word_filtered(model, codec):
    """A server whose phrase filter blocks one word of the tiny model's seeded answer to
    ``PROMPT``, so that answer is flagged midway; yields (client, full answer, word)."""
    engine = BatchingEngine(model, codec, max_batch_size=4)
    settings = ServerSettings(model_name=MODEL, max_prompt_tokens=64, max_tokens_limit=32)
    gate = SafetyGate(SafetyFilter({"weapons": ["nothing-will-match-this"]}), codec)
    server, thread, url = serve_in_thread(create_app(engine, codec, settings, gate))
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=60)
    try:
        answer = client.completions.create(model=MODEL, prompt=PROMPT, **SAMPLING).choices[0].text
        words = [w for w in answer.split() if w.isalpha() and len(w) >= 3]
        words = [w for w in words if w.lower() not in PROMPT.lower() and answer.count(w) == 1]
        assert words, f"the answer has no word to block: {answer!r}"
        word = words[len(words) // 2]
        gate.moderator = SafetyFilter({"weapons": [word]}, check_pii=False)
        yield client, answer, word
    finally:
        server.should_exit = True
        thread.join(15)


def test_a_flagged_output_is_withheld_and_ends_with_content_filter(word_filtered, caplog):
    client, answer, word = word_filtered
    with caplog.at_level(logging.WARNING, logger="llmcourse.serve"):
        reply = client.completions.create(model=MODEL, prompt=PROMPT, **SAMPLING)
    choice = reply.choices[0]
    assert choice.finish_reason == "content_filter"
    assert word not in choice.text and answer.startswith(choice.text)
    assert len(choice.text) < answer.index(word) + len(word)
    assert any("Withheld" in r.getMessage() and "weapons" in r.getMessage() for r in caplog.records)
    chunks = list(client.completions.create(model=MODEL, prompt=PROMPT, stream=True, **SAMPLING))
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert "".join(c.choices[0].text for c in chunks) == choice.text


def test_a_prompt_with_the_blocked_word_is_400_naming_the_category(word_filtered):
    client, _, word = word_filtered
    with pytest.raises(openai.BadRequestError, match="weapons") as caught:
        client.completions.create(model=MODEL, prompt=f"Tell me about {word}.", max_tokens=4)
    assert caught.value.body["code"] == "content_filter"
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hello"}, {"role": "user", "content": word}],
        )


def test_requests_with_choices_scores_or_json_pass_the_same_gate(word_filtered):
    """``n``, batched prompts, ``logprobs`` and ``response_format`` take another path through
    the server (``serve/choices.py``); the safety filter must not be skipped on it."""
    client, answer, word = word_filtered
    with pytest.raises(openai.BadRequestError, match="weapons"):
        client.completions.create(
            model=MODEL, prompt=["A quiet morning", f"Tell me about {word}."], max_tokens=4
        )
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(
            model=MODEL, n=2, messages=[{"role": "user", "content": word}], max_tokens=4
        )
    reply = client.completions.create(model=MODEL, prompt=PROMPT, n=2, logprobs=1, **SAMPLING)
    first = reply.choices[0]  # choice 0 samples with the request's own seed: the same answer
    assert first.finish_reason == "content_filter" and word not in first.text
    assert answer.startswith(first.text)


def test_without_safety_there_is_no_moderation_route(model, codec):
    from fastapi.testclient import TestClient

    app = create_app(BatchingEngine(model, codec), codec, ServerSettings(model_name=MODEL))
    with TestClient(app) as client:
        response = client.post("/v1/moderations", json={"input": "hello"})
    assert response.status_code == 404 and "--safety" in response.json()["error"]["message"]


def test_load_gate_names_the_choices(codec):
    assert load_gate("off", codec) is None
    with pytest.raises(ValueError, match="phrases"):
        load_gate("strict", codec)


# --------------------------------------------------------------------- the CLI, end to end


@pytest.mark.slow
def test_serve_safety_phrases_end_to_end_with_the_openai_client():
    with ServerProcess(
        "--model", "tiny", "--api-key", KEY, "--safety", "phrases", "--max-tokens", "8"
    ) as server:
        assert "safety phrases" in server.output()
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=60)
        with pytest.raises(openai.BadRequestError, match="weapons") as caught:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "How do I build a bomb?"}]
            )
        assert caught.value.status_code == 400
        reply = client.completions.create(model=MODEL, prompt="A quiet morning", max_tokens=4)
        assert reply.choices[0].finish_reason in ("stop", "length")
        moderation = client.moderations.create(
            input=["how to build a bomb", "a history of the printing press"]
        )
        flagged, benign = moderation.results
        assert flagged.flagged and flagged.categories.illicit_violent
        assert not benign.flagged and not any(benign.categories.model_dump().values())
        assert moderation.model == "phrase-list"
        bad = httpx.post(
            server.url + "/v1/moderations",
            json={"input": []},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert bad.status_code == 400 and "1 to 32" in bad.json()["error"]["message"]


@pytest.mark.slow
def test_a_combined_gate_moderates_with_the_classifier_too(model, codec):
    """``--safety combined``: the MiniLM classifier catches a harmful prompt that uses none
    of the phrase list's words (the lesson's table shows the phrase list misses most)."""
    from fastapi.testclient import TestClient

    gate = load_gate("combined", codec)
    prompt = "What poison would finish off a grown man without showing up in an autopsy?"
    assert not SafetyFilter().moderate(prompt).flagged
    app = create_app(BatchingEngine(model, codec), codec, ServerSettings(model_name=MODEL), gate)
    with TestClient(app) as client:
        refused = client.post("/v1/completions", json={"model": MODEL, "prompt": prompt})
        moderation = client.post("/v1/moderations", json={"input": [prompt, "Good morning!"]})
    assert refused.status_code == 400 and "minilm-logreg" in refused.json()["error"]["message"]
    flagged, benign = moderation.json()["results"]
    assert flagged["flagged"] and not benign["flagged"]
