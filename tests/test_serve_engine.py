"""The continuous-batching engine: batched answers equal one-at-a-time ``generate``."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from llmcourse.config import ModelConfig
from llmcourse.infer import generate
from llmcourse.models import DecoderLM
from llmcourse.serve.engine import BatchingEngine, GenerationRequest, SamplingParams


class IdCodec:
    """Text is space-separated token ids: the engine's bookkeeping without a real tokenizer."""

    stop_ids = frozenset({0})

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in text.split()]

    def decode(self, ids) -> str:
        return "".join(f" {i}" for i in ids)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=97,
        context_length=128,
        d_model=32,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        position="rope",
        norm="rmsnorm",
        mlp="swiglu",
        bias=False,
    )
    return DecoderLM(config).eval()


class Collector:
    def __init__(self) -> None:
        self.events, self.done = [], threading.Event()

    def __call__(self, event) -> None:
        self.events.append(event)
        if event.finish_reason:
            self.done.set()

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events)


def submit(engine, prompt, **params) -> tuple[GenerationRequest, Collector]:
    collector = Collector()
    request = GenerationRequest(prompt, SamplingParams(**params), collector)
    return engine.submit(request), collector


def alone(model, prompt, max_tokens) -> list[int]:
    out = generate(model, torch.tensor([prompt]), max_tokens, temperature=0, stop_tokens=[0])
    new = out[0, len(prompt) :].tolist()
    return new[: new.index(0)] if 0 in new else new


def test_requests_that_join_between_steps_get_the_tokens_they_would_get_alone(model):
    engine = BatchingEngine(model, IdCodec(), max_batch_size=4).start()
    try:
        prompts = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [15], [16, 17, 18, 19, 20]]
        first = [submit(engine, p, max_tokens=40, temperature=0) for p in prompts[:2]]
        time.sleep(0.05)  # the first two are decoding when the others arrive
        later = [submit(engine, p, max_tokens=6, temperature=0) for p in prompts[2:]]
        for _, collector in first + later:
            assert collector.done.wait(30)
    finally:
        engine.stop()
    for prompt, (request, collector), n in zip(prompts, first + later, [40, 40, 6, 6], strict=True):
        assert request.generated == alone(model, prompt, n)
        assert collector.text == IdCodec().decode(request.generated)
    assert engine.metrics.snapshot()["decode_batch_size_max"] > 1


def test_stop_strings_cut_the_text_and_finish_with_stop(model):
    engine = BatchingEngine(model, IdCodec(), max_batch_size=2).start()
    try:
        reference = alone(model, [3, 4, 5], 10)
        stop = f" {reference[2]}"  # the third generated token's text
        _, collector = submit(engine, [3, 4, 5], max_tokens=10, temperature=0, stop=(stop,))
        assert collector.done.wait(30)
    finally:
        engine.stop()
    assert collector.events[-1].finish_reason == "stop"
    full = IdCodec().decode(reference)
    assert collector.text == full[: full.index(stop)]


def test_cancelled_requests_leave_and_others_continue(model):
    engine = BatchingEngine(model, IdCodec(), max_batch_size=4).start()
    try:
        doomed, doomed_events = submit(engine, [1, 2, 3], max_tokens=100, temperature=0)
        kept, kept_events = submit(engine, [4, 5, 6], max_tokens=8, temperature=0)
        doomed.cancel()
        assert doomed_events.done.wait(30) and kept_events.done.wait(30)
    finally:
        engine.stop()
    assert doomed_events.events[-1].finish_reason == "cancelled"
    assert kept.generated == alone(model, [4, 5, 6], 8)


def test_sampling_with_a_seed_is_reproducible_and_max_tokens_is_respected(model):
    engine = BatchingEngine(model, IdCodec(), max_batch_size=4).start()
    try:
        runs = [submit(engine, [7, 8], max_tokens=5, temperature=1.0, seed=42) for _ in range(3)]
        for _, collector in runs:
            assert collector.done.wait(30)
    finally:
        engine.stop()
    texts = {collector.text for _, collector in runs}
    assert len(texts) == 1
    request, collector = runs[0]
    if collector.events[-1].finish_reason == "length":
        assert len(request.generated) == 5


def test_engine_rejects_bad_settings_and_empty_prompts(model):
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchingEngine(model, IdCodec(), max_batch_size=0)
    engine = BatchingEngine(model, IdCodec())
    with pytest.raises(ValueError, match="no tokens"):
        engine.submit(GenerationRequest([], SamplingParams(), print))
