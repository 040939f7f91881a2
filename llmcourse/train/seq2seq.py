"""A sequence-to-sequence task on ``Seq2SeqLM``: batches of (source, target) pairs, greedy decoding.

Training is teacher forcing (``llmcourse.train.objectives.seq2seq_lm_loss``): the decoder reads
``shift_right(target)`` and predicts ``target`` token by token while cross-attending to the
encoded source. At test time there is no target to read, so ``greedy_decode`` feeds the model
its own previous choice, one token at a time, reusing the encoder's output and the decoder's
key/value cache, until every row has produced the end token.

Lesson 08 uses it to modernise First Folio spelling (``llmcourse.data.folio``), scored with
BLEU (``llmcourse.eval.bleu``). ``translate_words`` runs such a model on each word of a line
separately and joins the results: a character model trained on word pairs
(``llmcourse.data.folio.word_pairs``) learns to copy and respell far sooner than one trained
on whole lines, because each sequence is a few characters long.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from llmcourse.data.collators import IGNORE_INDEX, pad_batch
from llmcourse.models.seq2seq import Seq2SeqLM
from llmcourse.nn.kv_cache import KVCache
from llmcourse.utils.modes import eval_mode


def pair_batch(
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    pad_id: int,
    eos_id: int,
) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of the sources, and ``labels`` = target + EOS.

    Shapes ``(batch, longest source)`` and ``(batch, longest target + 1)``; labels are -100 on
    padding so ``Trainer(objective="seq2seq")`` scores only real target tokens.
    """
    if len(sources) != len(targets) or not sources:
        raise ValueError(
            f"Need as many sources as targets (and at least one), got {len(sources)} and "
            f"{len(targets)}."
        )
    if any(len(s) == 0 for s in sources):
        raise ValueError("A source sequence is empty; drop empty pairs first.")
    return {
        "input_ids": pad_batch(sources, pad_id),
        "attention_mask": pad_batch([[1] * len(s) for s in sources], 0),
        "labels": pad_batch([[*t, eos_id] for t in targets], IGNORE_INDEX),
    }


@torch.no_grad()
def greedy_decode(
    model: Seq2SeqLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    max_new_tokens: int,
    start_id: int,
    eos_id: int,
) -> list[list[int]]:
    """The argmax output of each source row, without the start and end tokens.

    ``input_ids`` ``(batch, source_seq)``; decoding stops for a row at ``eos_id`` and for all
    after ``max_new_tokens`` steps.
    """
    if not isinstance(model, Seq2SeqLM):
        raise TypeError(f"greedy_decode needs a Seq2SeqLM, got {type(model).__name__}.")
    if max_new_tokens > model.config.context_length:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} exceeds the decoder's context "
            f"({model.config.context_length})."
        )
    with eval_mode(model):
        memory = model.encode(input_ids, attention_mask)
        cache = KVCache()
        batch = input_ids.shape[0]
        token = torch.full((batch, 1), start_id, dtype=torch.long, device=input_ids.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        outputs: list[list[int]] = [[] for _ in range(batch)]
        for _ in range(max_new_tokens):
            logits = model(
                None,
                token,
                attention_mask=attention_mask,
                encoder_hidden_states=memory,
                kv_cache=cache,
            ).logits[:, -1]
            token = logits.argmax(-1, keepdim=True)
            for row in torch.nonzero(~finished).flatten().tolist():
                if int(token[row]) == eos_id:
                    finished[row] = True
                else:
                    outputs[row].append(int(token[row]))
            if bool(finished.all()):
                break
    return outputs


def translate_words(
    model: Seq2SeqLM,
    tokenizer: Any,
    lines: Sequence[str],
    start_id: int,
    max_new_tokens: int = 24,
    batch_size: int = 512,
) -> list[str]:
    """Each line with every whitespace-separated word replaced by the model's greedy output.

    ``tokenizer`` needs ``encode``, ``decode`` and ``eos_id`` (an llmcourse tokenizer with an
    end token); ``start_id`` is the decoder's start token, as in training, and also pads the
    words (the attention mask hides it). Words from all lines are decoded together in batches
    of ``batch_size``.
    """
    words = [line.split() for line in lines]
    flat = [tokenizer.encode(word) for line in words for word in line]
    outputs: list[str] = []
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        batch = pair_batch(chunk, chunk, start_id, tokenizer.eos_id)
        decoded = greedy_decode(
            model, batch["input_ids"], batch["attention_mask"], max_new_tokens, start_id,
            tokenizer.eos_id,
        )  # fmt: skip
        outputs += [tokenizer.decode(ids) for ids in decoded]
    result, position = [], 0
    for line in words:
        result.append(" ".join(outputs[position : position + len(line)]))
        position += len(line)
    return result
