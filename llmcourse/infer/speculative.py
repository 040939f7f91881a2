"""Speculative decoding: a small draft model guesses, the large target model checks in one pass.

Decoding is memory-bound: one forward of the target costs about the same for 1 or for 5 new
tokens, because reading the weights dominates. So a cheap draft ``q`` proposes ``γ`` tokens
``x_1..x_γ`` one by one, and the target ``p`` scores all of them in **one** forward. Token
``x_i`` is accepted with probability

    min(1, p(x_i) / q(x_i))                                (Leviathan et al. 2023, §2.3)

and at the first rejection a replacement is drawn from the residual
``norm(max(0, p - q))``; if all ``γ`` pass, the target's next distribution gives one bonus
token. Every accepted prefix therefore comes out with exactly the target's distribution
(Leviathan et al. 2023, Theorem 1; Chen et al. 2023): speed changes, quality does not.
At temperature 0 both distributions are one-hot, a draft token is accepted iff it equals the
target's argmax, and the output is exactly the target's greedy output.

Each round costs one target call and yields between 1 and ``γ + 1`` tokens; with acceptance
rate ``α`` per token the expected yield is ``(1 - α^(γ+1)) / (1 - α)`` (ibid., eq. 1). The draft
must share the target's vocabulary: here a quantized or layer-pruned copy of the target, or
no model at all (``PromptLookup`` copies continuations from the text so far).

A round pays when ``γ · c + v(γ) < E[tokens per round]`` in units of one target step, with
``c`` the draft's cost per token and ``v(γ)`` the cost of checking ``γ + 1`` tokens at once.
Decoding is memory-bound, so ``v`` stays near 1 for small ``γ``; a draft that reads 4x fewer
bytes per token (int4 weights) has ``c`` near 1/4 at best, and prompt lookup has ``c = 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from llmcourse.infer.config import check_sampling
from llmcourse.infer.decoding import check_prompt, make_cache
from llmcourse.infer.prompt_lookup import PromptLookup
from llmcourse.infer.sampling import process_logits


@dataclass(frozen=True)
class SpeculativeResult:
    """The output ``(1, prompt + new)`` and how the draft fared."""

    sequence: torch.Tensor
    proposed: int  # draft tokens proposed
    accepted: int  # of those, accepted by the target
    target_calls: int  # target forward passes, the prompt's prefill included
    new_tokens: int

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_target_call(self) -> float:
        return self.new_tokens / self.target_calls if self.target_calls else 0.0


def _distribution(logits: torch.Tensor, temperature: float, top_k, top_p) -> torch.Tensor:
    """``(n, vocab)`` probabilities: one-hot argmax when greedy, else the processed softmax."""
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    processed = process_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    return torch.softmax(processed.float(), dim=-1)


def accept_draft(
    p: torch.Tensor,
    q: torch.Tensor,
    draft_tokens: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[int, int]:
    """The acceptance rule for one round.

    ``p``: target probabilities ``(γ + 1, vocab)`` at each draft position and one beyond;
    ``q``: draft probabilities ``(γ, vocab)``; ``draft_tokens``: ``(γ,)``. Returns
    ``(n_accepted, next_token)``: the first ``n_accepted`` draft tokens stand, followed by
    ``next_token`` (the residual sample at a rejection, or the bonus token).
    """
    gamma = draft_tokens.shape[0]
    index = torch.arange(gamma, device=p.device)
    p_draft, q_draft = p[index, draft_tokens], q[index, draft_tokens]
    u = torch.rand(gamma, generator=generator, device=p.device)
    # Accept when u <= p/q, written as u·q <= p so q = 0 needs no division (q(x) > 0 anyway:
    # the draft sampled x from q).
    rejected = (u * q_draft > p_draft).nonzero()
    if len(rejected) == 0:
        bonus = torch.multinomial(p[gamma], 1, generator=generator)
        return gamma, int(bonus)
    n = int(rejected[0])
    residual = (p[n] - q[n]).clamp(min=0)
    if float(residual.sum()) <= 0:  # p == q at this position: rejection has probability 0
        residual = p[n]
    return n, int(torch.multinomial(residual / residual.sum(), 1, generator=generator))


class _ModelDraft:
    """A draft language model with its own cache: proposes ``γ`` tokens one forward each."""

    def __init__(self, model: torch.nn.Module, rollback: int, sampling: dict, generator) -> None:
        self.model, self.sampling, self.generator = model, sampling, generator
        self.cache = make_cache(model, "dynamic", rollback=rollback)

    def propose(self, tokens: list[int], gamma: int) -> tuple[list[int], torch.Tensor | None]:
        proposal, probs = [], []
        pending = tokens[self.cache.seq_len :]
        for _ in range(gamma):
            logits = _feed(self.model, self.cache, pending)[-1:]
            if self.sampling["temperature"] == 0:
                token = int(logits.argmax())
            else:
                q = _distribution(logits, **self.sampling)[0]
                token = int(torch.multinomial(q, 1, generator=self.generator))
                probs.append(q)
            proposal.append(token)
            pending = [token]
        return proposal, torch.stack(probs) if probs else None

    def rollback(self, kept: int) -> None:
        self.cache.crop(min(self.cache.seq_len, kept))


class _LookupDraft:
    """``PromptLookup`` as a draft: deterministic proposals, so ``q`` is one-hot."""

    def __init__(self, lookup: PromptLookup, vocab_size: int, sampling: dict) -> None:
        self.lookup, self.vocab_size, self.sampling = lookup, vocab_size, sampling

    def propose(self, tokens: list[int], gamma: int) -> tuple[list[int], torch.Tensor | None]:
        proposal = self.lookup.propose(tokens, gamma) if gamma else []
        if self.sampling["temperature"] == 0 or not proposal:
            return proposal, None
        q = torch.nn.functional.one_hot(torch.tensor(proposal), self.vocab_size).float()
        return proposal, q

    def rollback(self, kept: int) -> None:
        pass


def _feed(model: torch.nn.Module, cache, ids: list[int]) -> torch.Tensor:
    """Logits ``(len(ids), vocab)`` after feeding ``ids`` into ``cache``."""
    device = next(model.parameters()).device
    fed = torch.tensor([ids], dtype=torch.long, device=device)
    return model(fed, kv_cache=cache).logits[0]


def speculative_generate(
    target: torch.nn.Module,
    draft: torch.nn.Module | PromptLookup,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    *,
    num_draft_tokens: int = 4,
    stop_tokens: int | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> SpeculativeResult:
    """Generate from ``target`` with ``draft`` proposing up to ``num_draft_tokens`` (γ) per
    round.

    ``draft`` is a language model with the target's vocabulary (a quantized copy such as
    ``quantize(target, "int4", skip=())``, or ``layer_skip_draft(target, ...)``) or a
    ``PromptLookup``, which copies continuations from the text so far and costs no forward.
    One prompt ``(1, seq)``. The output has the distribution of ``generate(target, ...)`` with
    the same ``temperature``/``top_k``/``top_p``, and equals its greedy output when
    ``temperature == 0``.
    """
    check_prompt(target, input_ids, max_new_tokens)
    check_sampling(temperature, top_k, top_p)
    if input_ids.shape[0] != 1:
        raise ValueError(
            f"speculative_generate takes one prompt (batch 1), got {input_ids.shape[0]}."
        )
    if isinstance(num_draft_tokens, bool) or not isinstance(num_draft_tokens, int):
        raise TypeError("num_draft_tokens must be an int.")
    if num_draft_tokens < 1:
        raise ValueError(f"num_draft_tokens must be >= 1, got {num_draft_tokens}.")
    sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    if isinstance(draft, PromptLookup):
        drafter = _LookupDraft(draft, target.config.vocab_size, sampling)
    elif isinstance(draft, torch.nn.Module) and hasattr(draft, "config"):
        if draft.config.vocab_size != target.config.vocab_size:
            raise ValueError(
                f"The draft's vocabulary ({draft.config.vocab_size}) differs from the target's "
                f"({target.config.vocab_size}): speculative decoding compares their "
                "distributions token by token, so the draft must use the same tokenizer."
            )
        drafter = _ModelDraft(draft, num_draft_tokens, sampling, generator)
    else:
        raise TypeError(
            "draft must be a language model (with a .config) or a PromptLookup, got "
            f"{type(draft).__name__}."
        )
    stops = set([stop_tokens] if isinstance(stop_tokens, int) else (stop_tokens or []))
    tokens = input_ids[0].tolist()
    prompt_len = len(tokens)
    # Rejected draft tokens are cropped off again: a sliding-window cache must keep that many
    # positions beyond its window.
    target_cache = make_cache(target, "dynamic", rollback=num_draft_tokens)
    proposed = accepted = target_calls = 0

    with torch.inference_mode():
        while len(tokens) - prompt_len < max_new_tokens:
            remaining = max_new_tokens - (len(tokens) - prompt_len)
            # 1. The draft proposes up to gamma tokens (one fewer than remain: the target
            #    always adds one of its own).
            proposal, q = drafter.propose(tokens, min(num_draft_tokens, remaining - 1))
            # 2. The target scores the unseen tail plus the whole proposal in one forward.
            unseen = tokens[target_cache.seq_len :]
            logits = _feed(target, target_cache, unseen + proposal)[len(unseen) - 1 :]
            target_calls += 1
            n, extra = _verify(logits, proposal, q, sampling, generator)
            proposed += len(proposal)
            accepted += n
            kept = len(tokens) + n  # positions whose keys/values stay valid in both caches
            tokens += [*proposal[:n], extra]
            target_cache.crop(kept)
            drafter.rollback(kept)
            new = tokens[prompt_len:]
            hit = next((i for i, t in enumerate(new) if t in stops), None)
            if hit is not None:
                del tokens[prompt_len + hit + 1 :]
                break
    del tokens[prompt_len + max_new_tokens :]
    sequence = torch.tensor([tokens], dtype=input_ids.dtype, device=input_ids.device)
    return SpeculativeResult(sequence, proposed, accepted, target_calls, len(tokens) - prompt_len)


def _verify(
    logits: torch.Tensor,
    proposal: list[int],
    q: torch.Tensor | None,
    sampling: dict,
    generator: torch.Generator | None,
) -> tuple[int, int]:
    """``(n_accepted, next_token)`` from the target's logits ``(len(proposal) + 1, vocab)``.

    Greedy: accept the longest prefix on which the proposal equals the target's argmax, then
    take the target's own token (one read back to the host per round). Sampling: the
    acceptance rule of ``accept_draft``.
    """
    if sampling["temperature"] == 0:
        choices = logits.argmax(-1).tolist()
        n = 0
        while n < len(proposal) and proposal[n] == choices[n]:
            n += 1
        return n, choices[n]
    p = _distribution(logits, **sampling)  # (len(proposal) + 1, vocab)
    if not proposal:
        return 0, int(torch.multinomial(p[0], 1, generator=generator))
    drafted = torch.tensor(proposal, device=p.device)
    return accept_draft(p, q.to(p.device), drafted, generator)


def layer_skip_draft(model: torch.nn.Module, layers: Sequence[int]) -> torch.nn.Module:
    """A draft that runs only some of ``model``'s layers, sharing its weights (no copy).

    Self-speculative decoding (Zhang et al. 2024, "Draft & Verify"; Elhoushi et al. 2024,
    "LayerSkip"): the same model with layers skipped is cheaper, shares the vocabulary and
    agrees with the full model on easy tokens. ``layers`` lists the block indices to keep.
    """
    from llmcourse.models.decoder import DecoderLM

    if not isinstance(model, DecoderLM):
        raise TypeError(f"layer_skip_draft takes a DecoderLM, got {type(model).__name__}.")
    layers = list(layers)
    n_layer = model.config.n_layer
    if not layers or any(not 0 <= i < n_layer for i in layers) or len(set(layers)) != len(layers):
        raise ValueError(
            f"layers must be distinct block indices in 0..{n_layer - 1}, got {layers}."
        )
    config = model.config.replace(n_layer=len(layers), name=f"{model.config.name}-draft")
    with torch.device("meta"):
        draft = DecoderLM(config)
    for name, child in model.named_children():
        if name != "blocks":
            setattr(draft, name, child)
    draft.blocks = torch.nn.ModuleList(model.blocks[i] for i in layers)
    return draft.eval()
