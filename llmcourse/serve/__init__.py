"""``llmcourse serve``: an OpenAI-compatible HTTP server with continuous batching.

- ``BatchingEngine`` (``engine.py``): the scheduler loop over ``infer``'s prefill/decode steps;
- ``create_app`` (``app.py``): the FastAPI app, assembled from ``routes.py`` (endpoints, API
  key, body checks), ``schemas.py`` (request and reply bodies) and ``glue.py`` (limits, jobs on
  the engine, JSON and server-sent-event replies; ``ServerSettings``) and wrapped in
  ``guard.py`` (bodies read under a deadline and a size limit, concurrency counted once a body
  is in, logged 500s that keep the connection, a write deadline);
- ``SafetyGate`` (``safety.py``): ``--safety``, a moderator on prompts and outputs, and
  ``/v1/moderations``;
- ``choices.py``: requests with several prompts or choices, ``echo``, ``logprobs`` or
  ``response_format`` (what evaluation tools and structured outputs send);
- ``Metrics`` (``metrics.py``): what ``/metrics`` reports;
- ``load_served_model`` (``models.py``): SmolLM2 (optionally quantized) or a tiny random model,
  on the chosen device;
- ``run_server`` (``server.py``): bind 127.0.0.1, print the address, run uvicorn;
- ``ServerProcess`` (``process.py``): the server as a child process that is sure to stop.

Names load on first use (PEP 562), so the CLI can read ``serve``'s options without importing
torch or FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmcourse.utils.lazy import lazy_exports

_EXPORTS = {
    "BatchingEngine": "engine",
    "GenerationRequest": "engine",
    "SamplingParams": "engine",
    "StreamEvent": "engine",
    "ServerSettings": "glue",
    "create_app": "app",
    "Metrics": "metrics",
    "HFTextCodec": "models",
    "load_served_model": "models",
    "tiny_model": "models",
    "run_server": "server",
    "ServerProcess": "process",
}
__all__ = [
    "BatchingEngine",
    "GenerationRequest",
    "HFTextCodec",
    "Metrics",
    "SamplingParams",
    "ServerProcess",
    "ServerSettings",
    "StreamEvent",
    "create_app",
    "load_served_model",
    "run_server",
    "tiny_model",
]

if TYPE_CHECKING:
    from llmcourse.serve.app import create_app
    from llmcourse.serve.engine import (
        BatchingEngine,
        GenerationRequest,
        SamplingParams,
        StreamEvent,
    )
    from llmcourse.serve.glue import ServerSettings
    from llmcourse.serve.metrics import Metrics
    from llmcourse.serve.models import HFTextCodec, load_served_model, tiny_model
    from llmcourse.serve.process import ServerProcess
    from llmcourse.serve.server import run_server


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
