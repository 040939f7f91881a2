"""Load test of ``llmcourse serve``: continuous batching on vs off, N concurrent clients.

    .venv/bin/python benchmarks/bench_serve.py [--model smollm2|tiny] [--clients 8]
        [--requests-per-client 3] [--max-tokens 32] [--time-limit 240]

Two servers run one after the other on 127.0.0.1 (ports picked by the OS), the same model in
both: ``--max-batch-size 8`` (batching on) and ``--max-batch-size 1`` (one request at a time,
the baseline). Each of ``--clients`` threads sends ``--requests-per-client`` streamed
completions with the official ``openai`` client (greedy, ``--max-tokens`` each, distinct
prompts). The loop is bounded in count and in time (``--time-limit`` per server); every server
is stopped at the end, whatever happened. Reported: completion tokens per second over the whole
run, request latency and time to first token (p50/p95), failed requests, and the server's own
mean decode batch size from ``/metrics``. Goal (issue 11): >= 2x throughput at 8 clients with
batching, no failed requests.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import httpx
import openai

from llmcourse.eval import summarize_latencies, time_stream
from llmcourse.serve.process import ServerProcess

MODEL_NAMES = {"smollm2": "smollm2-135m-instruct", "tiny": "tiny-random"}


def load(server: ServerProcess, args: argparse.Namespace, label: str) -> dict:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
    name = MODEL_NAMES[args.model]
    client.completions.create(model=name, prompt="Warm up.", max_tokens=4, temperature=0)
    latencies, ttfts, tokens, failures = [], [], [], []
    deadline = time.monotonic() + args.time_limit
    lock = threading.Lock()

    def run_client(index: int) -> None:
        for k in range(args.requests_per_client):
            if time.monotonic() > deadline:
                return
            prompt = f"Client {index}, request {k}: write one sentence about the sea."
            try:
                stream = client.completions.create(
                    model=name,
                    prompt=prompt,
                    max_tokens=args.max_tokens,
                    temperature=0,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                timing, chunks = time_stream(stream)
                usage = chunks[-1].usage
                with lock:
                    latencies.append(timing.total)
                    ttfts.append(timing.time_to_first_token)
                    tokens.append(usage.completion_tokens)
            except Exception as error:  # counted and reported: the load test must not stop
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")

    start = time.perf_counter()
    threads = [threading.Thread(target=run_client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.time_limit + 120)
    wall = time.perf_counter() - start
    metrics = httpx.get(server.url + "/metrics", timeout=30).json()
    health = httpx.get(server.url + "/health", timeout=30).status_code
    return {
        "label": label,
        "requests": len(latencies),
        "failed": len(failures),
        "failures": failures[:3],
        "tokens": sum(tokens),
        "wall": wall,
        "throughput": sum(tokens) / wall,
        "latency": summarize_latencies(latencies) if latencies else None,
        "ttft": summarize_latencies(ttfts) if ttfts else None,
        "mean_batch": metrics["decode_batch_size_mean"],
        "healthy_after": health == 200,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODEL_NAMES), default="smollm2")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests-per-client", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds per server")
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or not 1 <= args.requests_per_client <= 100:
        parser.error("keep the load bounded: 1-64 clients, 1-100 requests each")
    rows = []
    for label, batch in (("batching on", args.clients), ("batching off", 1)):
        with ServerProcess("--model", args.model, "--max-batch-size", str(batch)) as server:
            rows.append(load(server, args, label))
    print(
        f"llmcourse serve, model {args.model}, {args.clients} concurrent clients x "
        f"{args.requests_per_client} streamed requests, {args.max_tokens} tokens each, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'mode':<13} {'requests':>8} {'failed':>6} {'tokens/s':>9} {'lat p50':>8} "
        f"{'lat p95':>8} {'ttft p50':>8} {'ttft p95':>8} {'mean batch':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        nan = float("nan")
        lat50, lat95 = (r["latency"].p50, r["latency"].p95) if r["latency"] else (nan, nan)
        ttft50, ttft95 = (r["ttft"].p50, r["ttft"].p95) if r["ttft"] else (nan, nan)
        print(
            f"{r['label']:<13} {r['requests']:>8} {r['failed']:>6} {r['throughput']:>9.1f} "
            f"{lat50:>7.2f}s {lat95:>7.2f}s {ttft50:>7.2f}s {ttft95:>7.2f}s "
            f"{r['mean_batch']:>10.2f}"
        )
        for failure in r["failures"]:
            print(f"  failure ({r['label']}): {failure}")
    on, off = rows
    gain = on["throughput"] / off["throughput"] if off["throughput"] else float("nan")
    print(f"\nthroughput gain from batching: {gain:.2f}x (goal >= 2x at 8 clients)")
    ok = all(r["failed"] == 0 and r["healthy_after"] for r in rows)
    print("failed requests: none, servers healthy after the load" if ok else "FAILURES (above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
