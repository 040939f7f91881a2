"""The continuous-batching engine: batched answers equal one-at-a-time ``generate``."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from host_reads import host_reads

from llmcourse.config import ModelConfig
from llmcourse.infer import GenerationConfig, generate
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


def sampling(max_tokens=16, stop=(), seed=None, **generation) -> SamplingParams:
    config = GenerationConfig(max_new_tokens=max_tokens, **generation)
    return SamplingParams(config, stop=stop, seed=seed)


def submit(engine, prompt, **params) -> tuple[GenerationRequest, Collector]:
    collector = Collector()
    request = GenerationRequest(prompt, sampling(**params), collector)
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


def test_a_sliding_window_model_keeps_its_solo_tokens_when_rows_join_and_leave(model):
    """The engine reshapes the batch through the cache interface only: the rolling cache of a
    sliding-window model takes the same padding, merging and trimming."""
    torch.manual_seed(0)
    windowed = DecoderLM(model.config.replace(sliding_window=6)).eval()
    engine = BatchingEngine(windowed, IdCodec(), max_batch_size=4).start()
    try:
        prompts = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [15], [16, 17, 18, 19, 20]]
        first = [submit(engine, p, max_tokens=30, temperature=0) for p in prompts[:2]]
        time.sleep(0.05)
        later = [submit(engine, p, max_tokens=8, temperature=0) for p in prompts[2:]]
        for _, collector in first + later:
            assert collector.done.wait(30)
    finally:
        engine.stop()
    for prompt, (request, _), n in zip(prompts, first + later, [30, 30, 8, 8], strict=True):
        assert request.generated == alone(windowed, prompt, n)


def test_repetition_penalty_sees_only_the_rows_own_tokens(model):
    """Rows prefilled together are left-padded; each row's penalty must count its own tokens
    only (not the padding, not the other rows'), as generate does for that prompt alone."""
    engine = BatchingEngine(model, IdCodec(), max_batch_size=4)
    prompts = [[1, 6], [20, 21, 22, 23, 24, 25, 26]]  # alone, the first stops at its 5th token
    requests = [
        submit(engine, p, max_tokens=12, temperature=0, repetition_penalty=3.0)[0] for p in prompts
    ]
    with torch.inference_mode():
        while engine._active or engine.queued:
            engine._step()
    for prompt, request in zip(prompts, requests, strict=True):
        ids = torch.tensor([prompt])
        out = generate(model, ids, 12, temperature=0, repetition_penalty=3.0, stop_tokens=[0])
        want = out[0, len(prompt) :].tolist()
        assert request.generated == (want[: want.index(0)] if 0 in want else want)
    assert requests[0].generated == [93, 86, 85, 61]  # stopped: padding (id 0) was not penalised
    assert requests[1].generated != alone(model, prompts[1], 12)  # the penalty did something


def test_one_read_back_to_the_host_per_decode_step(model):
    engine = BatchingEngine(model, IdCodec(), max_batch_size=4)
    submit(engine, [5, 6, 7], max_tokens=40, temperature=0)
    submit(engine, [8, 9], max_tokens=40, temperature=0.7, top_p=0.9, seed=3)
    with torch.inference_mode():
        engine._step()  # admission, prefill and the first step
        reads = host_reads(lambda: [engine._step() for _ in range(20)])
    assert reads == ["tolist"] * 20


def test_a_failed_prefill_fails_its_requests_and_the_engine_goes_on(model):
    """An error in a prefill ends the requests being admitted with an error event (they used
    to wait forever); the next request is served."""
    engine = BatchingEngine(model, IdCodec(), max_batch_size=4).start()
    try:
        _, broken_events = submit(engine, [[1, 2]], max_tokens=4, temperature=0)
        assert broken_events.done.wait(30), "the request was left waiting"
        _, events = submit(engine, [4, 5, 6], max_tokens=4, temperature=0)
        assert events.done.wait(30)
    finally:
        engine.stop()
    assert broken_events.events[-1].finish_reason == "error" and broken_events.events[-1].error
    assert events.events[-1].finish_reason in ("stop", "length")
