"""Log-probabilities of tokens: what evaluation tools and RL rollouts ask a server for.

A causal LM's logits at position ``t`` are a distribution over token ``t + 1``, so one forward
pass over a text scores every token of it:

    log P(x_{t+1} | x_{<=t}) = log_softmax(z_t)[x_{t+1}]

The first token has no context and no score (OpenAI's ``echo`` answers ``null`` for it). The
sum over a continuation's tokens is its log-likelihood, how lm-evaluation-harness and
``llmcourse.eval.score_choice_likelihoods`` rank multiple-choice answers; the ``k`` most likely
alternatives at each position (``top_logprobs``) show what else the model considered. These are
the model's own probabilities, before temperature, top-p or a grammar reshape them for sampling.
The chosen token's score alone is ``llmcourse.eval.token_log_probs``; this module adds the
alternatives and the per-row bookkeeping a server needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmcourse.infer.config import CacheKind
from llmcourse.infer.decoding import DecodeState, make_cache


@dataclass(frozen=True)
class TokenLogprob:
    """One token's score: its id, ``log P(token | before)`` (``None`` for a text's first
    token), and the ``top`` alternatives as ``(id, logprob)``, most likely first."""

    token: int
    logprob: float | None
    top: tuple[tuple[int, float], ...] = ()


def top_alternatives(log_probs: torch.Tensor, chosen: torch.Tensor, k: int) -> list[TokenLogprob]:
    """``log_probs`` ``(seq, vocab)`` (already log-softmaxed) and the ``chosen`` ids ``(seq,)``
    → one ``TokenLogprob`` per position, with the ``k`` best alternatives (one read back)."""
    picked = log_probs.gather(-1, chosen[:, None]).squeeze(-1)
    if k > 0:
        values, ids = log_probs.topk(k, dim=-1)
        values, ids = values.tolist(), ids.tolist()
    else:
        values = ids = [[] for _ in range(len(chosen))]
    return [
        TokenLogprob(t, p, tuple(zip(i, v, strict=True)))
        for t, p, i, v in zip(chosen.tolist(), picked.tolist(), ids, values, strict=True)
    ]


def sequence_logprobs(logits: torch.Tensor, tokens: torch.Tensor, k: int = 0) -> list[TokenLogprob]:
    """Score ``tokens`` ``(seq,)`` with the ``logits`` ``(seq, vocab)`` a model gave for them:
    position ``t``'s logits score token ``t + 1``; the first token gets ``None``."""
    if tokens.ndim != 1 or logits.shape[:1] != tokens.shape:
        raise ValueError(
            f"Give tokens (seq,) and their logits (seq, vocab), got {tuple(tokens.shape)} and "
            f"{tuple(logits.shape)}."
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= logits.shape[-1]:
        raise ValueError(f"k must be an int in [0, vocab], got {k!r}.")
    first = TokenLogprob(int(tokens[0]), None)
    if len(tokens) == 1:
        return [first]
    log_probs = logits[:-1].float().log_softmax(-1)
    return [first, *top_alternatives(log_probs, tokens[1:], k)]


def prefill_with_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    top_k: int = 0,
    *,
    cache: CacheKind | None = "dynamic",
) -> tuple[DecodeState, list[list[TokenLogprob]]]:
    """``infer.prefill`` that also scores every prompt token (``echo`` with ``logprobs``).

    ``input_ids`` ``(batch, seq)`` left-padded as ``attention_mask`` says; returns the decode
    state (as ``prefill`` does) and, per row, the ``TokenLogprob`` of each real token. The one
    forward pass gives both: the logits of every position are kept instead of only the last.
    """
    if attention_mask is not None and bool(attention_mask.all()):
        attention_mask = None
    kv = make_cache(model, cache, input_ids.shape[0])
    logits = model(input_ids, attention_mask=attention_mask, kv_cache=kv).logits
    scores = []
    for row in range(input_ids.shape[0]):
        start = 0 if attention_mask is None else int((attention_mask[row] == 0).sum())
        scores.append(sequence_logprobs(logits[row, start:], input_ids[row, start:], top_k))
    # A copy of the last column, so the (batch, seq, vocab) logits are freed.
    state = DecodeState(input_ids, attention_mask, logits[:, -1].clone(), kv)
    return state, scores
