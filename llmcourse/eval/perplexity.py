"""Perplexity and bits per byte: how surprised a language model is by text.

    PPL = exp( -(1/N) Σ_t log p(x_t | x_<t) ) = exp(mean loss in nats/token)
    BPB = Σ_t −log₂ p(x_t | x_<t) / n_bytes   = mean loss / ln 2 / (bytes per token)

Perplexity is the exponentiated average negative log-likelihood per token: a model as unsure as
a uniform choice among ``k`` tokens has perplexity ``k``. It depends on the tokenizer (fewer,
longer tokens give a higher per-token perplexity), so compare models only on the same tokens.
Bits per byte is the cost of encoding the text's UTF-8 bytes with the model as an entropy coder;
it does not depend on the tokenizer (Gao et al. 2020, The Pile, §4).

``perplexity(model, ids)`` and ``bits_per_byte(model, ids, n_bytes)`` score a model on text;
``perplexity_from_loss`` and ``bits_per_byte_from_loss`` convert a mean loss a training run
already has (the ``Trainer``'s validation loss), and the model-level ones use them too.
Text longer than the context is scored in windows of ``block_size`` tokens; with
``stride < block_size`` the windows overlap and each token is scored once, with at least
``block_size - stride`` tokens of context before it ("sliding window" perplexity). With
non-overlapping windows the first token of each window has no context and is not scored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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
    total_nll, count = sliding_window_nll(model, ids, block_size, stride)
    return perplexity_from_loss(total_nll / count)


def bits_per_byte(
    model: torch.nn.Module,
    ids: torch.Tensor,
    n_bytes: int,
    block_size: int | None = None,
    stride: int | None = None,
) -> float:
    """Bits per UTF-8 byte: the model's total code length for the text, over its length in bytes.

        BPB = Σ_t −log₂ p(x_t | x_<t) / n_bytes = total NLL (nats) / (ln 2 · n_bytes)

    Unlike perplexity it does not depend on the tokenizer, so models with different vocabularies
    can be compared on the same text (Gao et al. 2020, The Pile, §4). ``n_bytes`` is the length
    of the scored text, ``len(text.encode("utf-8"))``; windows as in ``perplexity``.
    """
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes <= 0:
        raise ValueError(f"n_bytes must be a positive int (len(text.encode())), got {n_bytes!r}.")
    total_nll, count = sliding_window_nll(model, ids, block_size, stride)
    return bits_per_byte_from_loss(total_nll / count, n_bytes / count)


def perplexity_from_loss(loss: float) -> float:
    """exp(loss) for a mean loss in nats per token (∞ rather than an overflow error)."""
    return math.exp(loss) if loss < 700 else math.inf  # exp overflows a float past ~709.8


def bits_per_byte_from_loss(loss: float, bytes_per_token: float) -> float:
    """A mean loss in nats per token → bits per UTF-8 byte: loss / ln 2 / bytes_per_token."""
    if not bytes_per_token > 0:
        raise ValueError(
            f"bytes_per_token must be positive (len(text.encode()) / number of tokens), got "
            f"{bytes_per_token!r}."
        )
    return loss / math.log(2) / bytes_per_token


@torch.inference_mode()
def sliding_window_nll(
    model: torch.nn.Module,
    ids: torch.Tensor,
    block_size: int | None = None,
    stride: int | None = None,
) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of every token but the first, and how many tokens
    that is, scored in windows of ``block_size`` that start every ``stride`` tokens."""
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
    return total_nll, count


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
    return perplexity_from_loss(-float(log_probs.detach().double().mean()))
