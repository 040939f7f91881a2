"""The chat page in a real browser: type a message, see the reply stream in piece by piece.

``llmcourse serve --model FOLDER`` serves a capstone-style model (``e2e.chat_model``); headless
Chromium (the system's, through Playwright, as ``test_e2e.py``) opens ``/``, types a message,
presses Enter, and watches the reply grow: more than one change to the reply's text while it
streams, then the tokens/s readout and a second turn that carries the first in its history.
Screenshots go to ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from e2e.browser import CHROMIUM_ARGS, find_chromium, unavailable_reason
from e2e.chat_model import make_model_folder

from llmcourse.serve.process import ServerProcess

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "e2e"
UNAVAILABLE = unavailable_reason()

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"browser tests skipped: {UNAVAILABLE}"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = make_model_folder(tmp_path_factory.mktemp("chat") / "final")
    with ServerProcess("--model", str(folder)) as process:
        yield process


def test_chat_page_streams_a_reply_and_keeps_the_conversation(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(find_chromium()), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page()
        page.set_default_timeout(60_000)
        requests: list[dict] = []
        page.on(
            "request",
            lambda r: requests.append(r.post_data_json) if r.url.endswith("/completions") else None,
        )
        try:
            page.goto(server.url + "/")
            assert page.locator("#model").inner_text() == "capstone-test"
            assert "small model" in page.locator("#note").inner_text()
            page.locator("#temperature").fill("0")  # greedy: the same reply every run
            # Count every change to the reply while it streams in.
            page.evaluate(
                """() => { window.changes = 0;
                new MutationObserver(() => { window.changes += 1; }).observe(
                  document.getElementById("log"),
                  {childList: true, subtree: true, characterData: true}); }"""
            )
            page.locator("#input").fill("3+4=")
            page.locator("#input").press("Enter")
            reply = page.locator(".turn.assistant").first
            reply.and_(page.locator("[data-done='true']")).wait_for()
            assert page.locator(".turn.user").first.inner_text() == "3+4="
            shown = reply.text_content()
            assert shown != ""  # a random model: often only newlines, still a streamed reply
            assert page.evaluate("window.changes") >= 3  # two turns added, then ≥ 1 piece each
            assert re.fullmatch(r"\d+ tokens, [\d.]+ tokens/s", page.locator("#speed").inner_text())
            page.locator("#input").fill("and 5+5=")
            page.locator("#send").click()
            page.locator(".turn.assistant[data-done='true']").nth(1).wait_for()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "chat-page.png"))
        finally:
            browser.close()
    first, second = requests
    assert first["stream"] is True and first["temperature"] == 0
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][1]["content"] == shown  # the reply it showed, kept as history
