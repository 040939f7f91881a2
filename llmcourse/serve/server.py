"""Run the server: load the model, bind a socket on loopback, print where it listens, serve.

The socket is bound here, before uvicorn starts, so ``--port 0`` picks a free port and the
printed line (``llmcourse serve: listening on http://127.0.0.1:PORT``) names the real one: tests
and the lesson read it instead of guessing a port that another process might take first.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import threading
import time
from typing import Any

LOOPBACK = "127.0.0.1"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``llmcourse serve``."""
    parser.add_argument(
        "--model",
        default="smollm2",
        help="smollm2, tiny (a random 2-layer model for testing the server), or the folder of a "
        "model `llmcourse capstone` trained (e.g. ~/.cache/llmcourse/capstone/small/final)",
    )
    parser.add_argument(
        "--quantize", choices=("int8", "int4"), help="quantize linear layers (llmcourse.quant)"
    )
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:1, mps (default: $LLMCOURSE_DEVICE, else cuda > mps > cpu)",
    )
    parser.add_argument(
        "--host", default=LOOPBACK, help="address to bind (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port (0: any free port, printed at start)"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("LLMCOURSE_API_KEY"),
        help="require 'Authorization: Bearer KEY' (default: $LLMCOURSE_API_KEY, else none)",
    )
    parser.add_argument(
        "--max-batch-size", type=int, default=8, help="sequences decoded together (1: no batching)"
    )
    parser.add_argument("--max-prompt-tokens", type=int, default=1024)
    parser.add_argument("--max-tokens", type=int, default=256, help="cap on max_tokens per request")
    parser.add_argument(
        "--max-concurrency", type=int, default=64, help="requests in flight before 429"
    )
    parser.add_argument("--max-body-bytes", type=int, default=64 * 1024)
    parser.add_argument(
        "--safety",
        default="off",
        choices=("off", "phrases", "classifier", "combined"),  # serve.safety.SAFETY_CHOICES
        help="moderate prompts (flagged: 400) and outputs (withheld, finish_reason "
        "'content_filter'), and serve /v1/moderations (llmcourse.ethics)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=10.0,
        help="seconds a client has to send its whole request body (then 408)",
    )
    parser.add_argument(
        "--write-timeout",
        type=float,
        default=30.0,
        help="seconds one write may wait for a client to read (then the reply is dropped)",
    )
    parser.add_argument(
        "--max-generation-seconds",
        type=float,
        default=120.0,
        help="seconds one request may spend generating (then finish_reason 'length')",
    )


def run_server(args: argparse.Namespace) -> int:
    """``llmcourse serve``: returns the exit status."""
    import uvicorn

    from llmcourse.serve.app import create_app
    from llmcourse.serve.engine import BatchingEngine
    from llmcourse.serve.glue import ServerSettings
    from llmcourse.serve.models import load_served_model
    from llmcourse.serve.safety import load_gate
    from llmcourse.utils.devices import device as pick_device

    for name in (
        "max_batch_size",
        "max_prompt_tokens",
        "max_tokens",
        "max_concurrency",
        "max_body_bytes",
    ):
        if getattr(args, name) < 1:
            print(f"--{name.replace('_', '-')} must be at least 1.", file=sys.stderr)
            return 2
    for name in ("body_timeout", "write_timeout", "max_generation_seconds"):
        if not getattr(args, name) > 0:  # also refuses nan
            print(f"--{name.replace('_', '-')} must be a number of seconds > 0.", file=sys.stderr)
            return 2
    if not _is_loopback(args.host) and args.api_key is None:
        print(
            f"[llmcourse] warning: serving on {args.host} without --api-key: anyone who can "
            "reach it can use it.",
            file=sys.stderr,
        )
    try:
        device = pick_device(args.device)
    except ValueError as error:  # a device this machine does not have
        print(error, file=sys.stderr)
        return 2
    from llmcourse.serve.chat_page import NOTES, add_chat_page, is_model_folder, load_folder_model

    if is_model_folder(args.model):
        model, codec, args.max_tokens, note = load_folder_model(
            args.model, device, args.max_tokens, args.quantize
        )
    elif args.model in NOTES:
        model, codec = load_served_model(args.model, args.quantize, device)
        note = NOTES[args.model]
    else:
        print(f"--model {args.model!r}: give smollm2, tiny or a model folder.", file=sys.stderr)
        return 2
    name = model.config.name + (f"-{args.quantize}" if args.quantize else "")
    settings = ServerSettings(
        model_name=name,
        api_key=args.api_key,
        max_prompt_tokens=args.max_prompt_tokens,
        max_tokens_limit=args.max_tokens,
        max_concurrency=args.max_concurrency,
        max_body_bytes=args.max_body_bytes,
        body_timeout_seconds=args.body_timeout,
        write_timeout_seconds=args.write_timeout,
        max_generation_seconds=args.max_generation_seconds,
    )
    engine = BatchingEngine(model, codec, max_batch_size=args.max_batch_size)
    app = create_app(engine, codec, settings, load_gate(args.safety, codec))
    add_chat_page(app, name, model.config.context_length, args.max_tokens, note)  # GET /
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as error:
        print(
            f"Cannot bind {args.host}:{args.port}: {error}. Pick another --port (0: any free one).",
            file=sys.stderr,
        )
        return 1
    # Listen before saying so: a client that connects before uvicorn starts waits in the
    # backlog instead of being refused.
    sock.listen(2048)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    print(
        f"llmcourse serve: listening on http://{host}:{port} "
        f"(model {name}, batch {args.max_batch_size}, device {engine.device}, "
        f"safety {args.safety})",
        flush=True,
    )
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    parent = os.environ.get("LLMCOURSE_SERVE_PARENT_PID")
    if parent and parent.isdigit():
        threading.Thread(target=_exit_with, args=(int(parent), server), daemon=True).start()
    server.run(sockets=[sock])
    return 0


def _exit_with(parent_pid: int, server: Any) -> None:
    """Ask uvicorn to shut down once ``parent_pid`` has exited (see ``ServerProcess``)."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent_pid, 0)  # signal 0: only checks that the process exists
        except ProcessLookupError:
            server.should_exit = True
            return
        except PermissionError:  # it exists, owned by someone else
            continue


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
