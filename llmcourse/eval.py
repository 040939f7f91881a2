"""Evaluating language models: perplexity, and BLEU for generated text (at the end of the file).

    PPL = exp( -(1/N) Σ_t log p(x_t | x_<t) )

the exponentiated average negative log-likelihood per token: a model as unsure as a uniform
choice among ``k`` tokens has perplexity ``k``. It depends on the tokenizer (fewer, longer
tokens give a higher per-token perplexity), so compare models only on the same tokens.
Text longer than the context is scored in windows of ``block_size`` tokens; with
``stride < block_size`` the windows overlap and each token is scored once, with at least
``block_size - stride`` tokens of context before it ("sliding window" perplexity). With
non-overlapping windows the first token of each window has no context and is not scored.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@torch.inference_mode()
def perplexity(
    model: torch.nn.Module,
    ids: torch.Tensor,
    block_size: int | None = None,
    stride: int | None = None,
) -> float:
    """Perplexity of ``model`` on token ids ``(seq,)`` or ``(1, seq)``.

    ``model(x)`` must return logits ``(1, len, vocab)`` (or an object with ``.logits``).
    ``block_size`` defaults to the model's context length (``model.config.context_length``);
    ``stride`` to ``block_size`` (no overlap).
    """
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() != 1 or ids.is_floating_point():
        raise ValueError(
            f"ids must be integer token ids (seq,) or (1, seq), got {tuple(ids.shape)}."
        )
    if ids.numel() < 2:
        raise ValueError(
            "Perplexity needs at least two tokens (one to predict from, one to score)."
        )
    if block_size is None:
        block_size = model.config.context_length
    stride = block_size if stride is None else stride
    if not 0 < stride <= block_size or block_size < 2:
        raise ValueError(
            f"Need 0 < stride <= block_size and block_size >= 2, got {stride}, {block_size}."
        )
    total_nll, count, scored = 0.0, 0, 1  # the first token has nothing to be predicted from
    for begin in range(0, ids.numel() - 1, stride):
        end = min(begin + block_size, ids.numel())
        first = max(scored, begin + 1)  # earlier targets were scored by an earlier window
        out = model(ids[begin:end][None])
        logits = out if isinstance(out, torch.Tensor) else out.logits
        total_nll += float(
            F.cross_entropy(
                logits[0, first - begin - 1 : end - begin - 1].float(),
                ids[first:end],
                reduction="sum",
            )
        )
        count += end - first
        scored = end
        if end == ids.numel():
            break
    return math.exp(total_nll / count)


def token_log_probs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log P(x_t | x_<t) of every token but the first, from one forward pass.

    The chain rule, log P(x_1..x_T) = Σ_t log P(x_t | x_<t), needs one factor per token; the
    logits at position t-1 give the distribution of token t. ``logits`` ``(..., seq, vocab)``
    and ``ids`` ``(..., seq)`` → ``(..., seq - 1)``; sum them for the sequence's log-probability
    (given its first token).
    """
    if logits.shape[:-1] != ids.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} must be ids {tuple(ids.shape)} plus a vocabulary axis."
        )
    log_probs = torch.log_softmax(logits[..., :-1, :].float(), dim=-1)
    return log_probs.gather(-1, ids[..., 1:, None]).squeeze(-1)


def perplexity_from_log_probs(log_probs: torch.Tensor) -> float:
    """exp(-mean log-probability): the perplexity of the tokens these log-probabilities score."""
    if log_probs.numel() == 0:
        raise ValueError(
            "Perplexity of zero tokens is undefined; pass at least one log-probability."
        )
    return math.exp(-float(log_probs.detach().double().mean()))


# --------------------------------------------------------------------------------------------
# BLEU
# --------------------------------------------------------------------------------------------

# mteval-v13a tokenisation (the WMT standard, sacrebleu's default "13a"): split off ASCII
# punctuation except ' - . , ; split . and , unless they sit between digits; split a dash after
# a digit. Written as the character ranges !-& (-+ / :-@ [-` {-~.
_BLEU_SYMBOLS = re.compile(r"([!-&(-+/:-@\[-`{-~])")
_BLEU_PERIOD_AFTER = re.compile(r"([^0-9])([.,])")
_BLEU_PERIOD_BEFORE = re.compile(r"([.,])([^0-9])")
_BLEU_DIGIT_DASH = re.compile(r"([0-9])(-)")


