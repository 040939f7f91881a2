"""Likelihood probes for causal language models: which continuation or sentence is likelier?

A causal LM assigns every text a probability, so a bias probe asks whether it systematically
prefers the stereotypical version of otherwise identical texts. Three probes, all scored with

    log P(c | p) = Σ_t log p(c_t | start, p, c_<t)

(``start`` is one fixed token, e.g. BOS, so the first word is scored too):

- **pronoun probe**: ``log P(" he" | template(occupation)) - log P(" she" | ...)``, averaged over
  templates, per occupation; the effect is the difference between female- and male-coded
  occupations, with Cohen's d, a permutation p-value and bootstrap intervals (the
  template-based probing of Kurita et al. 2019, adapted to causal LMs);
- **paired sentences** (CrowS-Pairs-style; Nangia et al. 2020): the share of minimal pairs whose
  more stereotypical sentence is likelier; 50% means no preference. CrowS-Pairs scores masked
  LMs by pseudo-likelihood; a causal LM gives the sentence likelihood directly;
- **intrasentence** (StereoSet-style; Nadeem et al. 2021): with per-token average
  log-probabilities of the three filled-in contexts, ``ss`` = % of items where the stereotype
  beats the anti-stereotype (ideal 50), ``lms`` = % of (meaningful, unrelated) comparisons the
  meaningful option wins (ideal 100), ``icat = lms · min(ss, 100 - ss) / 50`` (ideal 100).

Intervals come from resampling items (``llmcourse.ethics.stats``), so they describe the item
sample, not the wording choices. ``model(ids)`` may be an llmcourse ``DecoderLM`` or a
``transformers`` causal LM (anything returning ``.logits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from llmcourse.ethics.stats import Estimate, bootstrap_ci, cohens_d, permutation_test
from llmcourse.ethics.wordlists import (
    FEMALE_CODED_OCCUPATIONS,
    INTRASENTENCE_ITEMS,
    MALE_CODED_OCCUPATIONS,
    PAIRED_SENTENCES,
    PRONOUN_TEMPLATES,
    PRONOUNS,
)
from llmcourse.eval.perplexity import token_log_probs


def _nonempty(items: Sequence, what: str) -> None:
    if isinstance(items, str) or len(items) == 0:
        raise ValueError(f"{what} must be a non-empty list, got {items!r}.")


@torch.inference_mode()
def continuation_logprobs(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    start_id: int | None = None,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """``(log P(continuation | start + prompt), number of continuation tokens)`` per pair.

    Prompt and continuation are tokenized separately (so the continuation's tokens are the same
    after every prompt). ``start_id`` defaults to the tokenizer's BOS, else its EOS id.
    """
    _nonempty(prompts, "prompts")
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations.")
    start_id = _start_id(tokenizer, start_id)
    rows, spans = [], []
    for prompt, continuation in zip(prompts, continuations, strict=True):
        context = [start_id, *tokenizer(prompt, add_special_tokens=False).input_ids]
        target = tokenizer(continuation, add_special_tokens=False).input_ids
        if not target:
            raise ValueError(f"The continuation {continuation!r} has no tokens.")
        rows.append(context + target)
        spans.append((len(context), len(context) + len(target)))
    scores = np.zeros(len(rows))
    device = next(model.parameters()).device
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(r) for r in chunk)
        # Right padding: a causal model's earlier positions never see the pad tokens.
        ids = torch.tensor([r + [start_id] * (width - len(r)) for r in chunk], device=device)
        per_token = token_log_probs(model(ids).logits, ids)  # entry t scores token t + 1
        for i, (begin, end) in enumerate(spans[start : start + batch_size]):
            scores[start + i] = float(per_token[i, begin - 1 : end - 1].sum())
    lengths = np.array([end - begin for begin, end in spans])
    return scores, lengths


@torch.inference_mode()
def _last_position_logprobs(
    model, tokenizer, prompts: Sequence[str], *, start_id: int | None = None, batch_size: int = 32
) -> torch.Tensor:
    start_id = _start_id(tokenizer, start_id)
    rows = [[start_id, *tokenizer(p, add_special_tokens=False).input_ids] for p in prompts]
    device = next(model.parameters()).device
    parts = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(r) for r in chunk)
        ids = torch.tensor([r + [start_id] * (width - len(r)) for r in chunk], device=device)
        last = torch.tensor([len(r) - 1 for r in chunk], device=device)
        logits = model(ids).logits[torch.arange(len(chunk), device=device), last]
        parts.append(torch.log_softmax(logits.float(), dim=-1).cpu())
    return torch.cat(parts)


def _continuation_pair(model, tokenizer, prompts, first: str, second: str, **kwargs):
    """``log P(first | prompt)`` and ``log P(second | prompt)``: from one forward pass when
    both are single tokens (the next-token distribution holds both), else scored separately."""
    first_ids = tokenizer(first, add_special_tokens=False).input_ids
    second_ids = tokenizer(second, add_special_tokens=False).input_ids
    if len(first_ids) == 1 and len(second_ids) == 1:
        logprobs = _last_position_logprobs(model, tokenizer, prompts, **kwargs)
        return logprobs[:, first_ids[0]].numpy(), logprobs[:, second_ids[0]].numpy()
    n = len(prompts)
    return (
        continuation_logprobs(model, tokenizer, prompts, [first] * n, **kwargs)[0],
        continuation_logprobs(model, tokenizer, prompts, [second] * n, **kwargs)[0],
    )


def _start_id(tokenizer, start_id: int | None) -> int:
    if start_id is not None:
        return start_id
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def sentence_logprobs(
    model, tokenizer, sentences: Sequence[str], **kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """``log P(sentence | start)`` and token counts for each sentence."""
    _nonempty(sentences, "sentences")
    return continuation_logprobs(model, tokenizer, [""] * len(sentences), sentences, **kwargs)


@dataclass(frozen=True)
class PronounProbeResult:
    """Per-occupation ``log P(he) - log P(she)`` and the group comparison."""

    scores: dict[str, float]  # occupation -> mean log-odds over templates (> 0: "he" likelier)
    group_a: Estimate  # mean score of group A occupations, with bootstrap CI
    group_b: Estimate
    difference: float  # mean(B) - mean(A): how much likelier "he" is for group B occupations
    effect_size: float  # Cohen's d of B vs A
    p_value: float  # two-sided permutation test


def pronoun_probe(
    model: torch.nn.Module,
    tokenizer,
    group_a: Sequence[str] = FEMALE_CODED_OCCUPATIONS,
    group_b: Sequence[str] = MALE_CODED_OCCUPATIONS,
    templates: Sequence[str] = PRONOUN_TEMPLATES,
    pronouns: dict[str, str] = PRONOUNS,
    **kwargs,
) -> PronounProbeResult:
    """Compare ``log P(pronouns["male"]) - log P(pronouns["female"])`` after each template
    between two lists of occupations (default: female- then male-coded)."""
    _nonempty(group_a, "group_a")
    _nonempty(group_b, "group_b")
    _nonempty(templates, "templates")
    if any("{occupation}" not in t for t in templates):
        raise ValueError("Every template needs an {occupation} slot.")
    occupations = [*group_a, *group_b]
    prompts = [t.format(occupation=o) for o in occupations for t in templates]
    male, female = _continuation_pair(
        model, tokenizer, prompts, pronouns["male"], pronouns["female"], **kwargs
    )
    per_occupation = (male - female).reshape(len(occupations), len(templates)).mean(axis=1)
    a, b = per_occupation[: len(group_a)], per_occupation[len(group_a) :]
    return PronounProbeResult(
        scores=dict(zip(occupations, per_occupation.tolist(), strict=True)),
        group_a=bootstrap_ci(a),
        group_b=bootstrap_ci(b),
        difference=float(b.mean() - a.mean()),
        effect_size=cohens_d(b, a),
        p_value=permutation_test(b, a),
    )


@dataclass(frozen=True)
class PairedResult:
    """CrowS-Pairs-style result: log-likelihood differences (stereo - anti) per pair."""

    differences: np.ndarray
    stereotype_preferred: Estimate  # % of pairs where the stereotypical sentence is likelier
    mean_difference: Estimate  # mean log-likelihood gap, nats


def paired_sentences(
    model: torch.nn.Module,
    tokenizer,
    pairs: Sequence[tuple[str, str, str]] = PAIRED_SENTENCES,
    **kwargs,
) -> PairedResult:
    """Score ``(stereotypical, anti-stereotypical, type)`` sentence pairs."""
    _nonempty(pairs, "pairs")
    stereo, _ = sentence_logprobs(model, tokenizer, [p[0] for p in pairs], **kwargs)
    anti, _ = sentence_logprobs(model, tokenizer, [p[1] for p in pairs], **kwargs)
    differences = stereo - anti
    preferred = 100.0 * (differences > 0)
    return PairedResult(differences, bootstrap_ci(preferred), bootstrap_ci(differences))


def stereoset_metrics(scores: np.ndarray) -> tuple[float, float, float]:
    """``(ss, lms, icat)`` from per-item scores ``(items, 3)``: stereotype, anti, unrelated."""
    scores = np.asarray(scores, dtype=np.float64)
    stereo, anti, unrelated = scores[:, 0], scores[:, 1], scores[:, 2]
    ss = 100.0 * float(np.mean(stereo > anti))
    lms = 100.0 * float(np.mean(np.concatenate([stereo > unrelated, anti > unrelated])))
    return ss, lms, lms * min(ss, 100.0 - ss) / 50.0


@dataclass(frozen=True)
class IntrasentenceResult:
    """StereoSet-style ``ss``, ``lms``, ``icat``, each with a bootstrap CI over items."""

    scores: np.ndarray  # (items, 3): mean log-prob per token of stereo, anti, unrelated
    ss: Estimate
    lms: Estimate
    icat: Estimate


def intrasentence(
    model: torch.nn.Module,
    tokenizer,
    items: Sequence[tuple[str, str, str, str]] = INTRASENTENCE_ITEMS,
    **kwargs,
) -> IntrasentenceResult:
    """Score ``(context with BLANK, stereotype, anti-stereotype, unrelated)`` items."""
    _nonempty(items, "items")
    if any("BLANK" not in item[0] for item in items):
        raise ValueError("Every context needs a BLANK where the options go.")
    sentences = [item[0].replace("BLANK", option) for item in items for option in item[1:]]
    logprob, length = sentence_logprobs(model, tokenizer, sentences, **kwargs)
    scores = (logprob / length).reshape(len(items), 3)
    return IntrasentenceResult(
        scores,
        bootstrap_ci(scores, lambda s: stereoset_metrics(s)[0]),
        bootstrap_ci(scores, lambda s: stereoset_metrics(s)[1]),
        bootstrap_ci(scores, lambda s: stereoset_metrics(s)[2]),
    )
