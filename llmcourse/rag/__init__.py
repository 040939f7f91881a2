"""Retrieval-augmented generation over the Python manual: chunk, index, retrieve, answer.

- ``chunk_documents`` (``chunking.py``): paragraph-packed chunks with title headers;
- ``BM25`` (``bm25.py``): the lexical baseline; ``DenseIndex`` (``dense.py``): MiniLM vectors
  and cosine similarity;
- ``python_questions``, ``rag_corpus`` (``questions.py``): our question set with a held-out
  split, and the manual pages it is about;
- ``evaluate_retrieval`` (recall@k, hit@k) and ``evaluate_answers`` (SmolLM2 with and without
  retrieved context) in ``evaluate.py``.
"""

from llmcourse.rag.bm25 import BM25, bm25_tokenize
from llmcourse.rag.chunking import Chunk, chunk_documents, chunk_text
from llmcourse.rag.dense import DenseIndex
from llmcourse.rag.evaluate import (
    AnswerReport,
    RetrievalReport,
    answer,
    answer_batch,
    answer_is_correct,
    build_prompt,
    evaluate_answers,
    evaluate_retrieval,
    hit_at_k,
    recall_at_k,
    relevant_chunks,
)
from llmcourse.rag.questions import QUESTIONS, RAG_TOPICS, RAGQuestion, python_questions, rag_corpus

__all__ = [
    "BM25",
    "QUESTIONS",
    "RAG_TOPICS",
    "AnswerReport",
    "Chunk",
    "DenseIndex",
    "RAGQuestion",
    "RetrievalReport",
    "answer",
    "answer_batch",
    "answer_is_correct",
    "bm25_tokenize",
    "build_prompt",
    "chunk_documents",
    "chunk_text",
    "evaluate_answers",
    "evaluate_retrieval",
    "hit_at_k",
    "python_questions",
    "rag_corpus",
    "recall_at_k",
    "relevant_chunks",
]
