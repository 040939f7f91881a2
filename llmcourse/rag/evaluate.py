"""Measuring a RAG system: retrieval recall@k, and answer accuracy with and without retrieval.

**Retrieval.** For a question with a set ``R`` of relevant chunks and the retriever's ranking,

    recall@k = |R ∩ top_k| / |R|,      hit@k = 1 if R ∩ top_k ≠ ∅ else 0

averaged over questions (Manning, Raghavan & Schütze 2008, ch. 8). A chunk is relevant when it
comes from the question's gold page *and* contains the answer, so it really supports it.

**Reading.** Retrieval-augmented generation (Lewis et al. 2020) puts the top-k chunks in the
prompt and lets the LM answer from them. We ask SmolLM2 through its chat template for a short
answer, greedily, once with and once without the chunks, and count an answer as right when
the expected word appears in the reply as a whole word (case-insensitive). The gain is the
difference of the two accuracies on the same held-out questions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from llmcourse.rag.chunking import Chunk
from llmcourse.rag.questions import RAGQuestion

SYSTEM_PROMPT = "You answer questions about Python with a single word or name."


def relevant_chunks(question: RAGQuestion, chunks: Sequence[Chunk]) -> set[int]:
    """Indices of chunks from the gold page that contain the answer."""
    return {
        i for i, c in enumerate(chunks) if c.doc_id == question.topic and question.answer in c.text
    }


def recall_at_k(retrieved: Sequence[int], relevant: set[int], k: int) -> float:
    """|relevant ∩ retrieved[:k]| / |relevant| for one question."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    if not relevant:
        raise ValueError("recall is undefined without relevant items; check the gold labels.")
    return len(relevant & set(retrieved[:k])) / len(relevant)


def hit_at_k(retrieved: Sequence[int], relevant: set[int], k: int) -> float:
    """1.0 when any relevant item is among the first ``k`` retrieved, else 0.0."""
    return float(bool(relevant & set(retrieved[:k])))


@dataclass(frozen=True)
class RetrievalReport:
    """Mean recall@k and hit@k over a question set, for each ``k``."""

    recall: dict[int, float]
    hit: dict[int, float]


def evaluate_retrieval(
    search: Callable[[str, int], list[int]],
    questions: Sequence[RAGQuestion],
    chunks: Sequence[Chunk],
    ks: Sequence[int] = (1, 3, 5, 10),
) -> RetrievalReport:
    """recall@k and hit@k of ``search(query, k) -> chunk indices`` over ``questions``."""
    rankings = [search(q.question, max(ks)) for q in questions]
    gold = [relevant_chunks(q, chunks) for q in questions]
    recall = {
        k: sum(recall_at_k(r, g, k) for r, g in zip(rankings, gold, strict=True)) / len(questions)
        for k in ks
    }
    hit = {
        k: sum(hit_at_k(r, g, k) for r, g in zip(rankings, gold, strict=True)) / len(questions)
        for k in ks
    }
    return RetrievalReport(recall, hit)


def answer_is_correct(reply: str, answer: str) -> bool:
    """``answer`` occurs in ``reply`` as a whole word, ignoring case."""
    pattern = rf"(?<![A-Za-z0-9_]){re.escape(answer)}(?![A-Za-z0-9_])"
    return re.search(pattern, reply, flags=re.IGNORECASE) is not None


def build_prompt(question: str, context: Sequence[str] = ()) -> list[dict[str, str]]:
    """Chat messages asking ``question``, after the retrieved ``context`` passages if any."""
    if context:
        passages = "\n\n".join(context)
        user = f"Context from the Python manual:\n{passages}\n\nQuestion: {question}"
    else:
        user = f"Question: {question}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


@torch.inference_mode()
def answer_batch(
    model: torch.nn.Module,
    tokenizer: Any,
    conversations: Sequence[list[dict[str, str]]],
    max_new_tokens: int = 16,
) -> list[str]:
    """Greedy replies to several chats at once (``tokenizer``: transformers, with a chat template).

    The prompts are left-padded into one batch (``attention_mask`` 0 on the padding), so each
    decode step reads the weights once for every conversation instead of once per conversation;
    a row stops at its EOS token.
    """
    from llmcourse.infer import generate

    if not conversations:
        raise ValueError("Give at least one conversation.")
    prompts = [
        tokenizer.encode(
            tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False),
            add_special_tokens=False,
        )
        for m in conversations
    ]
    eos = tokenizer.eos_token_id
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), eos, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    out = generate(
        model, ids, max_new_tokens, temperature=0, stop_tokens=[eos], attention_mask=mask
    )
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]


def answer(
    model: torch.nn.Module, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int = 16
) -> str:
    """The greedy reply to chat ``messages`` (``tokenizer``: transformers, with a chat template)."""
    return answer_batch(model, tokenizer, [messages], max_new_tokens)[0]


@dataclass(frozen=True)
class AnswerReport:
    """Replies and accuracy without and with retrieved context, on the same questions."""

    questions: list[RAGQuestion]
    closed_book: list[str]
    with_context: list[str]

    def _accuracy(self, replies: list[str]) -> float:
        hits = [
            answer_is_correct(r, q.answer) for r, q in zip(replies, self.questions, strict=True)
        ]
        return sum(hits) / len(hits)

    @property
    def closed_book_accuracy(self) -> float:
        return self._accuracy(self.closed_book)

    @property
    def rag_accuracy(self) -> float:
        return self._accuracy(self.with_context)

    @property
    def gain(self) -> float:
        return self.rag_accuracy - self.closed_book_accuracy


def evaluate_answers(
    model: torch.nn.Module,
    tokenizer: Any,
    questions: Sequence[RAGQuestion],
    retrieve: Callable[[str], list[str]],
    max_new_tokens: int = 16,
    batch_size: int = 8,
) -> AnswerReport:
    """Answer every question closed-book and with ``retrieve(question)`` passages.

    Questions are answered ``batch_size`` at a time (``answer_batch``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    closed, opened = [], []
    for start in range(0, len(questions), batch_size):
        batch = [q.question for q in questions[start : start + batch_size]]
        closed += answer_batch(model, tokenizer, [build_prompt(q) for q in batch], max_new_tokens)
        with_context = [build_prompt(q, retrieve(q)) for q in batch]
        opened += answer_batch(model, tokenizer, with_context, max_new_tokens)
    return AnswerReport(list(questions), closed, opened)
