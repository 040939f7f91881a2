"""``llmcourse serve --model FOLDER``: a capstone model behind the OpenAI API, with its chat
template, its stop tokens, history cut to its context, and the chat page at ``/``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from e2e.chat_model import make_model_folder

from llmcourse.capstone.chat import ChatCodec, chat_prompt_ids, load_chat_model
from llmcourse.serve.chat_page import page_html
from llmcourse.serve.process import ServerProcess


def _post(url: str, body: dict) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_page_settings_cannot_close_the_script_element():
    html = page_html("m</script><script>alert(1)", 96, 48, "a note")
    assert "</script><script>alert(1)" not in html
    assert '"context_length": 96' in html and '"max_tokens": 48' in html
    assert "http://" not in html and "https://" not in html  # nothing from a CDN: works offline


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = make_model_folder(tmp_path_factory.mktemp("chat") / "final")
    with ServerProcess("--model", str(folder), "--max-tokens", "200") as process:
        yield process, folder


@pytest.mark.slow
def test_folder_model_streams_chat_replies_and_serves_the_page(server):
    process, folder = server
    with urllib.request.urlopen(process.url + "/", timeout=30) as response:
        html = response.read().decode()
    assert "<title>llmcourse chat</title>" in html and '"model": "capstone-test"' in html
    assert '"max_tokens": 48' in html  # cut to half the 96-token context
    messages = [{"role": "user", "content": "3+4="}]
    body = {"model": "capstone-test", "messages": messages, "max_tokens": 8, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    status, raw = _post(process.base_url + "/chat/completions", body)
    assert status == 200, raw
    events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    usage = json.loads(events[-2])["usage"]
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    # The same greedy reply as the model itself gives to the capstone template's prompt.
    model, tokenizer = load_chat_model(folder)
    import torch

    from llmcourse.infer import generate

    codec = ChatCodec(tokenizer, 48)
    ids = torch.tensor([chat_prompt_ids(tokenizer, messages, 48)])
    out = generate(model, ids, 8, temperature=0.0, stop_tokens=sorted(codec.stop_ids))
    assert text == codec.decode(out[0, ids.shape[1] :].tolist())
    assert usage["prompt_tokens"] == ids.shape[1]


@pytest.mark.slow
def test_long_history_is_cut_to_the_context_not_refused(server):
    process, _ = server
    turns = []
    for n in range(30):
        turns += [{"role": "user", "content": f"line {n} of a long talk"},
                  {"role": "assistant", "content": "go on"}]  # fmt: skip
    turns.append({"role": "user", "content": "3+4="})
    body = {"model": "capstone-test", "messages": turns, "max_tokens": 48, "temperature": 0}
    status, raw = _post(process.base_url + "/chat/completions", body)
    assert status == 200, raw
    assert json.loads(raw)["usage"]["prompt_tokens"] <= 48
    status, raw = _post(process.base_url + "/chat/completions", {**body, "max_tokens": 49})
    assert status == 400 and b"max_tokens=49" in raw


def test_unknown_model_name_is_refused(capsys):
    from llmcourse.cli import main

    assert main(["serve", "--model", "no-such-model-or-folder", "--port", "0"]) == 2
    assert "give smollm2, tiny or a model folder" in capsys.readouterr().err
