"""Beam search: keep the ``num_beams`` most probable continuations instead of one.

At each step every live hypothesis ``y`` is extended by every token, scored by its total
log-probability ``log P(y) = Σ_t log p(y_t | y_<t, x)``, and the best ``num_beams`` survive.
A hypothesis that emits a stop token is set aside as finished. Summed log-probabilities favour
short outputs (each token adds a negative term), so finished hypotheses are ranked by

    score(y) = log P(y) / |y|^α           (α = ``length_penalty``; |y| = new tokens)

as in ``transformers``; Wu et al. (2016, §7) use ((5 + |y|) / 6)^α instead. α > 0 favours
longer outputs, α < 0 shorter ones. Search stops after ``max_new_tokens`` or as soon as
``num_beams`` hypotheses have finished and no live one can beat the worst of them any more:
``log P`` only falls as a hypothesis grows, so its best reachable score is its current
``log P`` over the largest length (α > 0) or the current length (α <= 0). The bound is exact,
so stopping early never changes the result. One prompt at a time; the beams form the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from llmcourse.infer.decoding import check_prompt, make_cache


@dataclass(frozen=True)
class BeamResult:
    """The best sequence ``(1, prompt + new)`` and every finished hypothesis, best first."""

    sequence: torch.Tensor
    score: float
    hypotheses: list[tuple[float, torch.Tensor]]  # (length-penalised score, new tokens)


def _length_normalised(logprob: float, length: int, alpha: float) -> float:
    return logprob / max(length, 1) ** alpha


def beam_search(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    num_beams: int = 4,
    *,
    length_penalty: float = 1.0,
    stop_tokens: int | Sequence[int] | None = None,
) -> BeamResult:
    """Beam search from one prompt ``(1, seq)`` (see the module docstring)."""
    check_prompt(model, input_ids, max_new_tokens)
    if input_ids.shape[0] != 1:
        raise ValueError(f"beam_search takes one prompt (batch 1), got {input_ids.shape[0]}.")
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be a positive integer, got {num_beams!r}.")
    stops = set([stop_tokens] if isinstance(stop_tokens, int) else (stop_tokens or []))
    finished: list[tuple[float, torch.Tensor]] = []
    with torch.inference_mode():
        cache = make_cache(model, "dynamic")
        logits = model(input_ids, kv_cache=cache).logits[:, -1]  # (1, vocab)
        beams = torch.empty(1, 0, dtype=torch.long, device=input_ids.device)  # new tokens
        scores = torch.zeros(1, device=input_ids.device)  # summed log-probs of live beams
        for step in range(max_new_tokens):
            logprobs = torch.log_softmax(logits.float(), dim=-1)  # (live, vocab)
            vocab = logprobs.shape[-1]
            candidates = (scores[:, None] + logprobs).flatten()
            # 2·num_beams candidates always leave num_beams that did not stop.
            top = torch.topk(candidates, min(2 * num_beams, candidates.numel()))
            keep_rows, keep_tokens, keep_scores = [], [], []
            # The hypothesis bookkeeping runs in Python: one read of 2·num_beams candidates
            # back to the host per step (the only one).
            top_scores, top_indices = top.values.tolist(), top.indices.tolist()
            for score, flat in zip(top_scores, top_indices, strict=True):
                row, token = divmod(flat, vocab)
                sequence = torch.cat((beams[row], beams.new_tensor([token])))
                if token in stops:
                    finished.append((_length_normalised(score, step + 1, length_penalty), sequence))
                    continue
                keep_rows.append(row)
                keep_tokens.append(token)
                keep_scores.append(score)
                if len(keep_rows) == num_beams:
                    break
            rows = torch.tensor(keep_rows, device=beams.device)
            beams = torch.cat(
                (beams[rows], torch.tensor(keep_tokens, device=beams.device)[:, None]), 1
            )
            scores = torch.tensor(keep_scores, device=beams.device)
            finished.sort(key=lambda item: item[0], reverse=True)
            del finished[num_beams:]
            if len(finished) == num_beams:
                longest = max_new_tokens if length_penalty > 0 else step + 1
                best_reachable = _length_normalised(max(keep_scores), longest, length_penalty)
                if best_reachable <= finished[-1][0]:
                    break
            if step + 1 == max_new_tokens:
                break
            cache.select_rows(rows)
            logits = model(beams[:, -1:], kv_cache=cache).logits[:, -1]
        length = beams.shape[1]
        for score, sequence in zip(scores.tolist(), beams, strict=True):
            finished.append((_length_normalised(score, length, length_penalty), sequence))
    finished.sort(key=lambda item: item[0], reverse=True)
    finished = finished[:num_beams]
    best_score, best = finished[0]
    return BeamResult(torch.cat((input_ids[0], best))[None], best_score, finished)
