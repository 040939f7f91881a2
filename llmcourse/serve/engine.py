"""Continuous batching: one scheduler loop that serves many generation requests at once.

A decode step of a small model on a CPU (or any model on a GPU) is bound by reading the
weights, not by arithmetic: feeding 8 sequences costs little more than feeding 1. A server that
runs requests one after another wastes that. **Continuous batching** (Yu et al. 2022, Orca,
"iteration-level scheduling") keeps one batch of active sequences and, at every step,

1. admits waiting requests (up to ``max_batch_size``): their prompts are prefilled together
   (left-padded) and merged into the running batch (``infer.merge_states``);
2. picks one token per row with that request's own sampling settings;
3. sends each request its new text and retires rows that hit a stop token, a stop string,
   ``max_tokens`` or a cancellation (``infer.select_rows``);
4. runs one batched ``decode_step`` for the rows left.

Rows also leave when their request's ``time_limit`` (seconds since it joined the batch) has
passed (finish reason ``"time_limit"``), so no request holds a slot for longer than that.

What evaluation tools and structured outputs need rides on the same loop: a request may ask
for the log-probabilities of its prompt (``prompt_logprobs``: the prefill keeps every
position's logits, ``infer.logprobs``) and of each token it samples (``logprobs``), and may be
held to a grammar (``grammar``: its row's logits are masked each step, ``infer.constrained``).
A request with ``max_tokens=0`` only scores its prompt and never joins the decode batch.

So a request never waits for another to finish: it joins between two steps. The loop runs in
its own thread (PyTorch releases the GIL inside kernels, so the HTTP server stays responsive),
and talks to callers only through ``GenerationRequest.on_event``. With ``max_batch_size=1`` the
same loop serves requests one at a time: the baseline the load test compares against.

Tensors are made on the model's device, and each step reads the batch's new tokens back to the
host once (to turn them into text); the lengths of the rows are kept on the host, so nothing
else needs reading back.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from llmcourse.infer.config import GenerationConfig
from llmcourse.infer.constrained import (
    ConstrainedDecoder,
    JSONGrammar,
    TokenTable,
    constrain_logits,
)
from llmcourse.infer.decoding import (
    DecodeState,
    decode_step,
    merge_states,
    prefill,
    select_rows,
    trim_left,
)
from llmcourse.infer.logprobs import TokenLogprob, prefill_with_logprobs, top_alternatives
from llmcourse.infer.sampling import next_token
from llmcourse.serve.metrics import Metrics


class TextCodec(Protocol):
    """What the engine needs from a tokenizer."""

    stop_ids: frozenset[int]

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class SamplingParams:
    """One request's settings: how to decode (``generation``, the ``GenerationConfig`` that
    ``generate`` takes) plus what only a text server has: ``stop`` strings and a ``seed``.

    The engine stops a row at ``generation.max_new_tokens``, at the codec's stop ids and
    ``generation.stop_tokens``, or at a stop string. It always keeps a dynamic cache (rows join
    and leave), whatever ``generation.cache`` says.
    """

    generation: GenerationConfig = field(default_factory=GenerationConfig)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: int | None = None  # score each sampled token, with this many alternatives
    prompt_logprobs: int | None = None  # score the prompt's tokens (echo), idem
    grammar: JSONGrammar | None = None  # constrained decoding (response_format)

    @property
    def max_tokens(self) -> int:
        return self.generation.max_new_tokens


@dataclass(frozen=True)
class StreamEvent:
    """New text for one request; the last event has ``finish_reason`` set.

    ``finish_reason``: ``"stop"`` (stop token or string), ``"length"`` (``max_tokens``),
    ``"time_limit"`` (the request's ``time_limit``), ``"content_filter"`` (the generation
    settings' ``output_filter`` flagged the text: the token that completed it is withheld),
    ``"cancelled"`` or ``"error"`` (then ``error`` says what went wrong).
    """

    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int = 0
    error: str | None = None


_ids = itertools.count()
logger = logging.getLogger("llmcourse.serve")


@dataclass(eq=False)
class GenerationRequest:
    """One prompt on its way through the engine. ``on_event`` is called from the engine thread;
    ``time_limit``: the most seconds it may spend in the batch (``None``: no limit)."""

    prompt_ids: list[int]
    params: SamplingParams
    on_event: Callable[[StreamEvent], None]
    time_limit: float | None = None
    id: int = field(default_factory=lambda: next(_ids))
    generated: list[int] = field(default_factory=list)
    sent_chars: int = 0  # how much of the decoded text has gone out
    done: bool = False
    generator: torch.Generator | None = None  # made on the model's device at admission
    admitted: float = 0.0  # time.monotonic() when it joined the batch
    prompt_scores: list[TokenLogprob] | None = None  # when params.prompt_logprobs is set
    token_scores: list[TokenLogprob] = field(default_factory=list)  # one per generated token
    constraint: ConstrainedDecoder | None = None  # made at admission when params.grammar
    _last_score: TokenLogprob | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask the engine to drop this request at its next step (a client went away)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def over_time(self, now: float) -> bool:
        """True once it has been in the batch for longer than ``time_limit`` seconds."""
        return self.time_limit is not None and now - self.admitted > self.time_limit


class BatchingEngine:
    """The scheduler loop (see the module docstring). ``start()``, ``submit()``, ``stop()``."""

    def __init__(
        self,
        model: torch.nn.Module,
        codec: TextCodec,
        max_batch_size: int = 8,
        metrics: Metrics | None = None,
    ) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
            raise TypeError(f"max_batch_size must be an int, got {max_batch_size!r}.")
        if max_batch_size < 1:
            raise ValueError(
                f"max_batch_size must be >= 1 (1 turns batching off), got {max_batch_size}."
            )
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.codec = codec
        self.max_batch_size = max_batch_size
        self.metrics = metrics or Metrics()
        self._queue: queue.Queue[GenerationRequest] = queue.Queue()
        self._active: list[GenerationRequest] = []
        self._lengths: list[int] = []  # real (unpadded) tokens of each active row in _state
        self._state: DecodeState | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._token_table: TokenTable | None = None

    @property
    def token_table(self) -> TokenTable:
        """The vocabulary as constrained decoding sees it (built on first use, ~1 s)."""
        if self._token_table is None:
            self._token_table = TokenTable.from_codec(self.codec, self.model.config.vocab_size)
        return self._token_table

    # ------------------------------------------------------------------ life cycle

    def start(self) -> BatchingEngine:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="llmcourse-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current step, cancel everything else and end the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, request: GenerationRequest) -> GenerationRequest:
        """Queue ``request``; it joins the batch between two decode steps."""
        if self._stopping.is_set():
            raise RuntimeError("The engine is stopped; start a new one.")
        if not request.prompt_ids:
            raise ValueError("The prompt has no tokens; give at least one.")
        self._queue.put(request)
        return request

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        with torch.inference_mode():
            while not self._stopping.is_set():
                try:
                    self._step()
                except Exception as error:  # a bad step fails its requests, never the server
                    logger.exception("An engine step failed; failing %d rows", len(self._active))
                    self._fail_all(f"{type(error).__name__}: {error}")
        self._fail_all("the server is shutting down", reason="cancelled")
        while not self._queue.empty():
            self._finish(self._queue.get_nowait(), "cancelled")

    def _admit(self) -> list[GenerationRequest]:
        new: list[GenerationRequest] = []
        while len(self._active) + len(new) < self.max_batch_size:
            idle = not self._active and not new
            try:  # block briefly only when there is nothing else to do
                request = self._queue.get(timeout=0.05) if idle else self._queue.get_nowait()
            except queue.Empty:
                break
            if request.cancelled:
                self._finish(request, "cancelled")
            else:
                new.append(request)
        return new

    def _step(self) -> None:
        new = self._admit()
        if new:
            try:
                self._prefill(new)
            except Exception as error:  # the new requests fail; the batch already running goes on
                logger.exception("Prefill failed for %d new requests", len(new))
                for r in new:
                    self._finish(r, "error", f"{type(error).__name__}: {error}")
                active = {id(r) for r in self._active}
                if any(id(r) in active for r in new):  # they joined before it failed: start over
                    self._fail_all(f"{type(error).__name__}: {error}")
        self._drop([r for r in self._active if r.cancelled], "cancelled")
        now = time.monotonic()
        late = [r for r in self._active if r.over_time(now)]
        for r in late:
            self._send(r, self.codec.decode(r.generated))  # what it has, held-back text included
        self._drop(late, "time_limit")
        if not self._active:
            return
        assert self._state is not None
        tokens = self._sample()
        rows = zip(self._active, tokens, strict=True)
        finished = [r for r, t in rows if r.done or self._emit(r, t)]  # done: sampling failed
        keep = [i for i, r in enumerate(self._active) if not r.done]
        if finished:
            self._remove(keep)
        if self._active:
            column = torch.tensor([tokens[i] for i in keep], device=self.device)
            self.metrics.record_step(len(self._active))
            self._state = decode_step(self.model, self._state, column)
            self._lengths = [n + 1 for n in self._lengths]

    def _prefill(self, requests: list[GenerationRequest]) -> None:
        """Prefill ``requests`` in one forward (left-padded) and merge them into the batch."""
        scoring = [r for r in requests if r.params.max_tokens == 0]
        if scoring:  # only the prompt's scores are wanted: one forward, no cache
            self._forward_prompts(scoring, cache=None)
            for r in scoring:
                self._finish(r, "length")
            requests = [r for r in requests if r.params.max_tokens > 0]
            if not requests:
                return
        state = self._forward_prompts(requests)
        self._state = state if self._state is None else merge_states([self._state, state])
        for r in requests:
            r.admitted = time.monotonic()
            if r.params.seed is not None:
                r.generator = torch.Generator(self.device).manual_seed(r.params.seed)
            if r.params.grammar is not None:
                r.constraint = ConstrainedDecoder(r.params.grammar, self.token_table)
        self._active.extend(requests)
        self._lengths.extend(len(r.prompt_ids) for r in requests)

    def _forward_prompts(
        self, requests: list[GenerationRequest], cache: str | None = "dynamic"
    ) -> DecodeState:
        """One left-padded forward over the prompts; scores them when a request asks."""
        ids, mask = pad_left([r.prompt_ids for r in requests], self.device)
        mask = mask if len({len(r.prompt_ids) for r in requests}) > 1 else None
        self.metrics.record_prefill(len(requests), sum(len(r.prompt_ids) for r in requests))
        wanted = [
            r.params.prompt_logprobs for r in requests if r.params.prompt_logprobs is not None
        ]
        if not wanted:
            return prefill(self.model, ids, mask, cache=cache)
        state, scores = prefill_with_logprobs(self.model, ids, mask, max(wanted), cache=cache)
        for r, row in zip(requests, scores, strict=True):
            k = r.params.prompt_logprobs
            if k is not None:
                r.prompt_scores = [TokenLogprob(s.token, s.logprob, s.top[:k]) for s in row]
        return state

    def _sample(self) -> list[int]:
        """One token per row, each with its request's settings; one read back to the host.

        A row whose sampling fails (its settings break the sampler) is finished with an error
        here, and the others go on: one bad request never fails the batch.
        """
        assert self._state is not None
        logits, tokens = self._state.logits, self._state.tokens
        picked = []
        for row, (request, length) in enumerate(zip(self._active, self._lengths, strict=True)):
            config = request.params.generation
            previous = tokens[row : row + 1, -length:] if config.repetition_penalty != 1 else None
            row_logits = logits[row : row + 1]
            if request.constraint is not None:
                left = request.params.max_tokens - len(request.generated)
                row_logits = constrain_logits(row_logits, request.constraint, left)
            try:
                token = next_token(
                    row_logits,
                    previous,
                    temperature=config.temperature,
                    top_k=config.top_k,
                    top_p=config.top_p,
                    repetition_penalty=config.repetition_penalty,
                    generator=request.generator,
                )
            except Exception as error:
                logger.exception("Sampling failed for request %d", request.id)
                self._finish(request, "error", f"{type(error).__name__}: {error}")
                token = torch.zeros(1, dtype=torch.long, device=self.device)
            picked.append(token.reshape(1))
        chosen = torch.cat(picked)
        self._score_sampled(logits, chosen)
        tokens_list = chosen.tolist()
        for request, token in zip(self._active, tokens_list, strict=True):
            if request.constraint is not None:
                request.constraint.advance(token)
        return tokens_list

    def _score_sampled(self, logits: torch.Tensor, chosen: torch.Tensor) -> None:
        """The model's log-probability of each sampled token, for the rows that ask."""
        rows = [i for i, r in enumerate(self._active) if r.params.logprobs is not None]
        if not rows:
            return
        k = max(self._active[i].params.logprobs or 0 for i in rows)
        index = torch.tensor(rows, device=logits.device)
        log_probs = logits[index].float().log_softmax(-1)
        for i, score in zip(rows, top_alternatives(log_probs, chosen[index], k), strict=True):
            request = self._active[i]
            request._last_score = TokenLogprob(
                score.token, score.logprob, score.top[: request.params.logprobs]
            )

    def _emit(self, request: GenerationRequest, token: int) -> bool:
        """Send the text ``token`` completes; return True when the request is finished."""
        if token in self.codec.stop_ids or token in request.params.generation.stop_tokens:
            if request._last_score is not None:  # scored like any token (as vLLM does), no text
                request.token_scores.append(request._last_score)
            self._finish(request, "stop")
            return True
        request.generated.append(token)
        output_filter = request.params.generation.output_filter
        if output_filter is not None and output_filter(request.generated):
            request.generated.pop()  # withheld: neither sent nor counted
            self._finish(request, "content_filter")
            return True
        if request._last_score is not None:
            request.token_scores.append(request._last_score)
        text = self.codec.decode(request.generated)
        stops = [
            i
            for i in (
                text.find(s, max(request.sent_chars - len(s), 0)) for s in request.params.stop
            )
            if i >= 0
        ]
        if stops:
            self._send(request, text[: min(stops)])
            self._finish(request, "stop")
            return True
        if len(request.generated) >= request.params.max_tokens:
            self._send(request, text)
            self._finish(request, "length")
            return True
        # Hold back what could still become a stop string, and a half-decoded UTF-8 character.
        safe = len(text) - max((len(s) - 1 for s in request.params.stop), default=0)
        if text.endswith("\ufffd"):
            safe = min(safe, len(text) - 1)
        self._send(request, text[:safe])
        return False

    def _send(self, request: GenerationRequest, text: str) -> None:
        if len(text) > request.sent_chars:
            delta = text[request.sent_chars :]
            request.sent_chars = len(text)
            request.on_event(StreamEvent(delta, completion_tokens=len(request.generated)))

    def _finish(self, request: GenerationRequest, reason: str, error: str | None = None) -> None:
        if request.done:
            return
        request.done = True
        self.metrics.record_finish(reason, len(request.generated))
        request.on_event(StreamEvent("", reason, len(request.generated), error))

    def _drop(self, requests: list[GenerationRequest], reason: str) -> None:
        if requests:
            for r in requests:
                self._finish(r, reason)
            self._remove([i for i, r in enumerate(self._active) if not r.done])

    def _remove(self, keep: list[int]) -> None:
        """Keep only rows ``keep`` of the batch, and cut left padding no row needs any more."""
        self._active = [self._active[i] for i in keep]
        self._lengths = [self._lengths[i] for i in keep]
        if not keep:
            self._state = None
            return
        assert self._state is not None
        state = select_rows(self._state, keep)
        # Rows that joined late were left-padded to the longest row; once that row has gone,
        # leading columns that are padding in every row only cost time and memory.
        state = trim_left(state, state.width - max(self._lengths))
        if min(self._lengths) == state.width:
            state.attention_mask = None  # no row is padded: the model's fast causal path
        self._state = state

    def _fail_all(self, message: str, reason: str = "error") -> None:
        for r in self._active:
            self._finish(r, reason, message if reason == "error" else None)
        self._active, self._lengths, self._state = [], [], None


def pad_left(
    rows: Sequence[Sequence[int]], device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists → left-padded ``(batch, width)`` ids and their attention mask, built on
    the host and sent to ``device`` in one copy each."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids.to(device), mask.to(device)
