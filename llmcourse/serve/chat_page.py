"""The chat page at ``/`` and serving a model from a folder (``llmcourse serve --model PATH``).

``static/chat.html`` is one self-contained file (no build step, no CDN: it works offline): a
conversation that streams each reply from ``/v1/chat/completions`` (server-sent events),
temperature, top-p and max-token controls, a tokens/s readout and a plain note on what the
served model can and cannot do. It keeps the last ``max_turns`` messages; the model's codec
drops the oldest of those that do not fit the context.

``load_folder_model`` serves a capstone model (``llmcourse capstone`` writes one to
``…/capstone/SIZE/final``) with its own chat template and stop tokens (``capstone.chat``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PAGE = Path(__file__).with_name("static") / "chat.html"
TINY_NOTE = (
    "This is a small model trained on a laptop: a few hundred thousand to a few million "
    "parameters, Shakespeare's plays, chat-formatted instructions and small sums. It can "
    "answer sums of the size it was trained on (3+4= for tiny, 37+45= for small; often right), "
    "and write Shakespeare-flavoured lines; it knows no "
    "facts, cannot follow most instructions, and forgets anything beyond its short context."
)
NOTES = {
    "smollm2": "SmolLM2-135M-Instruct: a small instruction-tuned model. It chats fluently about "
    "common topics, but often gets facts and arithmetic wrong; check what it says.",
    "tiny": "A random 2-layer model for testing the server: its replies are gibberish.",
}


def page_html(model: str, context_length: int, max_tokens: int, note: str) -> str:
    """The page with its settings filled in (as JSON, with ``<`` escaped so no value can close
    the script element)."""
    config = {
        "model": model,
        "context_length": context_length,
        "max_tokens": max_tokens,
        "default_max_tokens": min(max_tokens, 64),
        "max_turns": 12,
        "note": note,
    }
    settings = json.dumps(config).replace("<", "\\u003c")
    return PAGE.read_text(encoding="utf-8").replace("__CHAT_CONFIG__", settings)


def add_chat_page(app: Any, model: str, context_length: int, max_tokens: int, note: str) -> None:
    """Serve the chat page at ``GET /`` on ``app`` (a FastAPI app)."""
    from fastapi.responses import HTMLResponse

    html = page_html(model, context_length, max_tokens, note)

    @app.get("/", include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(html)


def is_model_folder(name: str) -> bool:
    return Path(name).expanduser().is_dir()


def load_folder_model(
    folder: str | Path, device: Any, max_tokens: int, quantize: str | None = None
) -> tuple[Any, Any, int, str]:
    """``(model, codec, max_tokens, note)`` for a capstone model folder; ``max_tokens`` is cut
    to half the context so that a reply always has room after the (truncated) history;
    ``quantize``: a ``quant.quantize`` scheme."""
    from llmcourse.capstone.chat import ChatCodec, load_chat_model

    model, tokenizer = load_chat_model(Path(folder).expanduser())
    if quantize is not None:
        from llmcourse.quant import quantize as quantize_model

        model = quantize_model(model, scheme=quantize)
    context = model.config.context_length
    max_tokens = max(1, min(max_tokens, context // 2))
    codec = ChatCodec(tokenizer, max_prompt_tokens=context - max_tokens)
    return model.to(device).eval(), codec, max_tokens, TINY_NOTE