@dataclass(frozen=True)
class BLEUResult:
    """Corpus BLEU (0-100) and the statistics it was computed from."""

    score: float
    precisions: tuple[float, ...]  # modified n-gram precisions, in percent
    brevity_penalty: float
    hyp_len: int
    ref_len: int
    matches: tuple[int, ...]
    totals: tuple[int, ...]


def tokenize_13a(line: str) -> list[str]:
    """mteval-v13a tokens of ``line`` (what sacrebleu's ``tokenize="13a"`` produces)."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
            line = line.replace(entity, char)
    line = _BLEU_SYMBOLS.sub(r" \1 ", f" {line} ")
    line = _BLEU_PERIOD_AFTER.sub(r"\1 \2 ", line)
    line = _BLEU_PERIOD_BEFORE.sub(r" \1 \2", line)
    return _BLEU_DIGIT_DASH.sub(r"\1 \2 ", line).split()


def _ngrams(tokens: list[str], max_order: int) -> Counter:
    return Counter(
        tuple(tokens[i : i + n])
        for n in range(1, max_order + 1)
        for i in range(len(tokens) - n + 1)
    )


def bleu(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], max_order: int = 4
) -> BLEUResult:
    """Corpus-level BLEU-4 (Papineni et al. 2002) with sacrebleu's conventions.

        BLEU = BP · exp( (1/N) Σ_n log p_n ),   BP = min(1, exp(1 − r / c))

    ``p_n``: matched n-grams / hypothesis n-grams over the whole corpus, each n-gram's matches
    clipped to its largest count in any one reference; ``c``: hypothesis tokens; ``r``: for each
    sentence the reference length closest to the hypothesis (the shorter on a tie), summed.
    ``references`` is a list of reference *streams*, each as long as ``hypotheses`` (sacrebleu's
    shape: ``[[ref_a_1, ref_a_2, …], [ref_b_1, …]]``). An order with no match gets the "exp"
    smoothing of mteval-v13a (sacrebleu's default): 1 / (2^k · total) for the k-th such order.
    Text is tokenized with ``tokenize_13a``; the score is in 0-100 and equals
    ``sacrebleu.corpus_bleu(hypotheses, references).score`` (tested).
    """
    if isinstance(hypotheses, str) or any(isinstance(r, str) for r in references):
        raise TypeError(
            "bleu takes a list of hypothesis strings and a list of reference streams (lists of "
            "strings): bleu(['the cat'], [['the cat']]), not bare strings."
        )
    if not references:
        raise ValueError("Give at least one reference stream.")
    for index, stream in enumerate(references):
        if len(stream) != len(hypotheses):
            raise ValueError(
                f"Reference stream {index} has {len(stream)} sentences, the hypotheses "
                f"{len(hypotheses)}: each stream needs one reference per hypothesis."
            )
    matches, totals = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for index, hypothesis in enumerate(hypotheses):
        hyp_tokens = tokenize_13a(hypothesis)
        ref_tokens = [tokenize_13a(stream[index]) for stream in references]
        hyp_len += len(hyp_tokens)
        ref_len += min((abs(len(r) - len(hyp_tokens)), len(r)) for r in ref_tokens)[1]
        best: Counter = Counter()
        for tokens in ref_tokens:
            best |= _ngrams(tokens, max_order)  # element-wise max: clip to the best reference
        for gram, count in _ngrams(hyp_tokens, max_order).items():
            totals[len(gram) - 1] += count
            matches[len(gram) - 1] += min(count, best[gram])
    brevity = 1.0 if hyp_len >= ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    precisions, halvings = [], 1.0
    for match, total in zip(matches, totals, strict=True):
        if total == 0:
            precisions.append(0.0)
        elif match == 0:
            halvings *= 2
            precisions.append(100.0 / (halvings * total))
        else:
            precisions.append(100.0 * match / total)
    if not any(matches):
        score = 0.0
    else:
        logs = [math.log(p) if p > 0 else -9999999999.0 for p in precisions]
        score = brevity * math.exp(sum(logs) / max_order)
    return BLEUResult(
        score, tuple(precisions), brevity, hyp_len, ref_len, tuple(matches), tuple(totals)
    )
